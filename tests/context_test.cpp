// The call context end to end, in one process: metadata, interceptors, who is calling, every
// status code, the retry hints, typed remote exceptions, and deadlines and cancels that follow a
// call onward. Every body runs over every transport and codec.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "brine/detail/frame.hpp"
#include "eventually.hpp"
#include "families.hpp"
#include "params.hpp"
#include "test_server.hpp"

namespace ctx_test {
// A typed exception, registered on both sides (one process: one registry).
struct Overdrawn : std::runtime_error {
  explicit Overdrawn(const std::string& m) : std::runtime_error(m) {}
};
struct NotRegistered : std::runtime_error {
  explicit NotRegistered(const std::string& m) : std::runtime_error(m) {}
};
}  // namespace ctx_test

namespace {

using brine::CallOptions;
using brine::Client;
using brine::Metadata;
using brine::Retry;
using brine::StatusCode;
using namespace brine_test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// "k=v;k=v" of a Metadata, in order.
// (Bytes outside printable ASCII as \xNN: the JSON payloads carry it as text.)
std::string flat(const Metadata& md) {
  std::string out;
  for (const auto& [k, v] : md) {
    out += k + "=";
    for (const char c : v) {
      if (c >= 0x20 && c < 0x7F) {
        out.push_back(c);
      } else {
        static constexpr char kHex[] = "0123456789abcdef";
        const auto u = static_cast<unsigned char>(c);
        out += {'\\', 'x', kHex[u >> 4], kHex[u & 15]};
      }
    }
    out += ";";
  }
  return out;
}

// Records the order in which interceptors run, and what they saw.
struct Journal {
  std::mutex mu;
  std::vector<std::string> events;
  void add(std::string e) {
    std::lock_guard lk(mu);
    events.push_back(std::move(e));
  }
  std::vector<std::string> take() {
    std::lock_guard lk(mu);
    return std::exchange(events, {});
  }
};

// Logs "<name>.before <method>" and "<name>.after <method> <CODE>", adds "<name>: yes" to the
// request's metadata, and refuses `refuse` with PERMISSION_DENIED.
class Recorder final : public brine::Interceptor {
 public:
  Recorder(std::string name, std::shared_ptr<Journal> j, std::string refuse = {})
      : name_(std::move(name)), j_(std::move(j)), refuse_(std::move(refuse)) {}
  brine::Status before(brine::CallInfo& call) override {
    j_->add(name_ + ".before " + std::string(call.method));
    if (call.method == refuse_) {
      return {StatusCode::permission_denied, name_ + " refuses " + refuse_};
    }
    call.metadata->add(name_, "yes");
    return {};
  }
  void after(brine::CallInfo& call, const brine::Status& outcome,
             std::chrono::nanoseconds took) override {
    EXPECT_GE(took.count(), 0);
    j_->add(name_ + ".after " + std::string(call.method) + " " +
            std::string(brine::status_name(outcome.code)));
  }

 private:
  std::string name_;
  std::shared_ptr<Journal> j_;
  std::string refuse_;
};

// What the handlers of ContextServer saw.
struct Seen {
  std::atomic<int> runs{0};
  std::atomic<int> hops_cancelled{0};
};

template <class F>
void add_context_methods(brine::Server& s, const std::shared_ptr<Seen>& seen,
                         const brine::HandlerOptions& o) {
  using Blob = typename F::Blob;
  using Number = typename F::Number;
  // The request's metadata as "k=v;..."; adds "echoed: <count>" to the reply's.
  s.handle(
      "md_echo",
      [seen](const Blob&) {
        ++seen->runs;
        const Metadata& md = brine::this_call::metadata();
        brine::this_call::add_reply_metadata("echoed", std::to_string(md.size()));
        return F::blob(flat(md));
      },
      o);
  // Fails with the code in the request, after adding reply metadata.
  s.handle(
      "md_fail",
      [](const Number& n) -> Number {
        brine::this_call::add_reply_metadata("why", "on purpose");
        throw brine::RpcError(StatusCode(std::uint32_t(F::value(n))), "failed on purpose");
      },
      o);
  // "transport|address|subject|names..." of the caller.
  s.handle(
      "whoami",
      [](const Blob&) {
        const brine::Peer& p = brine::this_call::peer();
        std::string out = p.transport + "|" + p.address + "|" + p.certificate_subject;
        for (const auto& n : p.certificate_names) out += "|" + n;
        return F::blob(out);
      },
      o);
  // Throws the registered Overdrawn (a > 0) or the unregistered NotRegistered.
  s.handle(
      "overdraw",
      [](const Number& n) -> Number {
        if (F::value(n) > 0)
          throw ctx_test::Overdrawn("balance 3, asked " + std::to_string(int(F::value(n))));
        throw ctx_test::NotRegistered("not registered");
      },
      o);
  // Counts its runs (for "busy" and "refused unrun").
  s.handle(
      "tick",
      [seen](const Number& n) {
        ++seen->runs;
        return n;
      },
      o);
  // Server streams: items "md:<k=v;...>", then its reply metadata "streamed: yes".
  s.handle(
      "md_stream",
      [](const Number& n, brine::Writer<Blob>& out) {
        brine::this_call::add_reply_metadata("streamed", "yes");
        for (int i = 0; i < int(F::value(n)); ++i) {
          if (!out.write(F::blob(flat(brine::this_call::metadata())))) return;
        }
      },
      o);
}

brine::ServerOptions with_test_tls(brine::ServerOptions o) {
  if (o.tls.certificate_file.empty()) {
    o.tls.certificate_file = tls_paths().server_crt;
    o.tls.private_key_file = tls_paths().server_key;
  }
  return o;
}

struct ContextServer {
  explicit ContextServer(brine::ServerOptions o = {}) : server(with_test_tls(std::move(o))) {
    add_context_methods<CerealFamily>(server, seen, {});
    add_context_methods<ProtobufFamily>(server, seen, {.codecs = {brine::CodecId::protobuf}});
    server.start();
  }
  std::string listen(const std::string& transport) {
    if (test_transport(transport).tls) (void)tls_files();
    return server.listen(listen_uri(transport));
  }
  std::shared_ptr<Seen> seen = std::make_shared<Seen>();
  brine::Server server;
};

class Context : public testing::TestWithParam<Param> {
 protected:
  static void SetUpTestSuite() {
    brine::register_exception<ctx_test::Overdrawn>("ctx.Overdrawn",
                                                   StatusCode::failed_precondition);
  }
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
  const TestTransport& transport() const { return test_transport(GetParam().transport); }
};

TEST_P(Context, MetadataTravelsBothWays) {
  run([&]<class F>() {
    ContextServer s;
    auto o = client_options();
    o.metadata.add("client-default", "d");
    Client c(s.listen(GetParam().transport), o);
    CallOptions opts;
    opts.metadata.add("trace-id", "4bf92f35").add("bin", std::string("\0\xff\n", 3));
    Metadata reply;
    opts.reply_metadata = &reply;
    const auto back = c.template call<typename F::Blob>("md_echo", F::blob(""), opts);
    EXPECT_EQ(F::data(back), "client-default=d;trace-id=4bf92f35;bin=\\x00\\xff\\x0a;");
    EXPECT_EQ(reply.get("echoed"), "3");
    // An error carries the handler's reply metadata too.
    Metadata failed;
    const auto r = c.template try_call<typename F::Number>(
        "md_fail", F::number(double(StatusCode::aborted)), {.reply_metadata = &failed});
    EXPECT_EQ(r.code(), StatusCode::aborted);
    EXPECT_EQ(failed.get("why"), "on purpose");
    // Asynchronous calls too.
    Metadata async_reply;
    CallOptions async_opts;
    async_opts.metadata.add("async", "1");
    async_opts.reply_metadata = &async_reply;
    auto f = c.template call_async<typename F::Blob>("md_echo", F::blob(""), async_opts);
    EXPECT_EQ(F::data(f.get()), "client-default=d;async=1;");
    EXPECT_EQ(async_reply.get("echoed"), "2");
  });
}

// Streams: over the transports that carry them.
class ContextStreams : public Context {};

TEST_P(ContextStreams, StreamsCarryMetadataAndInterceptorsSeeThem) {
  run([&]<class F>() {
    auto journal = std::make_shared<Journal>();
    brine::ServerOptions so;
    so.interceptors = {std::make_shared<Recorder>("s", journal)};
    ContextServer s(so);
    auto o = client_options();
    o.interceptors = {std::make_shared<Recorder>("c", journal)};
    Client c(s.listen(GetParam().transport), o);
    Metadata reply;
    CallOptions opts;
    opts.metadata.add("stream-md", "s");
    opts.reply_metadata = &reply;
    auto stream = c.template stream<typename F::Blob>("md_stream", F::number(2), opts);
    int items = 0;
    while (auto item = stream.read()) {
      EXPECT_EQ(F::data(*item), "stream-md=s;c=yes;s=yes;");
      ++items;
    }
    EXPECT_TRUE(stream.status().ok()) << stream.status().to_string();
    EXPECT_EQ(items, 2);
    EXPECT_EQ(reply.get("streamed"), "yes");
    EXPECT_EQ(journal->take(),
              (std::vector<std::string>{"c.before md_stream", "s.before md_stream",
                                        "s.after md_stream OK", "c.after md_stream OK"}));
  });
}

INSTANTIATE_TEST_SUITE_P(StreamTransportsAndCodecs, ContextStreams,
                         testing::ValuesIn(grid(transports([](const TestTransport& tr) {
                           return !tr.datagram;
                         }))),
                         ParamName{});

TEST_P(Context, MetadataOverTheLimitsIsRefusedAndTheConnectionStays) {
  run([&]<class F>() {
    brine::ServerOptions so;
    so.metadata_limits = {.max_entries = 3, .max_bytes = 64};
    ContextServer s(so);
    Client c(s.listen(GetParam().transport), client_options());
    CallOptions many;
    for (int i = 0; i < 4; ++i) many.metadata.add("k" + std::to_string(i), "v");
    auto r = c.template try_call<typename F::Blob>("md_echo", F::blob(""), many);
    EXPECT_EQ(r.code(), StatusCode::resource_exhausted) << r.status().to_string();
    EXPECT_EQ(r.status().retry, Retry::never);
    EXPECT_NE(r.status().message.find("max_metadata_entries"), std::string::npos);
    CallOptions large;
    large.metadata.add("big", std::string(100, 'x'));
    r = c.template try_call<typename F::Blob>("md_echo", F::blob(""), large);
    EXPECT_EQ(r.code(), StatusCode::resource_exhausted) << r.status().to_string();
    EXPECT_NE(r.status().message.find("max_metadata_bytes"), std::string::npos);
    EXPECT_EQ(s.seen->runs.load(), 0);
    // The connection is fine: the next call within the limits runs.
    CallOptions few;
    few.metadata.add("k", "v");
    EXPECT_TRUE(c.template try_call<typename F::Blob>("md_echo", F::blob(""), few).ok());
    EXPECT_EQ(c.stats().connections, 1u);
    // A client refuses a reply whose metadata is over its own limits.
    auto strict = client_options();
    strict.metadata_limits.max_entries = 0;
    Client picky(s.listen(GetParam().transport), strict);
    r = picky.template try_call<typename F::Blob>("md_echo", F::blob(""));
    EXPECT_EQ(r.code(), StatusCode::resource_exhausted) << r.status().to_string();
  });
}

TEST_P(Context, InterceptorsRunInOrderInjectMetadataAndRefuse) {
  run([&]<class F>() {
    auto journal = std::make_shared<Journal>();
    brine::ServerOptions so;
    so.interceptors = {std::make_shared<Recorder>("s1", journal),
                       std::make_shared<Recorder>("s2", journal, "tick")};
    ContextServer s(so);
    auto o = client_options();
    o.interceptors = {std::make_shared<Recorder>("c1", journal),
                      std::make_shared<Recorder>("c2", journal, "overdraw")};
    Client c(s.listen(GetParam().transport), o);
    const auto back = c.template call<typename F::Blob>("md_echo", F::blob(""));
    // The handler sees what both sides' interceptors added, in order.
    EXPECT_EQ(F::data(back), "c1=yes;c2=yes;s1=yes;s2=yes;");
    const std::vector<std::string> order{
        "c1.before md_echo",   "c2.before md_echo",   "s1.before md_echo",   "s2.before md_echo",
        "s2.after md_echo OK", "s1.after md_echo OK", "c2.after md_echo OK", "c1.after md_echo OK"};
    // The server's after() runs before its reply leaves, so the order is fixed.
    EXPECT_EQ(journal->take(), order);
    // A server interceptor's refusal: the handler does not run, the outer interceptors see it.
    auto r = c.template try_call<typename F::Number>("tick", F::number(1));
    EXPECT_EQ(r.code(), StatusCode::permission_denied) << r.status().to_string();
    EXPECT_EQ(r.status().retry, Retry::not_run);
    EXPECT_EQ(s.seen->runs.load(), 1);  // md_echo's only
    EXPECT_EQ(journal->take(),
              (std::vector<std::string>{"c1.before tick", "c2.before tick", "s1.before tick",
                                        "s2.before tick", "s1.after tick PERMISSION_DENIED",
                                        "c2.after tick PERMISSION_DENIED",
                                        "c1.after tick PERMISSION_DENIED"}));
    // A client interceptor's refusal: nothing is sent.
    r = c.template try_call<typename F::Number>("overdraw", F::number(1));
    EXPECT_EQ(r.code(), StatusCode::permission_denied);
    EXPECT_EQ(r.status().retry, Retry::not_sent);
    EXPECT_EQ(journal->take(), (std::vector<std::string>{"c1.before overdraw", "c2.before overdraw",
                                                         "c1.after overdraw PERMISSION_DENIED"}));
  });
}

TEST_P(Context, TokenCheckLetsInOnlyValidTokens) {
  run([&]<class F>() {
    brine::ServerOptions so;
    so.tokens = {"alpha-token", "beta-token"};
    so.open_methods = {"whoami"};
    std::vector<std::string> lines;
    std::mutex mu;
    so.interceptors = {
        std::make_shared<brine::LoggingInterceptor>("server", [&](std::string_view line) {
          std::lock_guard lk(mu);
          lines.emplace_back(line);
        })};
    ContextServer s(so);
    const std::string uri = s.listen(GetParam().transport);
    Client none(uri, client_options());
    auto r = none.template try_call<typename F::Number>("tick", F::number(1));
    EXPECT_EQ(r.code(), StatusCode::unauthenticated) << r.status().to_string();
    // An open method needs no token.
    EXPECT_TRUE(none.template try_call<typename F::Blob>("whoami", F::blob("")).ok());
    auto wrong_o = client_options();
    wrong_o.token = "alpha-tokeN";
    Client wrong(uri, wrong_o);
    r = wrong.template try_call<typename F::Number>("tick", F::number(1));
    EXPECT_EQ(r.code(), StatusCode::unauthenticated);
    EXPECT_EQ(s.seen->runs.load(), 0);
    auto right_o = client_options();
    right_o.token = "beta-token";
    Client right(uri, right_o);
    r = right.template try_call<typename F::Number>("tick", F::number(1));
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(s.seen->runs.load(), 1);
    // The token check refused before the logging interceptor (after it in the chain) was
    // asked: it logged only what the check let in.
    std::lock_guard lk(mu);
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_NE(lines[0].find("whoami  OK"), std::string::npos) << lines[0];
    EXPECT_NE(lines[1].find("tick  OK"), std::string::npos) << lines[1];
    EXPECT_NE(lines[1].find("md=1"), std::string::npos) << lines[1];
  });
}

TEST_P(Context, AHandlerKnowsWhoIsCalling) {
  run([&]<class F>() {
    ContextServer s;
    Client c(s.listen(GetParam().transport), client_options());
    const std::string who = F::data(c.template call<typename F::Blob>("whoami", F::blob("")));
    const std::string scheme = who.substr(0, who.find('|'));
    const std::string& t = GetParam().transport;
    if (t == "tcp4") {
      EXPECT_TRUE(who.starts_with("tcp|127.0.0.1:")) << who;
    } else if (t == "tcp6") {
      EXPECT_TRUE(who.starts_with("tcp|[::1]:")) << who;
    } else if (t == "unix" || t == "abstract") {
      EXPECT_EQ(scheme, "unix") << who;
    } else if (t == "tls4") {
      EXPECT_TRUE(who.starts_with("tls|127.0.0.1:")) << who;
    }
    EXPECT_FALSE(scheme.empty()) << who;
  });
}

TEST_P(Context, EveryStatusCodeArrivesAsSent) {
  run([&]<class F>() {
    TestServer s;
    Client c(s.listen(GetParam().transport), client_options());
    for (std::uint32_t code = 1; code <= 16; ++code) {
      const auto r = c.template try_call<typename F::Number>("fail_with", F::number(code));
      EXPECT_EQ(std::uint32_t(r.code()), code) << r.status().to_string();
      if (code != 2) {
        EXPECT_NE(brine::status_name(StatusCode(code)), "UNKNOWN") << code;
      }
    }
  });
}

TEST_P(Context, RegisteredExceptionsAreThrownAgainAsTheirType) {
  run([&]<class F>() {
    ContextServer s;
    Client c(s.listen(GetParam().transport), client_options());
    try {
      (void)c.template call<typename F::Number>("overdraw", F::number(5));
      ADD_FAILURE() << "no exception";
    } catch (const ctx_test::Overdrawn& e) {
      EXPECT_STREQ(e.what(), "balance 3, asked 5");
    }
    const auto r = c.template try_call<typename F::Number>("overdraw", F::number(5));
    EXPECT_EQ(r.code(), StatusCode::failed_precondition);  // its registered code
    EXPECT_EQ(r.status().type, "ctx.Overdrawn");
    auto f = c.template call_async<typename F::Number>("overdraw", F::number(7));
    EXPECT_THROW((void)f.get(), ctx_test::Overdrawn);
    // An unregistered type stays an RpcError naming it.
    try {
      (void)c.template call<typename F::Number>("overdraw", F::number(0));
      ADD_FAILURE() << "no exception";
    } catch (const brine::RpcError& e) {
      EXPECT_EQ(e.code(), StatusCode::internal);
      EXPECT_NE(e.remote_type().find("NotRegistered"), std::string::npos) << e.remote_type();
    }
  });
}

TEST_P(Context, RetryHintsTellWhetherTheCallRan) {
  run([&]<class F>() {
    // Too large: never.
    {
      TestServer s;
      auto o = client_options();
      o.max_frame_size = 4096;
      Client c(s.listen(GetParam().transport), o);
      const auto r = c.template try_call<typename F::Blob>("echo", F::blob(std::string(8192, 'x')));
      EXPECT_EQ(r.code(), StatusCode::resource_exhausted);
      EXPECT_EQ(r.status().retry, Retry::never) << r.status().to_string();
    }
    // Server busy: later. One call in flight per connection; a second is refused unrun.
    if (!transport().datagram) {
      brine::ServerOptions so;
      so.max_inflight_per_connection = 1;
      TestServer s(so);
      Client c(s.listen(GetParam().transport), client_options());
      auto slow = c.template call_async<typename F::Number>("until_cancelled", F::number(3000));
      ASSERT_TRUE(eventually([&] { return s.running_cancellable->load() == 1; }));
      const auto r = c.template try_call<typename F::Number>("count", F::number(1));
      EXPECT_EQ(r.code(), StatusCode::resource_exhausted) << r.status().to_string();
      EXPECT_EQ(r.status().retry, Retry::later);
      EXPECT_TRUE(r.status().not_run());
      EXPECT_EQ(s.counted->load(), 0);
    }
    // Lost after the request left: it may have run.
    if (transport().reports_loss && !transport().zmq && !transport().datagram) {
      auto s = std::make_unique<TestServer>();
      Client c(s->listen(GetParam().transport), client_options());
      auto f = c.template call_async<typename F::Number>("until_cancelled", F::number(5000));
      ASSERT_TRUE(eventually([&] { return s->running_cancellable->load() == 1; }));
      s.reset();  // stops at once: the connection goes
      try {
        (void)f.get();
        ADD_FAILURE() << "the call succeeded";
      } catch (const brine::RpcError& e) {
        EXPECT_EQ(e.code(), StatusCode::unavailable) << e.what();
        EXPECT_EQ(e.retry(), Retry::maybe_ran) << e.what();
      }
      // Never sent: nothing listens any more.
      const auto r = c.template try_call<typename F::Number>("count", F::number(1));
      EXPECT_EQ(r.code(), StatusCode::unavailable) << r.status().to_string();
      EXPECT_EQ(r.status().retry, Retry::not_sent) << r.status().to_string();
    }
  });
}

// The deadline and the cancel of a call follow it through a handler's own calls: the client
// gives 300 ms; the first server calls the second, whose handler would run 5 s.
TEST_P(Context, DeadlinesAndCancelsFollowTheCallOnward) {
  run([&]<class F>() {
    TestServer far;
    const std::string far_uri = far.listen(GetParam().transport);
    brine::Server near(with_test_tls({}));
    auto onward = std::make_shared<Client>(far_uri, client_options());
    auto left_seen = std::make_shared<std::atomic<double>>(-1);
    const brine::HandlerOptions o =
        GetParam().codec == "protobuf" ? brine::HandlerOptions{.codecs = {brine::CodecId::protobuf}}
                                       : brine::HandlerOptions{};
    near.handle(
        "hop",
        [onward, left_seen](const typename F::Number& n) {
          // The far server's view of the time left: at most ours.
          left_seen->store(F::value(onward->template call<typename F::Number>("time_left", n)));
          return onward->template call<typename F::Number>("until_cancelled", F::number(5000));
        },
        o);
    near.start();
    if (test_transport(GetParam().transport).tls) (void)tls_files();
    Client c(near.listen(listen_uri(GetParam().transport)), client_options());
    const auto t0 = Clock::now();
    const auto r = c.template try_call<typename F::Number>("hop", F::number(0), {.timeout = 600ms});
    // Ended at the deadline: the client's timer, or (racing it, as the deadline is the same) the
    // far handler's answer that saw it, relayed.
    EXPECT_TRUE(r.code() == StatusCode::deadline_exceeded || r.code() == StatusCode::cancelled)
        << r.status().to_string();
    EXPECT_GT(left_seen->load(), 0);
    EXPECT_LE(left_seen->load(), 600);
    // The far handler stopped at the propagated deadline, not after its 5 s.
    ASSERT_TRUE(eventually([&] { return far.saw_cancel->load() == 1; }, 3s));
    EXPECT_LT(Clock::now() - t0, 3s);
  });
}

INSTANTIATE_TEST_SUITE_P(AllTransportsAndCodecs, Context, testing::ValuesIn(grid(transports())),
                         ParamName{});

// A cancel by the first caller reaches the second hop's handler (not only the deadline).
TEST(ContextCancel, ACancelFollowsTheCallOnward) {
  TestServer far;
  brine::ClientOptions co;
  co.codec = "cereal";
  auto onward = std::make_shared<Client>(far.listen("tcp4"), co);
  brine::Server near;
  near.handle("hop", [onward](const calc::Number&) {
    return onward->call<calc::Number>("until_cancelled", calc::Number{5000});
  });
  near.start();
  Client c(near.listen("tcp://127.0.0.1:0"), co);
  std::stop_source stop;
  auto f = c.call_async<calc::Number>("hop", calc::Number{0},
                                      {.timeout = 10s, .cancel = stop.get_token()});
  ASSERT_TRUE(eventually([&] { return far.running_cancellable->load() == 1; }));
  stop.request_stop();
  EXPECT_THROW((void)f.get(), brine::RpcError);
  ASSERT_TRUE(eventually([&] { return far.saw_cancel->load() == 1; }, 3s));
}

// Mutual TLS: the handler reads the client certificate's subject and names.
TEST(ContextPeer, MutualTlsShowsTheClientCertificate) {
  brine::ServerOptions so;
  so.tls.client_ca_file = tls_files().ca;
  ContextServer s(so);
  brine::ClientOptions o;
  o.codec = "cereal";
  o.tls.ca_file = tls_files().ca;
  o.tls.certificate_file = tls_files().client_crt;
  o.tls.private_key_file = tls_files().client_key;
  Client c(s.listen("tls4"), o);
  const std::string who = c.call<CerealBlob>("whoami", CerealBlob{""}).data;
  EXPECT_TRUE(who.starts_with("tls|127.0.0.1:")) << who;
  EXPECT_NE(who.find("CN="), std::string::npos) << who;
}

// The example of docs/wire-format.md, "Metadata", byte for byte; then malformed fields.
TEST(ContextWire, TheDocumentedMetadataFrameParses) {
  std::vector<std::uint8_t> bytes{
      0x00, 0x00, 0x00, 0x39, 0x62, 0x72, 0x01, 0x01, 0x01, 0x09, 0x00, 0x03, 0,    0,    0,
      0,    0,    0,    0,    3,    'a',  'd',  'd',  0x00, 0x00, 0x13, 0x88, 0x00, 0x00, 0x00,
      0x0D, 0x08, 't',  'r',  'a',  'c',  'e',  '-',  'i',  'd',  0x00, 0x02, 'a',  'b',  0x01};
  for (int i = 0; i < 16; ++i) bytes.push_back(0);
  auto view = [&](const std::vector<std::uint8_t>& b, brine::detail::FrameView* f) {
    return brine::detail::frame_from_message(
        {reinterpret_cast<const std::byte*>(b.data()), b.size()}, 1 << 20, f);
  };
  brine::detail::FrameView f{};
  ASSERT_TRUE(view(bytes, &f).ok());
  EXPECT_EQ(f.method, "add");
  EXPECT_EQ(f.timeout_ms, 5000u);
  EXPECT_EQ(f.payload.size(), 17u);
  Metadata md;
  brine::detail::read_metadata(f.metadata, md);
  EXPECT_EQ(flat(md), "trace-id=ab;");
  // Built by brine, the same bytes.
  brine::Buffer built;
  brine::detail::begin_request(built, brine::detail::FrameKind::request, 1, {}, "add");
  brine::detail::set_timeout(built, 5000ms);
  brine::detail::set_call_id(built, 3);
  built.append(bytes.data() + 44, 17);
  ASSERT_TRUE(brine::detail::finish_frame(built, 1 << 20));
  brine::detail::attach_metadata(built, Metadata{{"trace-id", "ab"}});
  EXPECT_EQ(
      std::vector<std::uint8_t>(reinterpret_cast<const std::uint8_t*>(built.data()),
                                reinterpret_cast<const std::uint8_t*>(built.data()) + built.size()),
      bytes);
  // Malformed: an upper-case key, an entry past n, n past the frame, the flag on a cancel.
  auto bad = bytes;
  bad[32] = 'T';
  EXPECT_EQ(view(bad, &f).code, StatusCode::invalid_argument);
  bad = bytes;
  bad[30] = 0x0C;  // n = 12: the value runs past it
  EXPECT_EQ(view(bad, &f).code, StatusCode::invalid_argument);
  bad = bytes;
  bad[29] = 0x01;  // n = 269, past the frame
  EXPECT_EQ(view(bad, &f).code, StatusCode::invalid_argument);
  bad = bytes;
  bad[7] = 0x07;  // a cancel
  bad[9] = 0x08;
  EXPECT_EQ(view(bad, &f).code, StatusCode::invalid_argument);
}

// Connection refused: the request never left.
TEST(ContextRetry, AConnectionRefusedIsNotSent) {
  brine::ClientOptions o;
  o.codec = "cereal";
  o.timeout = 2s;
  // A port that was just free: nothing listens on it.
  std::string uri;
  {
    brine::Server probe;
    uri = probe.listen("tcp://127.0.0.1:0");
  }
  Client c(uri, o);
  const auto r = c.try_call<calc::Number>("add", calc::Number{1});
  EXPECT_EQ(r.code(), StatusCode::unavailable) << r.status().to_string();
  EXPECT_EQ(r.status().retry, Retry::not_sent);
  EXPECT_TRUE(r.status().not_run());
}

TEST(ContextConfig, MetadataKeysAreChecked) {
  Metadata md;
  EXPECT_THROW(md.add("Upper", "v"), std::invalid_argument);
  EXPECT_THROW(md.add("", "v"), std::invalid_argument);
  EXPECT_THROW(md.add("sp ace", "v"), std::invalid_argument);
  EXPECT_THROW(md.add(std::string(256, 'k'), "v"), std::invalid_argument);
  EXPECT_THROW(md.add("k", std::string(65536, 'v')), std::invalid_argument);
  md.add("k", "1").add("k", "2").add("other.key_x-y", "");
  EXPECT_EQ(md.get("k"), "1");
  EXPECT_EQ(md.get_all("k").size(), 2u);
  md.set("k", "3");
  EXPECT_EQ(flat(md), "other.key_x-y=;k=3;");
  EXPECT_EQ(md.wire_size(), 3 + 13 + 0 + 3 + 1 + 1u);
}

}  // namespace
