// An in-process server with the calculator plus methods that provoke every status code.
#pragma once

#include <atomic>
#include <brine/brine.hpp>
#include <memory>
#include <string>

#include "families.hpp"
#include "tls_files.hpp"

namespace brine_test {

// A listening URI for one of the test transports (transports.hpp): loopback, Unix sockets,
// ZeroMQ ipc/inproc, mem:// only.
std::string listen_uri(const std::string& transport);

struct TestServer {
  explicit TestServer(brine::ServerOptions options = {});
  ~TestServer();
  // tls transports use the test certificates (tls_files.hpp).
  std::string listen(const std::string& transport);

  std::shared_ptr<std::atomic<int>> counted = std::make_shared<std::atomic<int>>(0);
  // Calls of "until_cancelled" that saw their cancellation.
  std::shared_ptr<std::atomic<int>> saw_cancel = std::make_shared<std::atomic<int>>(0);
  // Calls of "until_cancelled" whose handler has started.
  std::shared_ptr<std::atomic<int>> running_cancellable = std::make_shared<std::atomic<int>>(0);
  brine::Server server;
};

}  // namespace brine_test
