// A cross-process test written with brine::testing: the calculator server runs in its own
// process, on a port it picks and reports; the test kills it and restarts it on the same port.
// (Built with the tests: ctest -R examples.kit)
#include <gtest/gtest.h>
#include <brine/testing.hpp>

#include "calculator.hpp"

TEST(Calculator, AnswersAgainAfterACrashAndARestart) {
  auto server =
      brine::testing::ServerProcess::spawn({CALCULATOR_SERVER, "--listen", "tcp://127.0.0.1:0"});
  brine::Client client(server.endpoint());
  EXPECT_EQ(client.call(calc::kAdd, {2, 3}).value, 5);
  server.kill();  // as a crash would
  EXPECT_EQ(client.try_call(calc::kAdd, {1, 1}).status().code, brine::StatusCode::unavailable);
  server.restart();  // the same command, on the same port
  EXPECT_EQ(client.call(calc::kAdd, {2, 2}, {.wait_for_ready = true}).value, 4);
}

TEST(Calculator, ThePausedServerTimesOut) {
  auto server =
      brine::testing::ServerProcess::spawn({CALCULATOR_SERVER, "--listen", "tcp://127.0.0.1:0"});
  brine::Client client(server.endpoint(), {.timeout = std::chrono::milliseconds(200)});
  server.pause();  // SIGSTOP: connected, silent
  EXPECT_EQ(client.try_call(calc::kAdd, {1, 1}).status().code,
            brine::StatusCode::deadline_exceeded);
  server.resume();
  EXPECT_EQ(client.call(calc::kAdd, {1, 1}).value, 2);
}
