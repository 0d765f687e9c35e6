// Streams and asynchronous handlers end to end, in one process: every body runs over every
// transport that carries streams and every codec.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include <brine/testing.hpp>

#include "eventually.hpp"
#include "families.hpp"
#include "params.hpp"
#include "test_server.hpp"

namespace {

using brine::CallOptions;
using brine::Client;
using brine::StatusCode;
using namespace brine_test;
using namespace std::chrono_literals;

// What the stream handlers record, for the tests to look at.
struct Probe {
  std::atomic<int> written{0};  // items the "slow_sink" producers have written
  std::atomic<int> ended{0};    // "forever" handlers that saw their stream end
  std::atomic<int> started{0};  // "forever" handlers that have started
  std::mutex mu;
  // The waiting callers' requests (their a) and their Responders.
  std::vector<std::pair<double, brine::Responder<calc::Number>>> cereal_waiters;
  std::vector<std::pair<double, brine::Responder<calc::pb::Number>>> pb_waiters;
  template <class N>
  auto& waiters() {
    if constexpr (std::is_same_v<N, calc::Number>) {
      return cereal_waiters;
    } else {
      return pb_waiters;
    }
  }
};

// The stream methods, for one type family (F::Add requests, F::Number items).
template <class F>
void add_stream_methods(brine::Server& s, const std::shared_ptr<Probe>& probe,
                        brine::HandlerOptions o) {
  using Number = typename F::Number;
  using Add = typename F::Add;
  // count: items 0 .. a-1 (a plain function on a worker, and a coroutine).
  s.handle(
      "count",
      [](const Add& r, brine::Writer<Number>& out) {
        for (int i = 0; i < int(F::a(r)); ++i) {
          if (!out.write(F::number(i))) return;
        }
      },
      o);
  s.handle(
      "co_count",
      [](const Add& r, brine::Writer<Number>& out) -> brine::Task<void> {
        for (int i = 0; i < int(F::a(r)); ++i) {
          if (!co_await out.async_write(F::number(i))) co_return;
        }
      },
      o);
  // sum: the request's a plus every item.
  s.handle(
      "sum",
      [](const Add& r, brine::Reader<Number>& in) {
        double total = F::a(r);
        while (auto n = in.read()) total += F::value(*n);
        return F::number(total);
      },
      o);
  s.handle(
      "co_sum",
      [](const Add& r, brine::Reader<Number>& in) -> brine::Task<Number> {
        double total = F::a(r);
        while (auto n = co_await in.async_read()) total += F::value(*n);
        co_return F::number(total);
      },
      o);
  // twice: every item back doubled, then the count of items after the client's half-close.
  s.handle(
      "twice",
      [](const Add&, brine::Reader<Number>& in, brine::Writer<Number>& out) {
        int n = 0;
        while (auto x = in.read()) {
          ++n;
          if (!out.write(F::number(2 * F::value(*x)))) return;
        }
        out.write(F::number(-n));
      },
      o);
  s.handle(
      "co_twice",
      [](const Add&, brine::Reader<Number>& in, brine::Writer<Number>& out) -> brine::Task<void> {
        int n = 0;
        while (auto x = co_await in.async_read()) {
          ++n;
          if (!co_await out.async_write(F::number(2 * F::value(*x)))) co_return;
        }
        co_await out.async_write(F::number(-n));
      },
      o);
  // fail_after: a items, then an error.
  s.handle(
      "fail_after",
      [](const Add& r, brine::Writer<Number>& out) {
        for (int i = 0; i < int(F::a(r)); ++i) out.write(F::number(i));
        throw brine::RpcError(StatusCode::invalid_argument, "failed after the items");
      },
      o);
  // forever: writes until the stream ends (deadline, cancel, connection lost).
  s.handle(
      "forever",
      [probe](const Add&, brine::Writer<Number>& out) -> brine::Task<void> {
        probe->started.fetch_add(1);
        for (int i = 0;; ++i) {
          if (!co_await out.async_write(F::number(i))) break;
        }
        probe->ended.fetch_add(1);
      },
      o);
  // slow_sink: b items of a bytes' worth each (as the number's digits do not grow, a Blob
  // would; numbers keep the families simple: the count is what is bounded).
  s.handle(
      "produce",
      [probe](const Add& r, brine::Writer<Number>& out) {
        for (int i = 0; i < int(F::b(r)); ++i) {
          if (!out.write(F::number(i))) return;
          probe->written.fetch_add(1);
        }
      },
      o);
  // wait_event: answered later, when the test releases the waiters.
  s.handle(
      "wait_event",
      [probe](const Add& req, brine::Responder<Number> r) {
        std::lock_guard lk(probe->mu);
        probe->template waiters<Number>().emplace_back(F::a(req), std::move(r));
      },
      o);
  // drop: a Responder dropped without an answer.
  s.handle(
      "drop", [](const Add&, brine::Responder<Number>) {}, o);
  // co_add: a coroutine handler.
  s.handle(
      "co_add", [](Add r) -> brine::Task<Number> { co_return F::number(F::a(r) + F::b(r)); }, o);
}

struct StreamServer {
  explicit StreamServer(brine::ServerOptions options = {}) : server(std::move(options)) {
    add_stream_methods<CerealFamily>(server, probe, {});
    add_stream_methods<ProtobufFamily>(server, probe, {.codecs = {brine::CodecId::protobuf}});
  }
  std::string listen(const std::string& transport) {
    const std::string uri = server.listen(listen_uri(transport));
    server.start();
    return uri;
  }
  std::shared_ptr<Probe> probe = std::make_shared<Probe>();
  brine::Server server;
};

class Streams : public testing::TestWithParam<Param> {
 protected:
  template <class Body>
  void run(Body&& body) {
    with_family(GetParam().codec, std::forward<Body>(body));
  }
  brine::ClientOptions client_options() const {
    brine::ClientOptions o;
    o.codec = GetParam().codec;
    o.timeout = 20s;
    o.tls.ca_file = tls_paths().ca;
    return o;
  }
  static brine::ServerOptions server_options() {
    (void)tls_files();  // made on first use
    brine::ServerOptions o;
    o.tls.certificate_file = tls_paths().server_crt;
    o.tls.private_key_file = tls_paths().server_key;
    return o;
  }
};

template <class F>
typename F::Add ask(double a, double b = 0) {
  return F::add(a, b);
}

TEST_P(Streams, ServerStreamDeliversEveryItemInOrder) {
  run([&]<class F>() {
    StreamServer s(server_options());
    Client c(s.listen(GetParam().transport), client_options());
    for (const char* method : {"count", "co_count"}) {
      auto stream = c.template stream<typename F::Number>(method, ask<F>(5000));
      int expect = 0;
      while (auto n = stream.read()) {
        ASSERT_EQ(F::value(*n), expect) << method;
        ++expect;
      }
      EXPECT_EQ(expect, 5000) << method;
      EXPECT_TRUE(stream.status().ok()) << stream.status().message;
      EXPECT_TRUE(stream.finished());
    }
  });
}

TEST_P(Streams, ClientStreamSumsItsItems) {
  run([&]<class F>() {
    StreamServer s(server_options());
    Client c(s.listen(GetParam().transport), client_options());
    for (const char* method : {"sum", "co_sum"}) {
      auto up = c.template upload<typename F::Number, typename F::Number>(method, ask<F>(1000));
      for (int i = 1; i <= 3000; ++i) ASSERT_TRUE(up.write(F::number(i))) << up.status().message;
      EXPECT_EQ(F::value(up.finish()), 1000 + 3000.0 * 3001 / 2) << method;
    }
  });
}

TEST_P(Streams, BidiStreamAnswersItemsAndSeesTheHalfClose) {
  run([&]<class F>() {
    StreamServer s(server_options());
    Client c(s.listen(GetParam().transport), client_options());
    for (const char* method : {"twice", "co_twice"}) {
      auto chat = c.template bidi<typename F::Number, typename F::Number>(method, ask<F>(0));
      // In lock step: each answer before the next item.
      for (int i = 0; i < 200; ++i) {
        ASSERT_TRUE(chat.write(F::number(i)));
        auto back = chat.read();
        ASSERT_TRUE(back) << chat.status().message;
        EXPECT_EQ(F::value(*back), 2 * i);
      }
      chat.close_write();
      auto last = chat.read();
      ASSERT_TRUE(last);
      EXPECT_EQ(F::value(*last), -200);  // the server saw the end of the items
      EXPECT_FALSE(chat.read());
      EXPECT_TRUE(chat.finish().ok());
    }
  });
}

TEST_P(Streams, BidiWritesAndReadsFromTwoThreads) {
  run([&]<class F>() {
    StreamServer s(server_options());
    Client c(s.listen(GetParam().transport), client_options());
    auto chat = c.template bidi<typename F::Number, typename F::Number>("twice", ask<F>(0));
    constexpr int kItems = 20000;  // far more than one window of items each way
    std::thread writer([&] {
      for (int i = 0; i < kItems; ++i) {
        if (!chat.write(F::number(i))) return;
      }
      chat.close_write();
    });
    int got = 0;
    while (auto x = chat.read()) {
      if (F::value(*x) < 0) {
        EXPECT_EQ(F::value(*x), -kItems);
        continue;
      }
      ASSERT_EQ(F::value(*x), 2 * got);
      ++got;
    }
    writer.join();
    EXPECT_EQ(got, kItems);
    EXPECT_TRUE(chat.status().ok()) << chat.status().message;
  });
}

TEST_P(Streams, AnErrorInTheMiddleEndsTheStreamAfterItsItems) {
  run([&]<class F>() {
    StreamServer s(server_options());
    Client c(s.listen(GetParam().transport), client_options());
    auto stream = c.template stream<typename F::Number>("fail_after", ask<F>(3));
    int got = 0;
    while (stream.read()) ++got;
    EXPECT_EQ(got, 3);
    EXPECT_EQ(stream.status().code, StatusCode::invalid_argument);
    EXPECT_EQ(stream.status().message, "failed after the items");
  });
}

TEST_P(Streams, TheDeadlineEndsAStreamThatWouldRunForever) {
  run([&]<class F>() {
    StreamServer s(server_options());
    Client c(s.listen(GetParam().transport), client_options());
    auto stream = c.template stream<typename F::Number>("forever", ask<F>(0), {.timeout = 300ms});
    const auto start = std::chrono::steady_clock::now();
    int got = 0;
    while (stream.read()) ++got;
    EXPECT_GT(got, 0);
    EXPECT_EQ(stream.status().code, StatusCode::deadline_exceeded) << stream.status().message;
    EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
    // The server's handler saw its writes end, and the call is over there too.
    EXPECT_TRUE(eventually([&] { return s.probe->ended.load() == 1; }));
    EXPECT_TRUE(eventually([&] { return s.server.stats().calls_in_flight == 0; }));
  });
}

TEST_P(Streams, CancelMidStreamFreesBothSides) {
  run([&]<class F>() {
    StreamServer s(server_options());
    Client c(s.listen(GetParam().transport), client_options());
    {
      auto stream = c.template stream<typename F::Number>("forever", ask<F>(0));
      for (int i = 0; i < 100; ++i) ASSERT_TRUE(stream.read());
      stream.cancel();
      while (stream.read()) {
      }
      EXPECT_EQ(stream.status().code, StatusCode::cancelled);
    }
    {
      // Dropping a running stream cancels it too.
      auto stream = c.template stream<typename F::Number>("forever", ask<F>(0));
      ASSERT_TRUE(stream.read());
    }
    EXPECT_TRUE(eventually([&] { return s.probe->ended.load() == 2; }));
    EXPECT_TRUE(eventually([&] { return s.server.stats().calls_in_flight == 0; }));
    EXPECT_EQ(c.stats().calls_pending, 0u);
    // The connection serves on.
    auto again = c.template stream<typename F::Number>("count", ask<F>(3));
    int got = 0;
    while (again.read()) ++got;
    EXPECT_EQ(got, 3);
  });
}

TEST_P(Streams, ASlowReaderHoldsTheWriterBackByTheWindow) {
  run([&]<class F>() {
    StreamServer s(server_options());
    brine::ClientOptions o = client_options();
    o.stream_window = 65536;
    Client c(s.listen(GetParam().transport), o);
    auto stream = c.template stream<typename F::Number>("produce", ask<F>(0, 1e6));
    ASSERT_TRUE(stream.read());
    // Without reading, the producer stops where the window is full: 64 KiB of ~30-byte item
    // frames is about 2,000 items, whatever a million it has to send. (Each item's frame counts
    // its 16-byte header, so fewer than 65536 / 16 items fit at most.)
    EXPECT_TRUE(eventually([&] { return s.probe->written.load() > 100; }));
    std::this_thread::sleep_for(200ms);
    const int held = s.probe->written.load();
    EXPECT_LE(held, 65536 / 16 + 1);
    std::this_thread::sleep_for(200ms);
    EXPECT_EQ(s.probe->written.load(), held);  // it waits, it does not buffer
    // Reading releases it, window by window.
    for (int i = 0; i < 3 * held; ++i) ASSERT_TRUE(stream.read());
    EXPECT_TRUE(eventually([&] { return s.probe->written.load() > 2 * held; }));
  });
}

TEST_P(Streams, ManyStreamsAtOnceBesideCalls) {
  run([&]<class F>() {
    StreamServer s(server_options());
    Client c(s.listen(GetParam().transport), client_options());
    std::vector<brine::Stream<typename F::Number>> streams;
    for (int i = 0; i < 200; ++i) {
      streams.push_back(c.template stream<typename F::Number>("co_count", ask<F>(50)));
    }
    // Ordinary calls go on meanwhile.
    EXPECT_EQ(F::value(c.template call<typename F::Number>("co_add", ask<F>(2, 3))), 5);
    for (auto& st : streams) {
      int got = 0;
      while (auto n = st.read()) ASSERT_EQ(F::value(*n), got++);
      EXPECT_EQ(got, 50);
      EXPECT_TRUE(st.status().ok()) << st.status().message;
    }
  });
}

TEST_P(Streams, AsyncHandlersAnswerLaterWithoutHoldingWorkers) {
  run([&]<class F>() {
    brine::ServerOptions so = server_options();
    so.workers = 4;
    StreamServer s(so);
    Client c(s.listen(GetParam().transport), client_options());
    using Number = typename F::Number;
    // 1,000 callers wait for an event on a server with 4 workers.
    std::vector<std::future<Number>> waiting;
    for (int i = 0; i < 1000; ++i) {
      waiting.push_back(c.template call_async<Number>("wait_event", ask<F>(i)));
    }
    EXPECT_TRUE(eventually([&] {
      std::lock_guard lk(s.probe->mu);
      return s.probe->template waiters<Number>().size() == 1000;
    }));
    // The workers are free: other calls are answered meanwhile.
    EXPECT_EQ(F::value(c.template call<Number>("co_add", ask<F>(1, 2))), 3);
    {
      std::lock_guard lk(s.probe->mu);
      for (auto& [a, r] : s.probe->template waiters<Number>()) EXPECT_TRUE(r.reply(F::number(a)));
      s.probe->template waiters<Number>().clear();
    }
    for (int i = 0; i < 1000; ++i) EXPECT_EQ(F::value(waiting[i].get()), i);
  });
}

TEST_P(Streams, ADroppedResponderStillEndsItsCall) {
  run([&]<class F>() {
    StreamServer s(server_options());
    Client c(s.listen(GetParam().transport), client_options());
    const auto r = c.template try_call<typename F::Number>("drop", ask<F>(1));
    EXPECT_EQ(r.code(), StatusCode::internal);
    EXPECT_NE(r.status().message.find("Responder"), std::string::npos) << r.status().message;
  });
}

TEST_P(Streams, CallsAndStreamReadsCanBeAwaited) {
  run([&]<class F>() {
    StreamServer s(server_options());
    Client c(s.listen(GetParam().transport), client_options());
    using Number = typename F::Number;
    auto body = [&]() -> brine::Task<double> {
      brine::Result<Number> sum = co_await c.template co_call<Number>("co_add", ask<F>(20, 22));
      auto stream = c.template stream<Number>("count", ask<F>(10));
      double total = F::value(std::move(sum).value_or_throw());
      while (auto n = co_await stream.async_read()) total += F::value(*n);
      co_return total;
    };
    EXPECT_EQ(brine::sync_wait(body()), 42 + 45);
  });
}

TEST_P(Streams, AMismatchedStreamTypeFailsWithTheContract) {
  run([&]<class F>() {
    StreamServer s(server_options());
    Client c(s.listen(GetParam().transport), client_options());
    // Items of another type than the server's.
    auto wrong = c.template stream<typename F::Blob>("count", ask<F>(3));
    EXPECT_FALSE(wrong.read());
    EXPECT_EQ(wrong.status().code, StatusCode::failed_precondition) << wrong.status().message;
    // A stream method called as a call, and a call opened as a stream.
    const auto r = c.template try_call<typename F::Number>("count", ask<F>(3));
    EXPECT_EQ(r.code(), StatusCode::failed_precondition);
    EXPECT_NE(r.status().message.find("stream"), std::string::npos) << r.status().message;
  });
}

INSTANTIATE_TEST_SUITE_P(StreamTransportsAndCodecs, Streams,
                         testing::ValuesIn(grid(transports([](const TestTransport& tr) {
                           return !tr.datagram;
                         }))),
                         ParamName());

// 10,000 streams at once on one connection, each a coroutine on the server (no thread each).
TEST(StreamsAtScale, TenThousandConcurrentStreamsOnOneConnection) {
  brine::ServerOptions so;
  so.max_inflight_per_connection = 20000;
  StreamServer s(so);
  brine::ClientOptions o;
  o.codec = "cereal";
  o.timeout = 60s;
  o.stream_window = 65536;  // no extra credit frame per stream
  Client c(s.listen("tcp4"), o);
  // Two-way streams that wait for the client's items: all 10,000 stay open on the server at
  // once, each a suspended coroutine.
  std::vector<brine::Bidi<calc::Number, calc::Number>> streams;
  streams.reserve(10000);
  for (int i = 0; i < 10000; ++i) {
    streams.push_back(c.bidi<calc::Number, calc::Number>("co_twice", calc::AddRequest{0, 0}));
  }
  EXPECT_TRUE(eventually([&] { return s.server.stats().calls_in_flight == 10000; }, 30s))
      << s.server.stats().calls_in_flight;
  for (int i = 0; i < 10000; ++i) ASSERT_TRUE(streams[std::size_t(i)].write(calc::Number{1.0 * i}));
  for (int i = 0; i < 10000; ++i) {
    auto& st = streams[std::size_t(i)];
    auto back = st.read();
    ASSERT_TRUE(back) << st.status().message;
    ASSERT_EQ(back->value, 2.0 * i);
    st.close_write();
  }
  for (auto& st : streams) {
    auto count = st.read();
    ASSERT_TRUE(count);
    EXPECT_EQ(count->value, -1);
    EXPECT_TRUE(st.finish().ok());
  }
  EXPECT_TRUE(eventually([&] { return s.server.stats().calls_in_flight == 0; }));
}

// A server process killed mid-stream: every stream ends with a status, none hangs.
TEST(StreamsCrossProcess, AServerKilledMidStreamEndsEveryStream) {
  auto probe = std::make_shared<Probe>();
  auto server = brine::testing::ServerProcess::fork(
      {"tcp://127.0.0.1:0"},
      [probe](brine::Server& s) { add_stream_methods<CerealFamily>(s, probe, {}); });
  brine::ClientOptions o;
  o.codec = "cereal";
  o.timeout = 30s;
  Client c(server.endpoint(), o);
  std::vector<brine::Stream<calc::Number>> streams;
  for (int i = 0; i < 50; ++i) {
    streams.push_back(c.stream<calc::Number>("forever", calc::AddRequest{0, 0}));
  }
  auto upload = c.upload<calc::Number, calc::Number>("sum", calc::AddRequest{0, 0});
  for (auto& st : streams) ASSERT_TRUE(st.read());
  ASSERT_TRUE(upload.write(calc::Number{1}));
  server.kill();
  const auto start = std::chrono::steady_clock::now();
  for (auto& st : streams) {
    while (st.read()) {
    }
    EXPECT_EQ(st.status().code, StatusCode::unavailable) << st.status().message;
  }
  // A writer learns it too: its writes fail, and finish() says why.
  while (upload.write(calc::Number{1})) {
  }
  EXPECT_EQ(upload.try_finish().code(), StatusCode::unavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

// Faults on the link, through the test kit's proxy (stream transports it relays; one codec:
// the faults act on bytes, whatever the codec).
class StreamFaults : public testing::TestWithParam<std::string> {
 protected:
  static brine::ServerOptions server_options() {
    (void)tls_files();
    brine::ServerOptions o;
    o.tls.certificate_file = tls_paths().server_crt;
    o.tls.private_key_file = tls_paths().server_key;
    return o;
  }
  static brine::ClientOptions client_options() {
    brine::ClientOptions o;
    o.codec = "cereal";
    o.timeout = 30s;
    o.heartbeat_interval = 200ms;
    o.heartbeat_timeout = 800ms;
    o.tls.ca_file = tls_paths().ca;
    return o;
  }
};

TEST_P(StreamFaults, ASlowLinkDeliversEveryItemInOrder) {
  StreamServer s(server_options());
  brine::testing::FaultProxy proxy(s.listen(GetParam()),
                                   {.latency = 2ms, .bytes_per_second = 400 * 1024});
  Client c(proxy.endpoint(), client_options());
  auto stream = c.stream<calc::Number>("co_count", calc::AddRequest{4000, 0});
  int expect = 0;
  while (auto n = stream.read()) ASSERT_EQ(n->value, expect++);
  EXPECT_EQ(expect, 4000);
  EXPECT_TRUE(stream.status().ok()) << stream.status().message;
}

TEST_P(StreamFaults, ACutMidStreamEndsItOnBothSides) {
  StreamServer s(server_options());
  brine::testing::FaultProxy proxy(s.listen(GetParam()));
  Client c(proxy.endpoint(), client_options());
  auto stream = c.stream<calc::Number>("forever", calc::AddRequest{0, 0});
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(stream.read());
  proxy.reset();
  while (stream.read()) {
  }
  EXPECT_EQ(stream.status().code, StatusCode::unavailable) << stream.status().message;
  EXPECT_TRUE(eventually([&] { return s.probe->ended.load() == 1; }));
  EXPECT_TRUE(eventually([&] { return s.server.stats().calls_in_flight == 0; }));
}

TEST_P(StreamFaults, AHalfOpenLinkEndsTheStreamWithinTheHeartbeatTimeout) {
  StreamServer s(server_options());
  brine::testing::FaultProxy proxy(s.listen(GetParam()));
  Client c(proxy.endpoint(), client_options());
  // The server hears nothing either, and a brine server does not close a connection with a
  // call running for silence alone: the stream's deadline ends it there.
  auto stream = c.stream<calc::Number>("forever", calc::AddRequest{0, 0}, {.timeout = 3s});
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(stream.read());
  proxy.set({.black_hole = true});
  const auto start = std::chrono::steady_clock::now();
  while (stream.read()) {
  }
  EXPECT_EQ(stream.status().code, StatusCode::unavailable) << stream.status().message;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_TRUE(eventually([&] { return s.probe->ended.load() == 1; }));
}

INSTANTIATE_TEST_SUITE_P(StreamTransports, StreamFaults, testing::Values("tcp4", "unix", "tls4"));

// Datagram transports may lose or reorder items: a stream is refused, naming why.
TEST(StreamsOverDatagrams, AreRefusedNamingWhy) {
  for (const std::string transport : {"udp4", "unixgram"}) {
    StreamServer s;
    brine::ClientOptions o;
    o.codec = "cereal";
    Client c(s.listen(transport), o);
    auto stream = c.stream<calc::Number>("count", calc::AddRequest{3, 0});
    EXPECT_FALSE(stream.read());
    EXPECT_EQ(stream.status().code, StatusCode::unimplemented) << transport;
    EXPECT_NE(stream.status().message.find("stream transport"), std::string::npos);
  }
}

}  // namespace
