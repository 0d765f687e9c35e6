// Typed calls end to end, in one process: every body runs over every transport and codec.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <stop_token>
#include <thread>
#include <vector>

#include "eventually.hpp"
#include "families.hpp"
#include "params.hpp"
#include "test_server.hpp"

namespace {

using brine::CallOptions;
using brine::Client;
using brine::RpcError;
using brine::StatusCode;
using namespace brine_test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class Calls : public testing::TestWithParam<Param> {
 protected:
  // Runs body.template operator()<Family>() for this codec's type family.
  template <class F>
  void run(F&& body) {
    with_family(GetParam().codec, std::forward<F>(body));
  }
  brine::ClientOptions client_options() const {
    brine::ClientOptions o;
    o.codec = GetParam().codec;
    o.timeout = 10s;
    o.tls.ca_file = tls_paths().ca;
    return o;
  }
  std::string listen(TestServer& s) { return s.listen(GetParam().transport); }
  bool zmq() const { return test_transport(GetParam().transport).zmq; }
  // zmq+inproc has no connection events: a server that went away is noticed only at the call's
  // deadline, and a client does not re-attach to a new server bound to the same name.
  bool reports_loss() const { return test_transport(GetParam().transport).reports_loss; }
  // ZeroMQ over tcp or ipc enforces ZMQ_MAXMSGSIZE itself, by dropping the connection.
  bool zmq_connection() const { return zmq() && !test_transport(GetParam().transport).inproc; }
  bool datagram() const { return test_transport(GetParam().transport).datagram; }
};

TEST_P(Calls, TypedCallsReturnAnswers) {
  run([&]<class F>() {
    TestServer s;
    Client c(listen(s), client_options());
    EXPECT_EQ(F::value(c.template call<typename F::Number>("add", F::add(2, 3))), 5);
    EXPECT_DOUBLE_EQ(F::value(c.template call<typename F::Number>("divide", F::divide(1, 4))),
                     0.25);
    const auto r = c.template try_call<typename F::Number>("add", F::add(-1, 1));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(F::value(*r), 0);
  });
}

TEST_P(Calls, LargePayloadRoundTrip) {
  run([&]<class F>() {
    TestServer s;
    Client c(listen(s), client_options());
    // Datagram transports carry one frame per datagram: the largest payload that fits.
    std::string big(datagram() ? 60000 : 3 << 20, 'x');
    // Every byte value for the binary codecs; JSON strings are UTF-8 text.
    const bool text = GetParam().codec == "json";
    for (std::size_t i = 0; i < big.size(); i += 4093) big[i] = text ? char('a' + i % 26) : char(i);
    const auto back = c.template call<typename F::Blob>("echo", F::blob(big));
    EXPECT_EQ(F::data(back), big);
  });
}

// A datagram carries one frame, never split: a request over the datagram limit is refused before
// it is sent, a reply over it is replaced by an error, and the client carries on.
TEST_P(Calls, FramesOverTheDatagramLimitAreRefusedNamingIt) {
  if (!datagram()) GTEST_SKIP() << "datagram transports only";
  run([&]<class F>() {
    TestServer s;
    Client c(listen(s), client_options());
    const auto r = c.template try_call<typename F::Blob>("echo", F::blob(std::string(70000, 'b')));
    EXPECT_EQ(r.code(), StatusCode::resource_exhausted) << r.status().to_string();
    EXPECT_NE(r.status().message.find("datagram limit of 65475 bytes"), std::string::npos)
        << r.status().message;
    const auto big = c.template try_call<typename F::Blob>("inflate", F::number(70000));
    EXPECT_EQ(big.code(), StatusCode::resource_exhausted) << big.status().to_string();
    EXPECT_NE(big.status().message.find("datagram limit"), std::string::npos)
        << big.status().message;
    EXPECT_EQ(F::value(c.template call<typename F::Number>("add", F::add(1, 1))), 2);
  });
}

TEST_P(Calls, UnknownMethodIsNotFound) {
  run([&]<class F>() {
    TestServer s;
    Client c(listen(s), client_options());
    const auto r = c.template try_call<typename F::Number>("no_such_method", F::add(1, 2));
    EXPECT_EQ(r.code(), StatusCode::not_found);
    EXPECT_NE(r.status().message.find("no_such_method"), std::string::npos);
  });
}

TEST_P(Calls, HandlerExceptionKeepsMessageAndType) {
  run([&]<class F>() {
    TestServer s;
    Client c(listen(s), client_options());
    try {
      c.template call<typename F::Number>("divide", F::divide(1, 0));
      FAIL() << "no exception";
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), StatusCode::internal);
      EXPECT_EQ(e.message(), "division by zero");
      EXPECT_EQ(e.remote_type(), "std::domain_error");
    }
  });
}

TEST_P(Calls, HandlerRpcErrorKeepsItsCode) {
  run([&]<class F>() {
    TestServer s;
    Client c(listen(s), client_options());
    const auto r = c.template try_call<typename F::Number>("fail_with", F::number(8));
    EXPECT_EQ(r.code(), StatusCode::resource_exhausted);
    EXPECT_EQ(r.status().message, "failed on purpose");
    const auto u = c.template try_call<typename F::Number>("throw_int", F::number(0));
    EXPECT_EQ(u.code(), StatusCode::unknown);
  });
}

TEST_P(Calls, UndecodablePayloadIsInvalidArgument) {
  run([&]<class F>() {
    TestServer s;
    // Raw bytes under the method's name: a peer that sends no contract, as a client in another
    // language may (with one, the server would refuse the call before decoding it).
    brine::ClientOptions o = client_options();
    o.check_contracts = false;
    Client c(listen(s), o);
    const auto r = c.template try_call<typename F::Number>("add", Raw{"\xFF\xFF\xFF"});
    EXPECT_EQ(r.code(), StatusCode::invalid_argument) << r.status().to_string();
    // The connection stays usable: a bad payload fails only its call.
    EXPECT_EQ(F::value(c.template call<typename F::Number>("add", F::add(1, 1))), 2);
  });
}

TEST_P(Calls, UndecodableReplyIsInvalidArgument) {
  run([&]<class F>() {
    TestServer s;
    // "garbage" declares a reply type other than Number: with contracts the server refuses the
    // call (FAILED_PRECONDITION, tests/contract_test.cpp); without, the client's decoder meets it.
    brine::ClientOptions o = client_options();
    o.check_contracts = false;
    Client c(listen(s), o);
    const auto r = c.template try_call<typename F::Number>("garbage", F::number(1));
    EXPECT_EQ(r.code(), StatusCode::invalid_argument) << r.status().to_string();
  });
}

// The codec of the call to "codec" on `c`, as the server saw it.
template <class F>
std::string codec_of_call(Client& c) {
  const auto r = c.template try_call<typename F::Number>("codec", F::number(0));
  if (!r.ok()) return r.status().to_string();
  return brine::codec_display(std::uint8_t(F::value(*r)));
}

// A server that serves one other codec: the client falls back to it where the types can use it,
// and otherwise hears which codecs the server serves the method in.
TEST_P(Calls, ACodecTheServerDoesNotServeFallsBackOrIsNamed) {
  run([&]<class F>() {
    const std::string other = GetParam().codec == "cereal" ? "protobuf" : "cereal";
    TestServer s({.codecs = {other}});
    Client c(listen(s), client_options());
    const bool usable =
        brine::Serialization<typename F::Add>::supports(*brine::codec_from_name(other));
    for (int i = 0; i < 2; ++i) {  // the second time from what the client learnt
      const auto r = c.template try_call<typename F::Number>("add", F::add(1, 2));
      if (usable) {
        ASSERT_TRUE(r.ok()) << r.status().to_string();
        EXPECT_EQ(F::value(*r), 3);
        EXPECT_EQ(codec_of_call<F>(c), other);
      } else {
        EXPECT_EQ(r.code(), StatusCode::unimplemented);
        EXPECT_NE(r.status().message.find("the server serves it in " + other), std::string::npos)
            << r.status().message;
      }
    }
    // Asynchronous calls fall back the same way.
    auto f = c.template call_async<typename F::Number>("divide", F::divide(1, 4));
    if (usable) {
      EXPECT_DOUBLE_EQ(F::value(f.get()), 0.25);
    } else {
      EXPECT_THROW(f.get(), RpcError);
    }
  });
}

// One client calls methods of both type families, each in the codec its types can use: the
// preferred one where they can, else the next the server serves them in.
TEST_P(Calls, OneClientCallsEveryTypeFamily) {
  TestServer s;
  Client c(listen(s), client_options());
  const std::string preferred = GetParam().codec;
  // The structs use cereal or json; the messages protobuf (this server serves them in nothing
  // else: a client preferring json is refused once per method and falls back).
  const std::string structs = preferred == "json" ? "json" : "cereal";
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(CerealFamily::value(c.call<calc::Number>("add", CerealFamily::add(2, 3))), 5);
    EXPECT_EQ(ProtobufFamily::value(c.call<calc::pb::Number>("add", ProtobufFamily::add(2, 3))), 5);
    EXPECT_EQ(codec_of_call<CerealFamily>(c), structs);
    EXPECT_EQ(codec_of_call<ProtobufFamily>(c), "protobuf");
  }
  auto a = c.call_async<calc::Number>("divide", CerealFamily::divide(1, 2));
  auto b = c.call_async<calc::pb::Number>("divide", ProtobufFamily::divide(1, 4));
  EXPECT_DOUBLE_EQ(a.get().value, 0.5);
  EXPECT_DOUBLE_EQ(b.get().value(), 0.25);
}

TEST_P(Calls, TimeoutIsDeadlineExceededAndTheClientCarriesOn) {
  run([&]<class F>() {
    TestServer s;
    Client c(listen(s), client_options());
    const auto t0 = Clock::now();
    // The handler takes 700 ms; the call gives up after 100 ms (and the server's stop at the end
    // of the test waits for the handler, so keep it short).
    const auto r = c.template try_call<typename F::Number>("wait", F::wait(700), {100ms});
    const auto took = Clock::now() - t0;
    EXPECT_EQ(r.code(), StatusCode::deadline_exceeded);
    EXPECT_GE(took, 100ms);
    EXPECT_LT(took, 600ms);
    // The late reply is dropped; the next call gets its own answer.
    EXPECT_EQ(F::value(c.template call<typename F::Number>("add", F::add(4, 4))), 8);
  });
}

TEST_P(Calls, AsyncTimeoutIsDeadlineExceeded) {
  run([&]<class F>() {
    TestServer s;
    Client c(listen(s), client_options());
    auto f = c.template call_async<typename F::Number>("wait", F::wait(700), {100ms});
    ASSERT_EQ(f.wait_for(600ms), std::future_status::ready);
    try {
      f.get();
      FAIL();
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), StatusCode::deadline_exceeded);
    }
  });
}

TEST_P(Calls, NothingListeningIsUnavailable) {
  run([&]<class F>() {
    std::string uri;
    {
      TestServer s;
      uri = listen(s);
    }  // stopped: nothing listens there now
    Client c(uri, client_options());
    const auto t0 = Clock::now();
    const auto r = c.template try_call<typename F::Number>("add", F::add(1, 2), {2s});
    EXPECT_EQ(r.code(), !reports_loss() ? StatusCode::deadline_exceeded : StatusCode::unavailable)
        << r.status().to_string();
    EXPECT_LT(Clock::now() - t0, 2500ms);
  });
}

// Destroying a Server stops it at once (stop() drains: see StopLetsRunningCallsFinish).
TEST_P(Calls, ServerDestroyedFailsPendingCallsPromptly) {
  if (!reports_loss()) GTEST_SKIP() << "zmq+inproc reports a stopped server at the call's deadline";
  run([&]<class F>() {
    auto s = std::make_unique<TestServer>();
    Client c(listen(*s), client_options());
    std::vector<std::future<typename F::Number>> pending;
    for (int i = 0; i < 3; ++i) {
      pending.push_back(
          c.template call_async<typename F::Number>("until_cancelled", F::number(3000), {20s}));
    }
    // A round trip proves the three requests were read before the stop.
    EXPECT_EQ(F::value(c.template call<typename F::Number>("add", F::add(1, 1))), 2);
    const auto t0 = Clock::now();
    std::thread stopper([&] { s.reset(); });
    for (auto& f : pending) {
      ASSERT_EQ(f.wait_for(2s), std::future_status::ready);
      try {
        f.get();
        FAIL();
      } catch (const RpcError& e) {
        EXPECT_EQ(e.code(), StatusCode::unavailable);
      }
    }
    EXPECT_LT(Clock::now() - t0, 2s);
    stopper.join();
  });
}

TEST_P(Calls, ReconnectsAfterTheServerComesBack) {
  if (!reports_loss())
    GTEST_SKIP() << "zmq+inproc does not re-attach to a new server of the same name";
  run([&]<class F>() {
    std::string uri;
    auto s = std::make_unique<TestServer>();
    uri = listen(*s);
    Client c(uri, client_options());
    EXPECT_EQ(F::value(c.template call<typename F::Number>("add", F::add(1, 1))), 2);
    s.reset();
    const auto lost = c.template try_call<typename F::Number>("add", F::add(1, 1), {2s});
    EXPECT_EQ(lost.code(), StatusCode::unavailable);
    s = std::make_unique<TestServer>();
    ASSERT_EQ(s->server.listen(uri), uri);  // same endpoint
    // The failed attempt started the reconnection backoff: wait it out instead of failing fast.
    EXPECT_EQ(F::value(c.template call<typename F::Number>(
                  "add", F::add(2, 2), {.timeout = 5s, .wait_for_ready = true})),
              4);
  });
}

TEST_P(Calls, TheTimeoutTravelsWithTheRequest) {
  run([&]<class F>() {
    TestServer s;
    Client c(listen(s), client_options());
    const double left = F::value(
        c.template call<typename F::Number>("time_left", F::number(0), {.timeout = 4000ms}));
    EXPECT_GT(left, 2000);
    EXPECT_LE(left, 4000);
  });
}

TEST_P(Calls, ACallWhoseDeadlinePassedInTheQueueIsNotRun) {
  run([&]<class F>() {
    TestServer s({.workers = 1});
    Client c(listen(s), client_options());
    // The only worker is busy for 500 ms; "count" waits behind it, and its caller gives up
    // after 100 ms.
    auto busy = c.template call_async<typename F::Number>("wait", F::wait(500));
    const auto late =
        c.template try_call<typename F::Number>("count", F::number(1), {.timeout = 100ms});
    EXPECT_EQ(late.code(), StatusCode::deadline_exceeded);
    busy.get();
    EXPECT_EQ(F::value(c.template call<typename F::Number>("counted", F::number(0))), 0);
    EXPECT_EQ(s.server.stats().calls_skipped, 1u);
  });
}

TEST_P(Calls, CancellingAQueuedCallFreesItOnBothSides) {
  run([&]<class F>() {
    TestServer s({.workers = 1});
    Client c(listen(s), client_options());
    auto busy = c.template call_async<typename F::Number>("wait", F::wait(500));
    std::stop_source cancel;
    auto f = c.template call_async<typename F::Number>("count", F::number(1),
                                                       {.cancel = cancel.get_token()});
    cancel.request_stop();
    ASSERT_EQ(f.wait_for(0s), std::future_status::ready);  // completed by the cancel itself
    try {
      f.get();
      FAIL() << "a cancelled call returned a value";
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), StatusCode::cancelled);
    }
    EXPECT_EQ(c.stats().calls_pending, 1u);  // only "wait"
    busy.get();
    EXPECT_EQ(F::value(c.template call<typename F::Number>("counted", F::number(0))), 0);
    // A ZeroMQ client usually drops the request before it leaves (its I/O thread sends later);
    // a stream client has written it, so the server skipped it.
    EXPECT_EQ(s.server.stats().calls_skipped, zmq() ? s.server.stats().calls_skipped : 1u);
    EXPECT_LE(s.server.stats().calls_skipped, 1u);
  });
}

TEST_P(Calls, CancellingARunningCallReachesItsHandler) {
  run([&]<class F>() {
    TestServer s;
    Client c(listen(s), client_options());
    std::stop_source cancel;
    auto f = c.template call_async<typename F::Number>("until_cancelled", F::number(10000),
                                                       {.cancel = cancel.get_token()});
    // Wait (bounded) until the handler runs: a call still queued would be skipped instead.
    ASSERT_TRUE(eventually([&] { return s.running_cancellable->load() == 1; }, 5s));
    const auto t0 = Clock::now();
    cancel.request_stop();
    try {
      f.get();
      FAIL() << "a cancelled call returned a value";
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), StatusCode::cancelled) << e.what();
    }
    EXPECT_TRUE(eventually([&] { return s.saw_cancel->load() == 1; }, 5s));
    EXPECT_LT(Clock::now() - t0, 2s);  // not the handler's 10 s
    EXPECT_EQ(F::value(c.template call<typename F::Number>("add", F::add(1, 1))), 2);
  });
}

TEST_P(Calls, ACancelRacingTheReplyCompletesTheCallOnce) {
  run([&]<class F>() {
    TestServer s;
    Client c(listen(s), client_options());
    constexpr int kCalls = 300;
    std::atomic<int> completions{0};
    std::atomic<int> ok{0};
    std::atomic<int> cancelled{0};
    std::vector<std::stop_source> sources(kCalls);
    for (int i = 0; i < kCalls; ++i) {
      c.template call_async<typename F::Number>("add", F::add(i, 1),
                                                [&](brine::Result<typename F::Number> r) {
                                                  if (r.ok()) ++ok;
                                                  if (r.code() == StatusCode::cancelled)
                                                    ++cancelled;
                                                  ++completions;
                                                },
                                                {.cancel = sources[std::size_t(i)].get_token()});
      if (i % 2 == 0) sources[std::size_t(i)].request_stop();  // races the reply
    }
    for (auto& src : sources) src.request_stop();  // the rest, mostly answered already
    const auto limit = Clock::now() + 10s;
    while (completions.load() < kCalls && Clock::now() < limit) std::this_thread::sleep_for(1ms);
    EXPECT_EQ(completions.load(), kCalls);
    EXPECT_EQ(ok.load() + cancelled.load(), kCalls);
    EXPECT_GE(cancelled.load(), 1);
    // Nothing completes twice: a late reply to a cancelled call is dropped.
    EXPECT_EQ(F::value(c.template call<typename F::Number>("add", F::add(1, 1))), 2);
    EXPECT_EQ(completions.load(), kCalls);
    EXPECT_EQ(c.stats().calls_pending, 0u);
  });
}

TEST_P(Calls, StopLetsRunningCallsFinish) {
  run([&]<class F>() {
    TestServer s;
    Client c(listen(s), client_options());
    std::vector<std::future<typename F::Number>> pending;
    for (int i = 0; i < 3; ++i) {
      pending.push_back(c.template call_async<typename F::Number>("wait", F::wait(300)));
    }
    EXPECT_EQ(F::value(c.template call<typename F::Number>("add", F::add(1, 1))), 2);
    std::jthread stopper([&] { s.server.stop(); });
    for (auto& f : pending) EXPECT_EQ(F::value(f.get()), 300);
    stopper.join();
    // Stopped: a new call finds nobody (or, in-process, a server that refuses it).
    const auto after = c.template try_call<typename F::Number>("add", F::add(1, 1), {1s});
    EXPECT_FALSE(after.ok());
  });
}

TEST_P(Calls, StopFailsCallsStillRunningAfterTheDrainTimeout) {
  if (!reports_loss()) GTEST_SKIP() << "zmq+inproc reports a stopped server at the call's deadline";
  run([&]<class F>() {
    TestServer s({.drain_timeout = 200ms});
    auto o = client_options();
    o.heartbeat_interval = 100ms;
    o.heartbeat_timeout = 500ms;
    Client c(listen(s), o);
    auto f = c.template call_async<typename F::Number>("until_cancelled", F::number(5000), {20s});
    EXPECT_EQ(F::value(c.template call<typename F::Number>("add", F::add(1, 1))), 2);
    const auto t0 = Clock::now();
    std::jthread stopper([&] { s.server.stop(); });
    ASSERT_EQ(f.wait_for(3s), std::future_status::ready);
    try {
      f.get();
      FAIL();
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), StatusCode::unavailable) << e.what();
      if (!zmq()) {
        EXPECT_NE(std::string(e.what()).find("drain_timeout"), std::string::npos) << e.what();
      }
    }
    EXPECT_LT(Clock::now() - t0, 3s);
    stopper.join();
  });
}

TEST_P(Calls, NewCallsDuringTheDrainAreRefused) {
  run([&]<class F>() {
    TestServer s({.drain_timeout = 5s});
    Client c(listen(s), client_options());
    auto f = c.template call_async<typename F::Number>("wait", F::wait(1000));
    EXPECT_EQ(F::value(c.template call<typename F::Number>("add", F::add(1, 1))), 2);
    std::jthread stopper([&] { s.server.stop(); });
    // Until the drain begins calls succeed; from then on they are refused.
    brine::Status refused;
    const auto limit = Clock::now() + 900ms;
    while (Clock::now() < limit) {
      const auto r = c.template try_call<typename F::Number>("add", F::add(1, 1), {1s});
      if (!r.ok()) {
        refused = r.status();
        break;
      }
    }
    EXPECT_EQ(refused.code, StatusCode::unavailable) << refused.to_string();
    EXPECT_NE(refused.message.find("shutting down"), std::string::npos) << refused.to_string();
    EXPECT_EQ(F::value(f.get()), 1000);  // the running call still finished
    stopper.join();
  });
}

TEST_P(Calls, RequestOverTheClientLimitIsRefusedLocally) {
  run([&]<class F>() {
    TestServer s;
    auto o = client_options();
    o.max_frame_size = 4096;
    Client c(listen(s), o);
    const auto r = c.template try_call<typename F::Blob>("echo", F::blob(std::string(5000, 'b')));
    EXPECT_EQ(r.code(), StatusCode::resource_exhausted);
    EXPECT_EQ(F::data(c.template call<typename F::Blob>("echo", F::blob("ok"))), "ok");
  });
}

TEST_P(Calls, RequestOverTheServerLimitIsResourceExhausted) {
  run([&]<class F>() {
    brine::ServerOptions o;
    o.max_frame_size = 64 * 1024;
    TestServer s(o);
    Client c(listen(s), client_options());
    const auto r =
        c.template try_call<typename F::Blob>("echo", F::blob(std::string(100 * 1024, 'b')));
    // Over zmq+tcp/ipc, ZeroMQ itself enforces the limit (ZMQ_MAXMSGSIZE) by dropping the
    // connection, without saying why: the call fails with UNAVAILABLE.
    EXPECT_EQ(r.code(), zmq_connection() ? StatusCode::unavailable : StatusCode::resource_exhausted)
        << r.status().to_string();
    // The server closed that connection; the client reconnects for the next call.
    EXPECT_EQ(F::data(c.template call<typename F::Blob>("echo", F::blob("ok"))), "ok");
  });
}

TEST_P(Calls, ReplyOverTheServerLimitIsResourceExhausted) {
  run([&]<class F>() {
    brine::ServerOptions o;
    o.max_frame_size = 64 * 1024;
    TestServer s(o);
    Client c(listen(s), client_options());
    const auto r = c.template try_call<typename F::Blob>("inflate", F::number(100 * 1024));
    EXPECT_EQ(r.code(), StatusCode::resource_exhausted) << r.status().to_string();
    EXPECT_EQ(F::value(c.template call<typename F::Number>("add", F::add(1, 1))), 2);
  });
}

TEST_P(Calls, ReplyOverTheClientLimitIsResourceExhausted) {
  run([&]<class F>() {
    TestServer s;
    auto o = client_options();
    o.max_frame_size = 4096;
    Client c(listen(s), o);
    const auto r = c.template try_call<typename F::Blob>("inflate", F::number(10000));
    EXPECT_EQ(r.code(), zmq_connection() ? StatusCode::unavailable : StatusCode::resource_exhausted)
        << r.status().to_string();
  });
}

TEST_P(Calls, CloseCancelsPendingCalls) {
  run([&]<class F>() {
    TestServer s;
    Client c(listen(s), client_options());
    auto f = c.template call_async<typename F::Number>("wait", F::wait(3000));
    c.close();
    ASSERT_EQ(f.wait_for(1s), std::future_status::ready);
    try {
      f.get();
      FAIL();
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), StatusCode::cancelled);
    }
    EXPECT_EQ(c.template try_call<typename F::Number>("add", F::add(1, 1)).code(),
              StatusCode::cancelled);
  });
}

TEST_P(Calls, CallbackFormIsCalledOnce) {
  run([&]<class F>() {
    TestServer s;
    Client c(listen(s), client_options());
    std::promise<double> got;
    std::atomic<int> calls{0};
    c.template call_async<typename F::Number>("add", F::add(20, 22),
                                              [&](brine::Result<typename F::Number> r) {
                                                ++calls;
                                                got.set_value(r.ok() ? F::value(*r) : -1);
                                              });
    auto fut = got.get_future();
    ASSERT_EQ(fut.wait_for(5s), std::future_status::ready);
    EXPECT_EQ(fut.get(), 42);
    EXPECT_EQ(calls.load(), 1);
  });
}

TEST_P(Calls, OnewayCallsRunWithoutReplies) {
  run([&]<class F>() {
    TestServer s;
    Client c(listen(s), client_options());
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(c.notify("count", F::number(2)).ok());
    // Oneway handlers may still be running on the pool: ask until they are all counted.
    const auto deadline = Clock::now() + 5s;
    double seen = 0;
    while (Clock::now() < deadline) {
      seen = F::value(c.template call<typename F::Number>("counted", F::number(0)));
      if (seen == 100) break;
      std::this_thread::yield();
    }
    EXPECT_EQ(seen, 100);
  });
}

TEST_P(Calls, ManyThreadsManyCallsInFlightOnOneClient) {
  run([&]<class F>() {
    TestServer s;
    Client c(listen(s), client_options());
    constexpr int kThreads = 8;
    constexpr int kCalls = 200;
    std::atomic<int> wrong{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        std::vector<std::future<typename F::Number>> inflight;
        for (int i = 0; i < kCalls; ++i) {
          inflight.push_back(c.template call_async<typename F::Number>("add", F::add(t, i)));
        }
        for (int i = 0; i < kCalls; ++i) {
          try {
            if (F::value(inflight[std::size_t(i)].get()) != t + i) ++wrong;
            // And blocking calls interleaved with the async ones.
            if (i % 20 == 0 &&
                F::value(c.template call<typename F::Number>("add", F::add(t, -i))) != t - i) {
              ++wrong;
            }
          } catch (const RpcError& e) {
            ADD_FAILURE() << e.what();
            ++wrong;
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(wrong.load(), 0);
  });
}

// Low-latency mode: both sides spin before sleeping. Blocking, asynchronous and cancelled calls
// behave as without it.
TEST_P(Calls, BusyPollingClientAndServerBehaveTheSame) {
  run([&]<class F>() {
    brine::ServerOptions so;
    so.workers = 0;
    so.busy_poll = 200us;
    TestServer s(so);
    auto o = client_options();
    o.busy_poll = 200us;
    Client c(listen(s), o);
    for (int i = 0; i < 200; ++i) {
      ASSERT_EQ(F::value(c.template call<typename F::Number>("add", F::add(i, 1))), i + 1);
    }
    auto later = c.template call_async<typename F::Number>("add", F::add(2, 2));
    EXPECT_EQ(F::value(c.template call<typename F::Number>("add", F::add(1, 1))), 2);
    EXPECT_EQ(F::value(later.get()), 4);
    // Over mem:// a server with workers = 0 runs the handler on the calling thread itself, which
    // then cannot give up before it returns (docs/design.md, "mem://").
    if (test_transport(GetParam().transport).delivers_inline) return;
    const auto r = c.template try_call<typename F::Number>("wait", F::wait(500), {100ms});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code, StatusCode::deadline_exceeded);
  });
}

// A blocking caller that reads the socket itself delivers the replies of asynchronous calls it
// meets, and when it stops reading the client's I/O thread takes over: every call completes.
TEST_P(Calls, AsyncRepliesArriveWhileABlockingCallerReads) {
  run([&]<class F>() {
    TestServer s;
    Client c(listen(s), client_options());
    for (int round = 0; round < 50; ++round) {
      std::vector<std::future<typename F::Number>> inflight;
      for (int i = 0; i < 8; ++i) {
        inflight.push_back(c.template call_async<typename F::Number>("add", F::add(round, i)));
      }
      EXPECT_EQ(F::value(c.template call<typename F::Number>("add", F::add(round, 100))),
                round + 100);
      for (int i = 0; i < 8; ++i) {
        ASSERT_EQ(inflight[std::size_t(i)].wait_for(10s), std::future_status::ready);
        EXPECT_EQ(F::value(inflight[std::size_t(i)].get()), round + i);
      }
    }
  });
}

TEST_P(Calls, RepliesArriveOutOfOrder) {
  run([&]<class F>() {
    TestServer s;
    Client c(listen(s), client_options());
    auto slow = c.template call_async<typename F::Number>("wait", F::wait(300));
    auto fast = c.template call_async<typename F::Number>("add", F::add(1, 2));
    ASSERT_EQ(fast.wait_for(5s), std::future_status::ready);
    EXPECT_EQ(slow.wait_for(0s), std::future_status::timeout);  // still waiting
    EXPECT_EQ(F::value(fast.get()), 3);
    EXPECT_EQ(F::value(slow.get()), 300);
  });
}

INSTANTIATE_TEST_SUITE_P(AllTransportsAndCodecs, Calls, testing::ValuesIn(grid(transports())),
                         ParamName());

// Handlers inline on the I/O thread (workers = 0).
TEST(InlineHandlers, ServeManyThreads) {
  brine::ServerOptions o;
  o.workers = 0;
  TestServer s(o);
  Client c(s.listen("tcp4"));
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 300; ++i) {
        if (c.call(calc::kAdd, {double(t), double(i)}).value != t + i) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
}

// Adaptive inline (ServerOptions::inline_fast_handlers): with workers, a method proved fast runs
// on the I/O thread; a slow one, or one that calls onward, stays on the workers.
#if defined(__SANITIZE_THREAD__)
constexpr bool kSlowBuild = true;  // ThreadSanitizer: a handler's run is ten times longer
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr bool kSlowBuild = true;
#else
constexpr bool kSlowBuild = false;
#endif
#else
constexpr bool kSlowBuild = false;
#endif

brine::Server& fast_and_slow(brine::Server& s, std::shared_ptr<std::atomic<bool>> slow) {
  s.handle("flip", [slow](const calc::AddRequest& r) {
    if (slow->load()) std::this_thread::sleep_for(2ms);
    return calc::Number{r.a + r.b};
  });
  s.handle("sleepy", [](const calc::AddRequest& r) {
    std::this_thread::sleep_for(200us);
    return calc::Number{r.a};
  });
  return s;
}

TEST(AdaptiveInline, FastMethodsMoveToTheIOThreadAndSlowOnesStayOnWorkers) {
  if (kSlowBuild) GTEST_SKIP() << "handlers are not fast under ThreadSanitizer";
  auto slow = std::make_shared<std::atomic<bool>>(false);
  brine::Server s({.workers = 2});
  fast_and_slow(s, slow);
  const std::string uri = s.listen("tcp://127.0.0.1:0");
  s.start();
  Client c(uri);
  for (int i = 0; i < 100; ++i)
    ASSERT_EQ(c.call<calc::Number>("sleepy", calc::AddRequest{1, 0}).value, 1);
  EXPECT_EQ(s.stats().calls_inline, 0u);  // never fast enough
  for (int i = 0; i < 2000 && s.stats().calls_inline < 100; ++i) {
    ASSERT_EQ(c.call<calc::Number>("flip", calc::AddRequest{1, 2}).value, 3);
  }
  EXPECT_GE(s.stats().calls_inline, 100u);
  // It turns slow: one call takes it back to the workers (a preempted fast call on this busy
  // machine may have done so already: at least one demotion)...
  slow->store(true);
  const auto demoted_before = s.stats().inline_demotions;
  EXPECT_EQ(c.call<calc::Number>("flip", calc::AddRequest{1, 2}).value, 3);
  EXPECT_GE(s.stats().inline_demotions, std::max<std::uint64_t>(demoted_before, 1));
  const auto inline_before = s.stats().calls_inline;
  for (int i = 0; i < 10; ++i) c.call<calc::Number>("flip", calc::AddRequest{1, 2});
  EXPECT_EQ(s.stats().calls_inline, inline_before);
  // ...and fast again, it must prove itself over at least four times as many calls (256).
  slow->store(false);
  for (int i = 0; i < 150; ++i) c.call<calc::Number>("flip", calc::AddRequest{1, 2});
  EXPECT_EQ(s.stats().calls_inline, inline_before);
  for (int i = 0; i < 20000 && s.stats().calls_inline == inline_before; ++i) {
    c.call<calc::Number>("flip", calc::AddRequest{1, 2});
  }
  EXPECT_GT(s.stats().calls_inline, inline_before);
}

TEST(AdaptiveInline, ASlowCallOnAWorkerDoesNotHoldUpInlineCalls) {
  if (kSlowBuild) GTEST_SKIP() << "handlers are not fast under ThreadSanitizer";
  auto slow = std::make_shared<std::atomic<bool>>(false);
  brine::Server s({.workers = 2});
  fast_and_slow(s, slow);
  s.handle("long", [](const calc::AddRequest& r) {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::int64_t(r.a)));
    return calc::Number{r.a};
  });
  const std::string uri = s.listen("tcp://127.0.0.1:0");
  s.start();
  Client c(uri);
  for (int i = 0; i < 2000 && s.stats().calls_inline < 10; ++i) {
    c.call<calc::Number>("flip", calc::AddRequest{1, 2});
  }
  ASSERT_GT(s.stats().calls_inline, 0u);
  Client other(uri);
  auto pending = std::async(std::launch::async, [&] {
    return other.call<calc::Number>("long", calc::AddRequest{1000, 0}).value;
  });
  ASSERT_TRUE(eventually([&] { return s.stats().calls_in_flight == 1; }));
  const auto t0 = Clock::now();
  for (int i = 0; i < 200; ++i)
    ASSERT_EQ(c.call<calc::Number>("flip", calc::AddRequest{1, 2}).value, 3);
  EXPECT_LT(Clock::now() - t0, 900ms);  // all while the long call still runs
  EXPECT_EQ(pending.get(), 1000);
}

TEST(AdaptiveInline, MethodsThatCallOnwardStayOnWorkers) {
  TestServer backend;
  const std::string backend_uri = backend.listen("tcp4");
  brine::Server s({.workers = 2});
  auto onward = std::make_shared<Client>(backend_uri);
  s.handle("relay", [onward](const calc::AddRequest& r) { return onward->call(calc::kAdd, r); });
  const std::string uri = s.listen("tcp://127.0.0.1:0");
  s.start();
  Client c(uri);
  for (int i = 0; i < 300; ++i) {
    ASSERT_EQ(c.call<calc::Number>("relay", calc::AddRequest{2, 2}).value, 4);
  }
  EXPECT_EQ(s.stats().calls_inline, 0u);
}

// Calls that never ran the user's code (refused in decoding) teach nothing: a client cannot
// make a slow method look fast.
TEST(AdaptiveInline, CallsThatDidNotRunTeachNothing) {
  auto slow = std::make_shared<std::atomic<bool>>(false);
  brine::Server s({.workers = 2});
  fast_and_slow(s, slow);
  const std::string uri = s.listen("tcp://127.0.0.1:0");
  s.start();
  // "sleepy" takes 200 us; requests that do not decode fail at once, 300 of them.
  Client garbage(uri, {.check_contracts = false});
  for (int i = 0; i < 300; ++i) {
    const auto r = garbage.try_call<calc::Number>("sleepy", brine::JsonText{"[1]"});
    EXPECT_FALSE(r.ok());
  }
  Client c(uri);
  for (int i = 0; i < 50; ++i) c.call<calc::Number>("sleepy", calc::AddRequest{1, 0});
  EXPECT_EQ(s.stats().calls_inline, 0u);
}

TEST(AdaptiveInline, OffRunsEveryCallOnWorkers) {
  brine::Server s({.workers = 2, .inline_fast_handlers = false});
  auto slow = std::make_shared<std::atomic<bool>>(false);
  fast_and_slow(s, slow);
  const std::string uri = s.listen("tcp://127.0.0.1:0");
  s.start();
  Client c(uri);
  for (int i = 0; i < 300; ++i) c.call<calc::Number>("flip", calc::AddRequest{1, 2});
  EXPECT_EQ(s.stats().calls_inline, 0u);
}

TEST(ClientOptions, BadCodecOrUriThrows) {
  EXPECT_THROW(Client("tcp://127.0.0.1:1", {.codec = "pickle"}), std::invalid_argument);
  EXPECT_THROW(Client("sctp://127.0.0.1:1"), std::invalid_argument);
  EXPECT_THROW(Client("udp://127.0.0.1"), std::invalid_argument);
  EXPECT_THROW(Client("udp://::1:80"), std::invalid_argument);
  EXPECT_THROW(Client("unixgram://relative/path"), std::invalid_argument);
  EXPECT_THROW(Client("tcp://127.0.0.1"), std::invalid_argument);
  EXPECT_THROW(Client("tcp://::1:80"), std::invalid_argument);
  EXPECT_THROW(Client("unix://relative/path"), std::invalid_argument);
  EXPECT_THROW(Client("tcp://127.0.0.1:70000"), std::invalid_argument);
  EXPECT_THROW(Client("zmq+udp://127.0.0.1:1"), std::invalid_argument);
  EXPECT_THROW(Client("zmq+tcp://127.0.0.1"), std::invalid_argument);
  EXPECT_THROW(Client("zmq+ipc://"), std::invalid_argument);
}

TEST(ServerRegistration, DuplicateHandlerThrows) {
  brine::Server s;
  s.handle(calc::kAdd, [](const calc::AddRequest& r) { return calc::Number{r.a}; });
  EXPECT_THROW(s.handle(calc::kAdd, [](const calc::AddRequest& r) { return calc::Number{r.b}; }),
               std::logic_error);
  // The protobuf family may share the name for the codecs not taken: both could serve json.
  EXPECT_THROW(
      s.handle(calc::pb::kAdd, [](const calc::pb::AddRequest&) { return calc::pb::Number{}; }),
      std::logic_error);
  s.handle(calc::pb::kAdd, [](const calc::pb::AddRequest&) { return calc::pb::Number{}; },
           {.codecs = {brine::CodecId::protobuf}});
}

TEST(ServerListen, LocalhostPortZeroReportsTheRealPort) {
  brine::Server s;
  const std::string uri = s.listen("tcp://localhost:0");
  EXPECT_EQ(uri.rfind("tcp://localhost:", 0), 0u);
  EXPECT_NE(uri, "tcp://localhost:0");
}

// Socket files: owner-only unless configured otherwise (connecting needs write permission).
unsigned mode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return unsigned(st.st_mode & 0777);
}

TEST(ServerListen, SocketFilesAreOwnerOnlyByDefault) {
  const std::string base = "/tmp/brine-mode-" + std::to_string(::getpid());
  brine::Server s;
  s.listen("unix://" + base + ".sock");
  s.listen("zmq+ipc://" + base + ".ipc");
  EXPECT_EQ(mode_of(base + ".sock"), 0600u);
  EXPECT_EQ(mode_of(base + ".ipc"), 0600u);
}

TEST(ServerListen, SocketFileModeIsConfigurable) {
  const std::string base = "/tmp/brine-mode-group-" + std::to_string(::getpid());
  brine::ServerOptions o;
  o.unix_socket_mode = 0660;
  brine::Server s(o);
  calc::register_calculator(s);
  const std::string uri = s.listen("unix://" + base + ".sock");
  s.listen("zmq+ipc://" + base + ".ipc");
  s.start();
  EXPECT_EQ(mode_of(base + ".sock"), 0660u);
  EXPECT_EQ(mode_of(base + ".ipc"), 0660u);
  Client c(uri);  // the owner still connects
  EXPECT_EQ(c.call(calc::kAdd, {1, 1}).value, 2);
}

// --- bounded work: past the limits, RESOURCE_EXHAUSTED at once instead of unbounded queues ------
struct Gate {
  std::promise<void> open;
  std::shared_future<void> opened = open.get_future().share();
};

// A started server whose one method, "held", answers only once the gate opens.
struct HeldServer {
  HeldServer(brine::ServerOptions o, const std::string& name) : server(std::move(o)) {
    server.handle("held", [g = gate](const calc::Number& n) {
      g->opened.wait();
      return n;
    });
    uri = server.listen("unix://@brine-limits-" + name + "-" + std::to_string(::getpid()));
    server.start();
  }
  std::shared_ptr<Gate> gate = std::make_shared<Gate>();
  brine::Server server;
  std::string uri;
};

TEST(ServerLimits, CallsBeyondTheConnectionsLimitAreRefusedAtOnce) {
  brine::ServerOptions o;
  o.workers = 1;
  o.max_inflight_per_connection = 4;
  HeldServer s(o, "conn");
  auto& gate = s.gate;
  Client c(s.uri);
  std::vector<std::future<calc::Number>> calls;
  for (int i = 0; i < 10; ++i)
    calls.push_back(c.call_async<calc::Number>("held", calc::Number{double(i)}));
  // The 6 beyond the limit are answered while the first 4 are still held.
  for (int i = 4; i < 10; ++i) {
    ASSERT_EQ(calls[std::size_t(i)].wait_for(10s), std::future_status::ready) << i;
    try {
      calls[std::size_t(i)].get();
      ADD_FAILURE() << i << " succeeded";
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), StatusCode::resource_exhausted);
      EXPECT_NE(std::string(e.what()).find("in flight on this connection"), std::string::npos);
    }
  }
  gate->open.set_value();
  for (int i = 0; i < 4; ++i) EXPECT_EQ(calls[std::size_t(i)].get().value, i);
  EXPECT_EQ(c.call<calc::Number>("held", calc::Number{7}).value, 7);  // the count went back down
}

TEST(ServerLimits, CallsBeyondTheServersQueueAreRefusedAtOnce) {
  brine::ServerOptions o;
  o.workers = 1;
  o.max_queued_calls = 2;
  HeldServer s(o, "queue");
  auto& gate = s.gate;
  const std::string& uri = s.uri;
  // One connection, so the server reads the three in order: two take the queue's places.
  Client c(uri);
  auto first = c.call_async<calc::Number>("held", calc::Number{1});
  auto second = c.call_async<calc::Number>("held", calc::Number{2});
  const auto third = c.try_call<calc::Number>("held", calc::Number{3});
  EXPECT_EQ(third.code(), StatusCode::resource_exhausted);
  EXPECT_NE(third.status().message.find("waiting for a worker"), std::string::npos);
  gate->open.set_value();
  EXPECT_EQ(first.get().value, 1);
  EXPECT_EQ(second.get().value, 2);
}

}  // namespace
