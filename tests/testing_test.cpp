// brine::testing, the users' kit: readiness told by the server, a crash reported with the
// child's output, nothing left running, and pause, kill, stop and restart as a client sees them.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <brine/testing.hpp>
#include <fstream>
#include <future>
#include <stdexcept>

#include "calculator.hpp"
#include "eventually.hpp"
#include "gtest/gtest.h"
#include "tls_files.hpp"

namespace {

using namespace std::chrono_literals;
using brine::StatusCode;
using brine::testing::FaultProxy;
using brine::testing::Faults;
using brine::testing::LocalServer;
using brine::testing::ProcessOptions;
using brine::testing::ServerProcess;
using brine::testing::TestServer;
using brine_test::eventually;

double add(brine::Client& c, double a, double b) {
  return c.call(calc::kAdd, {a, b}).value;
}

pid_t server_pid(brine::Client& c) {
  return pid_t(c.call(calc::kPid, {}).value);
}

std::string private_path(const std::string& what) {
  return "/tmp/brine-kit-" + std::to_string(::getpid()) + "-" + what;
}

// A process that is gone, or a zombie nobody reaped yet.
bool gone(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string pid_text, name, state;
  return !(stat >> pid_text >> name >> state) || state == "Z";
}

TEST(ServerProcess, ASpawnedServerIsReadyWhenItSaysSo) {
  const std::string unix_path = private_path("ready.sock");
  auto server = ServerProcess::spawn({BRINE_CALCULATOR_SERVER, "--listen", "tcp://127.0.0.1:0",
                                      "--listen", "unix://" + unix_path});
  ASSERT_EQ(server.endpoints().size(), 2u);
  EXPECT_TRUE(server.endpoint().starts_with("tcp://127.0.0.1:"));
  EXPECT_FALSE(server.endpoint().ends_with(":0")) << server.endpoint();
  EXPECT_EQ(server.endpoints()[1], "unix://" + unix_path);
  for (const auto& uri : server.endpoints()) {
    brine::Client c(uri, {.timeout = 2s});
    EXPECT_EQ(add(c, 2, 3), 5);
    EXPECT_EQ(server_pid(c), server.pid());
  }
  EXPECT_TRUE(server.running());
}

TEST(ServerProcess, APrintedEndpointIsEnoughForAProgramThatOnlyPrintsIt) {
  ProcessOptions o;
  o.endpoints = 1;
  auto server = ServerProcess::spawn(
      {"/bin/sh", "-c", "echo 'listening tcp://127.0.0.1:7'; exec sleep 60"}, o);
  EXPECT_EQ(server.endpoint(), "tcp://127.0.0.1:7");
  server.stop();
  EXPECT_EQ(server.exit_status().signal, SIGTERM) << server.exit_status().describe();
}

TEST(ServerProcess, AChildThatCrashesIsReportedWithItsOutput) {
  try {
    (void)ServerProcess::spawn({"/bin/sh", "-c", "echo 'loading the model'; kill -SEGV $$"});
    FAIL() << "no crash reported";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("signal 11"), std::string::npos) << what;
    EXPECT_NE(what.find("before it was ready"), std::string::npos) << what;
    EXPECT_NE(what.find("loading the model"), std::string::npos) << what;
  }
  EXPECT_TRUE(brine::testing::child_processes().empty());
}

TEST(ServerProcess, AChildThatIsNeverReadyIsKilledAtTheTimeout) {
  ProcessOptions o;
  o.ready_timeout = 300ms;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    (void)ServerProcess::spawn({"/bin/sh", "-c", "echo 'warming up'; exec sleep 60"}, o);
    FAIL() << "no timeout reported";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("not ready within 300 ms"), std::string::npos) << what;
    EXPECT_NE(what.find("warming up"), std::string::npos) << what;
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  EXPECT_TRUE(brine::testing::child_processes().empty());
}

// A test that fails (here: throws) with servers running leaves nothing behind, not even what the
// servers started themselves.
TEST(ServerProcess, NothingIsLeftRunningWhenATestFails) {
  ASSERT_TRUE(brine::testing::child_processes().empty());
  pid_t grandchild = 0;
  try {
    auto calculator =
        ServerProcess::spawn({BRINE_CALCULATOR_SERVER, "--listen", "tcp://127.0.0.1:0"});
    ProcessOptions o;
    o.endpoints = 1;
    auto parent = ServerProcess::spawn(
        {"/bin/sh", "-c", "sleep 60 & echo \"listening tcp://127.0.0.1:$!\"; exec sleep 60"}, o);
    grandchild = pid_t(std::stol(parent.endpoint().substr(parent.endpoint().rfind(':') + 1)));
    EXPECT_EQ(brine::testing::child_processes().size(), 2u);
    throw std::runtime_error("the test failed here");
  } catch (const std::runtime_error&) {
  }
  EXPECT_TRUE(brine::testing::child_processes().empty());
  ASSERT_GT(grandchild, 0);
  EXPECT_TRUE(eventually([&] { return gone(grandchild); }, 5s)) << grandchild;
}

TEST(ServerProcess, APausedServerTimesCallsOutAndAnswersOnceResumed) {
  auto server = ServerProcess::spawn({BRINE_CALCULATOR_SERVER, "--listen", "tcp://127.0.0.1:0"});
  brine::Client c(server.endpoint(), {.timeout = 2s});
  EXPECT_EQ(add(c, 1, 1), 2);
  server.pause();
  const auto r = c.try_call(calc::kAdd, {1, 2}, {300ms});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code, StatusCode::deadline_exceeded) << r.status().message;
  server.resume();
  EXPECT_EQ(add(c, 1, 2), 3);
}

TEST(ServerProcess, AKilledServerIsUnavailableAndRestartsOnTheSameEndpoint) {
  auto server = ServerProcess::spawn({BRINE_CALCULATOR_SERVER, "--listen", "tcp://127.0.0.1:0"});
  const std::string uri = server.endpoint();
  const pid_t first = server.pid();
  brine::Client c(uri, {.timeout = 2s});
  EXPECT_EQ(add(c, 1, 1), 2);
  server.kill();
  EXPECT_FALSE(server.running());
  EXPECT_EQ(server.exit_status().signal, SIGKILL);
  const auto r = c.try_call(calc::kAdd, {1, 2}, {1s});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code, StatusCode::unavailable) << r.status().message;
  server.restart();
  EXPECT_EQ(server.endpoint(), uri);
  EXPECT_NE(server.pid(), first);
  const auto again = c.try_call(calc::kAdd, {2, 2}, {.timeout = 5s, .wait_for_ready = true});
  ASSERT_TRUE(again.ok()) << again.status().message;
  EXPECT_EQ(again.value().value, 4);
  EXPECT_EQ(server_pid(c), server.pid());
}

TEST(ServerProcess, StopIsGraceful) {
  auto server = ServerProcess::spawn({BRINE_CALCULATOR_SERVER, "--listen", "tcp://127.0.0.1:0"});
  brine::Client c(server.endpoint(), {.timeout = 5s});
  auto running = c.call_async(calc::kWait, {300});
  EXPECT_EQ(add(c, 1, 1), 2);  // the wait is running now
  server.stop();
  EXPECT_EQ(running.get().value, 300);  // it finished before the server left
  EXPECT_TRUE(server.exit_status().exited_normally()) << server.exit_status().describe();
}

TEST(ServerProcess, AForkedServerRunsTheGivenSetup) {
  auto server = ServerProcess::fork({"tcp://127.0.0.1:0", "unix://" + private_path("fork.sock")},
                                    [](brine::Server& s) {
                                      calc::register_calculator(s);
                                      std::printf("set up in %d\n", int(::getpid()));
                                    });
  ASSERT_EQ(server.endpoints().size(), 2u);
  brine::Client c(server.endpoint(), {.timeout = 2s});
  EXPECT_EQ(add(c, 20, 22), 42);
  EXPECT_EQ(server_pid(c), server.pid());
  server.stop();
  EXPECT_TRUE(server.exit_status().exited_normally()) << server.exit_status().describe();
  EXPECT_NE(server.output().find("set up in " + std::to_string(server.pid())), std::string::npos)
      << server.output();
}

TEST(ServerProcess, AForkedSetupThatThrowsIsReported) {
  try {
    (void)ServerProcess::fork({"tcp://127.0.0.1:0"},
                              [](brine::Server&) { throw std::runtime_error("no model file"); });
    FAIL() << "no failure reported";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("exit code 70"), std::string::npos) << what;
    EXPECT_NE(what.find("no model file"), std::string::npos) << what;
  }
}

// The same test body against a server in another process and one in this process.
// (spawn, not fork: restart() would fork again from a process that has threads by then.)
std::unique_ptr<TestServer> make_server(const std::string& kind) {
  if (kind == "local") {
    return std::make_unique<LocalServer>([](brine::Server& s) { calc::register_calculator(s); });
  }
  return std::make_unique<ServerProcess>(
      ServerProcess::spawn({BRINE_CALCULATOR_SERVER, "--listen", "tcp://127.0.0.1:0"}));
}

class TestServers : public ::testing::TestWithParam<std::string> {};

TEST_P(TestServers, StopKillAndRestartAsAClientSeesThem) {
  auto server = make_server(GetParam());
  const std::string uri = server->endpoint();
  brine::Client c(uri, {.timeout = 2s});
  EXPECT_EQ(add(c, 1, 2), 3);
  server->stop();
  EXPECT_FALSE(server->running());
  EXPECT_FALSE(c.try_call(calc::kAdd, {1, 2}, {1s}).ok());
  server->restart();
  EXPECT_TRUE(server->running());
  EXPECT_EQ(server->endpoint(), uri);
  // The client was refused while the server was down and waits out its backoff (wait_for_ready).
  const auto after_restart =
      c.try_call(calc::kAdd, {2, 3}, {.timeout = 5s, .wait_for_ready = true});
  ASSERT_TRUE(after_restart.ok()) << after_restart.status().message;
  EXPECT_EQ(after_restart.value().value, 5);
  server->kill();
  EXPECT_FALSE(server->running());
  const auto after_kill = c.try_call(calc::kAdd, {1, 2}, {1s});
  ASSERT_FALSE(after_kill.ok());
  EXPECT_EQ(after_kill.status().code, StatusCode::unavailable) << after_kill.status().message;
  server->restart();
  const auto again = c.try_call(calc::kAdd, {3, 4}, {.timeout = 5s, .wait_for_ready = true});
  ASSERT_TRUE(again.ok()) << again.status().message;
  EXPECT_EQ(again.value().value, 7);
}

INSTANTIATE_TEST_SUITE_P(InAnotherProcessAndInThisOne, TestServers,
                         ::testing::Values("process", "local"));

// --- the fault proxy: each fault as a brine client sees it ---------------------------------

// A calculator behind a FaultProxy, over tcp, unix or tls; "runs" counts the calls it ran.
class Proxied : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    brine::ServerOptions o;
    std::string uri = "tcp://127.0.0.1:0";
    if (GetParam() == "unix") uri = "unix://" + private_path("proxied.sock");
    if (GetParam() == "tls") {
      uri = "tls://127.0.0.1:0";
      o.tls.certificate_file = brine_test::tls_files().server_crt;
      o.tls.private_key_file = brine_test::tls_files().server_key;
    }
    server_ = std::make_unique<LocalServer>(
        [runs = runs_](brine::Server& s) {
          calc::register_calculator(s);
          s.handle("runs", [runs](const calc::Number& n) {
            runs->fetch_add(1);
            return n;
          });
        },
        o, std::vector<std::string>{uri});
    proxy_ = std::make_unique<FaultProxy>(server_->endpoint());
  }
  brine::ClientOptions options(std::chrono::milliseconds timeout = 2s) const {
    brine::ClientOptions o;
    o.timeout = timeout;
    o.tls.ca_file = brine_test::tls_paths().ca;
    return o;
  }
  bool plaintext() const { return GetParam() != "tls"; }

  std::shared_ptr<std::atomic<int>> runs_ = std::make_shared<std::atomic<int>>(0);
  std::unique_ptr<LocalServer> server_;
  std::unique_ptr<FaultProxy> proxy_;
};

TEST_P(Proxied, WithoutFaultsEverythingPasses) {
  EXPECT_TRUE(proxy_->endpoint().starts_with(GetParam() + "://")) << proxy_->endpoint();
  brine::Client c(proxy_->endpoint(), options());
  EXPECT_EQ(add(c, 2, 3), 5);
  std::vector<double> values(20000, 0.5);
  EXPECT_EQ(c.call(calc::kSum, {values}).value, 10000);
  EXPECT_EQ(proxy_->connections(), 1u);
}

TEST_P(Proxied, LatencyDelaysEachWayAndTimesOutShortCalls) {
  brine::Client c(proxy_->endpoint(), options());
  EXPECT_EQ(add(c, 1, 1), 2);  // connected
  proxy_->set({.latency = 150ms, .jitter = 20ms});
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(add(c, 1, 2), 3);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 300ms);
  const auto r = c.try_call(calc::kAdd, {1, 2}, {200ms});
  EXPECT_EQ(r.code(), StatusCode::deadline_exceeded) << r.status().message;
}

TEST_P(Proxied, ABandwidthCapSlowsLargeCalls) {
  brine::Client c(proxy_->endpoint(), options(10s));
  EXPECT_EQ(add(c, 1, 1), 2);
  std::vector<double> values(4000, 1.0);  // 32 KB each way and back
  proxy_->set({.bytes_per_second = 64 * 1024});
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(c.call(calc::kSum, {values}).value, 4000);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 400ms);  // 32 KB at 64 KB/s, at least
}

TEST_P(Proxied, ACutAfterSomeBytesEndsTheCallUnavailable) {
  brine::Client c(proxy_->endpoint(), options());
  proxy_->set({.cut_after_bytes = 10});
  const auto r = c.try_call(calc::kAdd, {1, 2});
  EXPECT_EQ(r.code(), StatusCode::unavailable) << r.status().message;
  EXPECT_EQ(runs_->load(), 0);
}

TEST_P(Proxied, ACutBeforeTheReplyEndsACallTheServerRan) {
  if (!plaintext()) GTEST_SKIP() << "frames are counted on plaintext streams only";
  brine::Client c(proxy_->endpoint(), options());
  proxy_->set({.cut_at_frame = 2});  // the request passes, its reply does not
  const auto r = c.try_call(brine::Method<calc::Number, calc::Number>{"runs"}, {1});
  EXPECT_EQ(r.code(), StatusCode::unavailable) << r.status().message;
  EXPECT_EQ(runs_->load(), 1);
  proxy_->set({});
  EXPECT_EQ(c.call(brine::Method<calc::Number, calc::Number>{"runs"}, {1},
                   {.timeout = 5s, .wait_for_ready = true})
                .value,
            1);
  EXPECT_EQ(runs_->load(), 2);
}

TEST_P(Proxied, AResetFailsTheCallsInFlight) {
  brine::Client c(proxy_->endpoint(), options(10s));
  EXPECT_EQ(add(c, 1, 1), 2);
  auto pending = c.call_async(calc::kWait, {5000});
  ASSERT_TRUE(eventually([&] { return server_->server().stats().calls_in_flight == 1; }, 5s));
  const auto t0 = std::chrono::steady_clock::now();
  proxy_->reset();
  ASSERT_EQ(pending.wait_for(3s), std::future_status::ready);
  try {
    (void)pending.get();
    FAIL() << "the call survived the reset";
  } catch (const brine::RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::unavailable) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
}

TEST_P(Proxied, ABlackHoleIsNoticedByHeartbeatsAndCanBeLifted) {
  auto o = options();
  o.heartbeat_interval = 100ms;
  o.heartbeat_timeout = 500ms;
  brine::Client c(proxy_->endpoint(), o);
  EXPECT_EQ(add(c, 1, 1), 2);
  proxy_->set({.black_hole = true});  // from now on, nothing passes
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = c.try_call(calc::kAdd, {1, 2});
  EXPECT_EQ(r.code(), StatusCode::unavailable) << r.status().message;
  EXPECT_NE(r.status().message.find("heartbeat_timeout"), std::string::npos) << r.status().message;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1500ms);
  const auto short_call = c.try_call(calc::kAdd, {1, 2}, {300ms});
  EXPECT_FALSE(short_call.ok());
  proxy_->set({});
  const auto again = c.try_call(calc::kAdd, {2, 2}, {.timeout = 5s, .wait_for_ready = true});
  ASSERT_TRUE(again.ok()) << again.status().message;
  EXPECT_EQ(again.value().value, 4);
}

INSTANTIATE_TEST_SUITE_P(StreamTransports, Proxied, ::testing::Values("tcp", "unix", "tls"));

TEST(FaultProxy, RefusesWhatItCannotCarry) {
  EXPECT_THROW(FaultProxy("zmq+tcp://127.0.0.1:5555"), std::invalid_argument);
  EXPECT_THROW(FaultProxy("mem://x"), std::invalid_argument);
}

}  // namespace
