// Cross-process: the example server runs as a separate process (port 0, readiness read from its
// output); calls go over tcp IPv4, tcp IPv6 and unix sockets with each codec.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <unistd.h>

#include <chrono>
#include <fstream>
#include <future>
#include <limits>
#include <optional>
#include <thread>

#include "bank.hpp"
#include "eventually.hpp"
#include "families.hpp"
#include "params.hpp"
#include "process.hpp"
#include "test_server.hpp"

namespace {

using brine::Client;
using brine::RpcError;
using brine::StatusCode;
using namespace brine_test;
using namespace std::chrono_literals;

class CrossProcess : public testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    if (test_transport(GetParam().transport).tls) {
      // The server process reads its certificate from the environment (BRINE_<KEY>).
      ::setenv("BRINE_SERVER_TLS_CERTIFICATE", tls_files().server_crt.c_str(), 1);
      ::setenv("BRINE_SERVER_TLS_PRIVATE_KEY", tls_files().server_key.c_str(), 1);
    }
    server_ = start_calculator_server({"--listen", listen_uri(GetParam().transport)});
    ASSERT_EQ(server_->endpoints().size(), 1u);
    uri_ = server_->endpoint();
  }
  void TearDown() override {
    ::unsetenv("BRINE_SERVER_TLS_CERTIFICATE");
    ::unsetenv("BRINE_SERVER_TLS_PRIVATE_KEY");
  }
  brine::ClientOptions options() const {
    brine::ClientOptions o;
    o.codec = GetParam().codec;
    o.timeout = 10s;
    o.tls.ca_file = tls_paths().ca;
    return o;
  }
  template <class F>
  void run(F&& body) {
    with_family(GetParam().codec, std::forward<F>(body));
  }

  std::optional<brine::testing::ServerProcess> server_;
  std::string uri_;
};

TEST_P(CrossProcess, CallsAnotherProcess) {
  run([&]<class F>() {
    Client c(uri_, options());
    EXPECT_EQ(F::value(c.template call<typename F::Number>("add", F::add(40, 2))), 42);
    try {
      c.template call<typename F::Number>("divide", F::divide(1, 0));
      FAIL();
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), StatusCode::internal);
      EXPECT_EQ(e.message(), "division by zero");
      EXPECT_EQ(e.remote_type(), "std::domain_error");
    }
    EXPECT_EQ(c.template try_call<typename F::Number>("missing", F::add(1, 1)).code(),
              StatusCode::not_found);
  });
}

TEST_P(CrossProcess, ManyThreadsAgainstAnotherProcess) {
  run([&]<class F>() {
    Client c(uri_, options());
    std::atomic<int> wrong{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 250; ++i) {
          if (F::value(c.template call<typename F::Number>("add", F::add(t, i))) != t + i) ++wrong;
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(wrong.load(), 0);
  });
}

TEST_P(CrossProcess, KilledServerFailsPendingCallsWithUnavailable) {
  run([&]<class F>() {
    Client c(uri_, options());
    std::vector<std::future<typename F::Number>> pending;
    // Three, so that one of the server's four workers stays free for the call below.
    for (int i = 0; i < 3; ++i) {
      pending.push_back(c.template call_async<typename F::Number>("wait", F::wait(30000), {60s}));
    }
    // One answered call after them proves the connection carried the requests.
    EXPECT_EQ(F::value(c.template call<typename F::Number>("add", F::add(1, 1))), 2);
    const auto t0 = std::chrono::steady_clock::now();
    server_->kill();
    for (auto& f : pending) {
      ASSERT_EQ(f.wait_for(5s), std::future_status::ready) << "a pending call hung";
      try {
        f.get();
        FAIL();
      } catch (const RpcError& e) {
        EXPECT_EQ(e.code(), StatusCode::unavailable) << e.what();
      }
    }
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
    // And later calls fail fast too (nothing listens any more).
    ASSERT_TRUE(server_->wait(5s));
    EXPECT_EQ(c.template try_call<typename F::Number>("add", F::add(1, 1), {2s}).code(),
              StatusCode::unavailable);
  });
}

TEST_P(CrossProcess, StoppedServerIsDetectedByHeartbeats) {
  run([&]<class F>() {
    auto o = options();
    o.heartbeat_interval = 200ms;
    o.heartbeat_timeout = 1000ms;
    Client c(uri_, o);
    EXPECT_EQ(F::value(c.template call<typename F::Number>("add", F::add(1, 1))), 2);
    auto f = c.template call_async<typename F::Number>("wait", F::wait(20000), {60s});
    // Stopped, not dead: the kernel keeps the connection open and says nothing. Only the
    // missing heartbeat answers tell.
    server_->pause();
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_EQ(f.wait_for(10s), std::future_status::ready) << "the call waited for its deadline";
    try {
      f.get();
      FAIL();
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), StatusCode::unavailable) << e.what();
    }
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 4s);
    server_->resume();
  });
}

TEST_P(CrossProcess, RestartedServerIsReachedAgain) {
  run([&]<class F>() {
    Client c(uri_, options());
    EXPECT_EQ(F::value(c.template call<typename F::Number>("add", F::add(1, 1))), 2);
    server_->kill();
    ASSERT_TRUE(server_->wait(5s));
    const auto lost = c.template try_call<typename F::Number>("add", F::add(1, 1), {2s});
    EXPECT_EQ(lost.code(), StatusCode::unavailable) << lost.status().to_string();
    // A new process on the same address; the client reconnects (with backoff) by itself.
    server_->restart();
    ASSERT_EQ(server_->endpoints(), std::vector<std::string>{uri_});
    EXPECT_EQ(F::value(c.template call<typename F::Number>(
                  "add", F::add(2, 2), {.timeout = 10s, .wait_for_ready = true})),
              4);
    EXPECT_GE(c.stats().connections, 2u);
  });
}

TEST_P(CrossProcess, SigtermLetsRunningCallsFinish) {
  run([&]<class F>() {
    Client c(uri_, options());
    auto a = c.template call_async<typename F::Number>("wait", F::wait(400));
    auto b = c.template call_async<typename F::Number>("wait", F::wait(400));
    EXPECT_EQ(F::value(c.template call<typename F::Number>("add", F::add(1, 1))), 2);
    server_->signal(SIGTERM);
    EXPECT_EQ(F::value(a.get()), 400);
    EXPECT_EQ(F::value(b.get()), 400);
    ASSERT_TRUE(server_->wait(5s));
    EXPECT_EQ(server_->exit_status().signal, 0) << server_->exit_status().describe();
  });
}

TEST_P(CrossProcess, GracefulStopOnSigterm) {
  server_->signal(SIGTERM);
  ASSERT_TRUE(server_->wait(5s));
  EXPECT_TRUE(server_->exit_status().exited_normally()) << server_->exit_status().describe();
}

INSTANTIATE_TEST_SUITE_P(AllTransportsAndCodecs, CrossProcess,
                         testing::ValuesIn(grid(transports(from_another_process))), ParamName());

// A client process that dies or stops: the server frees what it held.
class PeerFaults : public testing::TestWithParam<std::string> {};

TEST_P(PeerFaults, AKilledClientsConnectionAndCallsAreFreed) {
  // ZeroMQ peers have no connection to lose: they are dropped after heartbeat_timeout silence.
  TestServer s({.heartbeat_interval = 200ms, .heartbeat_timeout = 1000ms});
  const std::string uri = s.listen(GetParam());
  s.server.start();
  ChildProcess peer({BRINE_FAULT_PEER, uri, "3"});
  ASSERT_EQ(peer.read_line(10s), "ready");
  // The "add" that proved the connection may still be counted for an instant after its reply
  // left (the worker writes the reply, then finishes its bookkeeping).
  EXPECT_TRUE(eventually([&] { return s.server.stats().calls_in_flight == 3; }, 5s));
  // All three handlers running (a call still queued would be skipped, not see its cancel).
  ASSERT_TRUE(eventually([&] { return s.running_cancellable->load() == 3; }, 5s));
  const bool stream = !test_transport(GetParam()).zmq;
  if (stream) {
    EXPECT_EQ(s.server.stats().connections, 1u);
  }
  peer.kill(SIGKILL);
  ASSERT_TRUE(peer.wait(5s));
  // The three handlers learn that nobody waits for them and stop.
  EXPECT_TRUE(eventually([&] { return s.saw_cancel->load() == 3; }, 5s)) << s.saw_cancel->load();
  EXPECT_TRUE(eventually([&] { return s.server.stats().calls_in_flight == 0; }, 5s));
  EXPECT_TRUE(eventually([&] { return s.server.stats().connections == 0; }, 5s));
}

TEST_P(PeerFaults, AStoppedClientIsClosedAfterTheIdleTimeout) {
  if (test_transport(GetParam()).zmq || test_transport(GetParam()).datagram) {
    GTEST_SKIP() << "streams only (idle_timeout; a silent ZeroMQ or datagram peer is dropped "
                    "after heartbeat_timeout, tested above)";
  }
  TestServer s({.idle_timeout = 500ms});
  const std::string uri = s.listen(GetParam());
  s.server.start();
  ChildProcess peer({BRINE_FAULT_PEER, uri, "0"});
  ASSERT_EQ(peer.read_line(10s), "ready");
  EXPECT_EQ(s.server.stats().connections, 1u);
  peer.kill(SIGSTOP);  // no FIN, no heartbeat: a half-open connection
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(eventually([&] { return s.server.stats().connections == 0; }, 5s));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  EXPECT_EQ(s.server.stats().connections_timed_out, 1u);
  peer.kill(SIGCONT);
}

INSTANTIATE_TEST_SUITE_P(Transports, PeerFaults,
                         testing::ValuesIn(transports(from_another_process_in_the_clear)));

TEST(CrossProcessServer, ListensOnManyEndpointsAndRestrictsCodecs) {
  auto server = start_calculator_server(
      {"--listen", "tcp://127.0.0.1:0", "--listen", "tcp://[::1]:0", "--codec", "cereal"});
  ASSERT_EQ(server.endpoints().size(), 2u);
  for (const auto& uri : server.endpoints()) {
    Client cereal(uri, {.codec = "cereal"});
    EXPECT_EQ(cereal.call(calc::kAdd, {1, 2}).value, 3);
    Client proto(uri, {.codec = "protobuf"});
    calc::pb::AddRequest r;
    EXPECT_EQ(proto.try_call(calc::pb::kAdd, r).code(), StatusCode::unimplemented);
  }
}

// --- codec and transport chosen by configuration alone ------------------------------------------
// The same two binaries, once per (transport, codec): only the generated files differ.
class ConfigSwap : public testing::TestWithParam<Param> {
 protected:
  std::string write_file(const std::string& role, const std::string& text) {
    static int counter = 0;
    const std::string path = "/tmp/brine-swap-" + std::to_string(::getpid()) + "-" +
                             std::to_string(counter++) + "-" + role + ".toml";
    std::ofstream(path) << text;
    files_.push_back(path);
    return path;
  }
  void TearDown() override {
    for (const auto& f : files_) ::unlink(f.c_str());
  }
  std::vector<std::string> files_;
};

TEST_P(ConfigSwap, SameBinariesDrivenByGeneratedConfigFiles) {
  const std::string codec = GetParam().codec;
  // The server serves this codec only; the client prefers it (and would fall back to another
  // codec its types can use, which the server refuses).
  const std::string server_file =
      write_file("server", "[server]\ncodecs = [\"" + codec + "\"]\nlisten = \"" +
                               listen_uri(GetParam().transport) + "\"\nworkers = 2\n");
  ChildProcess server({BRINE_CALCULATOR_SERVER, "--config", server_file});
  const auto ready = server.read_line(10s);
  ASSERT_TRUE(ready && ready->rfind("listening ", 0) == 0) << ready.value_or("(nothing)");
  const std::string uri = ready->substr(10);

  const std::string client_file =
      write_file("client", "codec = \"" + codec + "\"\n[client]\nconnect = \"" + uri +
                               "\"\ntimeout_ms = 5000\n");
  ChildProcess client({BRINE_CALCULATOR_CLIENT, "--config", client_file, "--calls", "20"});
  std::string out;
  while (auto line = client.read_line(20s)) out += *line + "\n";
  const auto status = client.wait(10s);
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << out;
  const std::string tag = "[" + uri + " " + codec + "] ";
  EXPECT_NE(out.find(tag + "add(2, 3) = 5"), std::string::npos) << out;
  EXPECT_NE(out.find(tag + "sum(1..10) = 55"), std::string::npos) << out;
  EXPECT_NE(out.find("division by zero [std::domain_error]"), std::string::npos) << out;
  EXPECT_NE(out.find(tag + "round trip over 20 add calls"), std::string::npos) << out;

  // The configuration, not the binary, decided what the server serves: a client that calls in
  // another codec only is told which one the server serves the method in.
  const std::string other = codec == "cereal" ? "json" : "cereal";
  Client stranger(uri, {.codecs = {other}});
  const auto refused = stranger.try_call(calc::kAdd, {1, 2});
  EXPECT_EQ(refused.code(), StatusCode::unimplemented);
  if (codec != "protobuf") {
    EXPECT_NE(refused.status().message.find("the server serves it in " + codec), std::string::npos)
        << refused.status().message;
  }
}

INSTANTIATE_TEST_SUITE_P(AllTransportsAndCodecs, ConfigSwap,
                         testing::ValuesIn(grid(transports(from_another_process_in_the_clear))),
                         ParamName());

// --- the remote-objects example: accounts live as long as their client --------------------------
TEST(BankExample, AccountsCloseWhenTheirClientsLeave) {
  ChildProcess server(
      {BRINE_BANK_SERVER, "--listen", "unix://@brine-bank-" + std::to_string(::getpid())});
  const auto ready = server.read_line(10s);
  ASSERT_TRUE(ready && ready->rfind("listening ", 0) == 0);
  const std::string uri = ready->substr(10);
  for (const char* codec : {"cereal", "json"}) {
    ChildProcess client({BRINE_BANK_CLIENT, "--connect", uri, "--codec", codec, "--owner", codec});
    std::string out;
    while (auto line = client.read_line(20s)) out += *line + "\n";
    const auto status = client.wait(10s);
    ASSERT_TRUE(status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << out;
    EXPECT_NE(out.find("withdraw 30.00 -> balance 7000"), std::string::npos) << out;
    EXPECT_NE(out.find("(bank::InsufficientFunds)"), std::string::npos) << out;
    EXPECT_EQ(server.read_line(10s), "opened an account for " + std::string(codec) + " (1 open)");
    EXPECT_EQ(server.read_line(10s), "closed the account of " + std::string(codec) + " (0 open)");
  }
}

// Issue 13: bank_server --help started listening, calculator_server --help failed with "missing
// value after --help", --workers -5 was silently ignored.
TEST(ExamplePrograms, HelpListsTheFlagsAndExits) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> programs = {
      {BRINE_CALCULATOR_SERVER, {"--config", "--listen", "--connect", "--codec", "--workers"}},
      {BRINE_CALCULATOR_CLIENT, {"--config", "--connect", "--codec", "--calls"}},
      {BRINE_BANK_SERVER, {"--config", "--listen"}},
      {BRINE_BANK_CLIENT, {"--config", "--connect", "--codec", "--owner"}},
      {BRINE_BROKER, {"--frontend", "--backend"}},  // (a tool, with the same flags)
  };
  for (const auto& [program, flags] : programs) {
    ChildProcess p({program, "--help"});
    std::string out;
    while (auto line = p.read_line(10s)) out += *line + "\n";
    const auto status = p.wait(10s);
    ASSERT_TRUE(status && WIFEXITED(*status)) << program;
    EXPECT_EQ(WEXITSTATUS(*status), 0) << program << "\n" << out;
    EXPECT_EQ(out.rfind("usage: ", 0), 0u) << out;
    EXPECT_EQ(out.find("\nlistening "), std::string::npos) << out;  // it did not start serving
    for (const auto& flag : flags) {
      EXPECT_NE(out.find("\n  " + flag + " "), std::string::npos) << flag << " in\n" << out;
    }
  }
}

TEST(ExamplePrograms, ABadCommandLineIsRefused) {
  const std::vector<std::vector<std::string>> wrong = {
      {BRINE_CALCULATOR_SERVER, "--listen", "tcp://127.0.0.1:0", "--workers", "-5"},
      {BRINE_CALCULATOR_SERVER, "--listen", "tcp://127.0.0.1:0", "--workers", "four"},
      {BRINE_CALCULATOR_SERVER, "--listen"},
      {BRINE_CALCULATOR_CLIENT, "--calls", "1e3", "--connect", "tcp://127.0.0.1:1"},
      {BRINE_BANK_SERVER, "--port", "7100"},
      {BRINE_BANK_CLIENT, "--owner"},
  };
  for (const auto& argv : wrong) {
    ChildProcess p(argv);
    EXPECT_EQ(p.read_line(10s), std::nullopt) << argv[0];  // never listening
    const auto status = p.wait(10s);
    ASSERT_TRUE(status && WIFEXITED(*status)) << argv[0];
    EXPECT_EQ(WEXITSTATUS(*status), 2) << argv[0] << " " << argv[1];
  }
}

// Issue 13: the bank's withdraw(-5000) raised the balance, and two deposit(INT64_MAX) overflowed.
TEST(BankExample, RefusesNegativeAmountsAndOverflow) {
  ChildProcess server({BRINE_BANK_SERVER, "--listen", "tcp://127.0.0.1:0"});
  const auto ready = server.read_line(10s);
  ASSERT_TRUE(ready && ready->rfind("listening ", 0) == 0);
  Client c(ready->substr(10), {.timeout = 10s});
  auto account = c.remote<bank::Bank>("bank").open("eve");
  EXPECT_EQ(account.deposit(100), 100);
  try {
    account.withdraw(-5000);
    FAIL() << "a negative withdrawal was accepted";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.message(), "withdraw a positive amount");
    EXPECT_EQ(e.remote_type(), "std::invalid_argument");
  }
  EXPECT_EQ(account.deposit(std::numeric_limits<std::int64_t>::max() - 100),
            std::numeric_limits<std::int64_t>::max());
  try {
    account.deposit(std::numeric_limits<std::int64_t>::max());
    FAIL() << "the balance overflowed";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.remote_type(), "std::overflow_error");
  }
  EXPECT_EQ(account.balance(), std::numeric_limits<std::int64_t>::max());
}

// Issue 13: the calculator's wait ignored cancellation and accepted 2^32 ms, delaying exit after
// SIGTERM.
TEST(CalculatorExample, WaitIsBoundedAndEndsWhenItsCallerGivesUp) {
  auto server = start_calculator_server({"--listen", "tcp://127.0.0.1:0"});
  ASSERT_EQ(server.endpoints().size(), 1u);
  {
    Client c(server.endpoint(), {.timeout = 10s});
    const auto r = c.try_call(calc::kWait, {4294967295u});
    EXPECT_EQ(r.code(), StatusCode::internal);
    EXPECT_EQ(r.status().message, "wait takes at most 60000 ms, not 4294967295");
    // Given up after 200 ms: the handler ends then, not a minute later.
    EXPECT_EQ(c.try_call(calc::kWait, {60000}, {.timeout = 200ms}).code(),
              StatusCode::deadline_exceeded);
    auto pending = c.call_async(calc::kWait, {60000}, {.timeout = 60s});
    EXPECT_EQ(c.call(calc::kAdd, {1, 2}).value, 3);
  }  // the client leaves with a wait pending
  const auto t0 = std::chrono::steady_clock::now();
  server.signal(SIGTERM);
  ASSERT_TRUE(server.wait(10s));
  EXPECT_TRUE(server.exit_status().exited_normally()) << server.exit_status().describe();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
}

}  // namespace
