// brine::testing::LocalServer: the TestServer interface over a brine::Server in this process.
#include <unistd.h>

#include <atomic>
#include <stdexcept>

#include "brine/testing.hpp"

namespace brine::testing {

LocalServer::LocalServer(std::function<void(Server&)> setup, ServerOptions options,
                         std::vector<std::string> uris)
    : setup_(std::move(setup)), options_(std::move(options)) {
  if (!setup_) throw std::invalid_argument("brine::testing: LocalServer needs a setup function");
  if (uris.empty()) {
    static std::atomic<unsigned> counter{0};
    uris.push_back("mem://brine-testing-" + std::to_string(::getpid()) + "-" +
                   std::to_string(counter.fetch_add(1)));
  }
  start(uris);
}

LocalServer::~LocalServer() = default;

void LocalServer::start(const std::vector<std::string>& uris) {
  auto server = std::make_unique<Server>(options_);
  setup_(*server);
  std::vector<std::string> bound;
  for (const auto& u : uris) bound.push_back(server->listen(u));
  server->start();
  endpoints_ = std::move(bound);
  server_ = std::move(server);
}

void LocalServer::stop() {
  if (!server_) return;
  server_->stop();
  server_.reset();
}

void LocalServer::kill() {
  server_.reset();  // the destructor stops at once, without draining
}

void LocalServer::restart() {
  stop();
  start(endpoints_);
}

Server& LocalServer::server() {
  if (!server_) throw std::logic_error("brine::testing: the local server is not running");
  return *server_;
}

}  // namespace brine::testing
