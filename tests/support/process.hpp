// A child process whose stdout is read line by line with timeouts (no sleeps), for the clients
// and tools the tests start; servers are started with brine::testing.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "brine/testing.hpp"

namespace brine_test {

class ChildProcess {
 public:
  // Starts argv[0] with the arguments; stdout is a pipe, stderr is inherited.
  explicit ChildProcess(const std::vector<std::string>& argv);
  ~ChildProcess();  // SIGKILLs and reaps the child if it still runs
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // The next line of stdout, or nullopt on EOF or timeout.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout);
  void kill(int signal);
  // Waits for exit; returns the wait status, or nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string pending_;
  bool reaped_ = false;
};

// Starts calculator_server (path from the BRINE_CALCULATOR_SERVER define) with the given
// arguments, through brine::testing: ready when the server says so, with its real endpoints.
brine::testing::ServerProcess start_calculator_server(const std::vector<std::string>& args);

}  // namespace brine_test
