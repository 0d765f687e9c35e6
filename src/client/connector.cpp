#include "client/connector.hpp"

#include "transport/registry.hpp"

namespace brine::detail {
namespace {
using Clock = std::chrono::steady_clock;
}

Connector::Connector(std::string_view uri, const ClientOptions& options, event::EventLoop& loop)
    : uri_(uri),
      options_(options),
      loop_(loop),
      dialer_(transport::scheme_of(uri).dialer(uri, {options, loop})),
      backoff_(options.reconnect_backoff_initial, options.reconnect_backoff_max) {}

Connector::Connector(std::string_view uri, std::unique_ptr<transport::Dialer> dialer,
                     const ClientOptions& options, event::EventLoop& loop)
    : uri_(uri),
      options_(options),
      loop_(loop),
      dialer_(std::move(dialer)),
      backoff_(options.reconnect_backoff_initial, options.reconnect_backoff_max) {}

std::shared_ptr<ClientConnection> Connector::live() const {
  std::lock_guard lk(conn_mu_);
  if (conn_ && !conn_->dead()) return conn_;
  return nullptr;
}

std::shared_ptr<ClientConnection> Connector::connection(Deadline deadline, Status& error,
                                                        bool wait) {
  if (auto conn = live(); conn && conn->refresh()) return conn;
  std::unique_lock connecting(connect_mu_, std::defer_lock);
  if (!connecting.try_lock_until(deadline)) {
    error = {StatusCode::deadline_exceeded, "timed out waiting to connect to " + uri_};
    return nullptr;
  }
  for (;;) {
    std::shared_ptr<ClientConnection> conn;
    if (!wait_turn(deadline, wait, error, conn)) return nullptr;
    if (conn) return conn;  // another thread connected meanwhile
    std::string why;
    conn = attempt(deadline, why);
    std::lock_guard lk(conn_mu_);
    if (closed_) {
      error = {StatusCode::cancelled, "client closed"};
      return nullptr;  // the channel, never started, goes with `conn`
    }
    if (conn) {
      backoff_.reset();
      next_attempt_ = {};
      conn->set_serial(connections_.fetch_add(1, std::memory_order_relaxed) + 1);
      conn_ = conn;
      conn->start();
      return conn;
    }
    last_error_ = why;
    next_attempt_ = Clock::now() + backoff_.next();
    if (!wait || Clock::now() >= deadline) {
      error = {StatusCode::unavailable, "cannot connect to " + uri_ + ": " + why};
      return nullptr;
    }
  }
}

bool Connector::wait_turn(Deadline deadline, bool wait, Status& error,
                          std::shared_ptr<ClientConnection>& conn) {
  std::unique_lock lk(conn_mu_);
  for (;;) {
    if (closed_) {
      error = {StatusCode::cancelled, "client closed"};
      return false;
    }
    if (conn_ && !conn_->dead()) {
      conn = conn_;
      return true;
    }
    const Deadline next = next_attempt_;
    if (Clock::now() >= next) return true;
    // Backing off after a failed attempt.
    if (!wait) {
      const auto ms = std::chrono::ceil<std::chrono::milliseconds>(next - Clock::now()).count();
      error = {StatusCode::unavailable, "cannot connect to " + uri_ + ": " + last_error_ +
                                            " (next attempt in " + std::to_string(ms) + " ms)"};
      return false;
    }
    if (next >= deadline) {
      error = {StatusCode::deadline_exceeded,
               "not connected to " + uri_ + " before the deadline: " + last_error_};
      return false;
    }
    closed_cv_.wait_until(lk, next, [&] { return closed_; });
  }
}

std::shared_ptr<ClientConnection> Connector::attempt(Deadline deadline, std::string& why) {
  attempts_.fetch_add(1, std::memory_order_relaxed);
  try {
    auto channel = dialer_->dial(deadline, why);
    if (!channel) return nullptr;
    return std::make_shared<ClientConnection>(std::move(channel), loop_, options_);
  } catch (const std::exception& e) {
    why = e.what();
    return nullptr;
  }
}

void Connector::close() {
  std::shared_ptr<ClientConnection> conn;
  {
    std::lock_guard lk(conn_mu_);
    closed_ = true;
    conn.swap(conn_);
  }
  closed_cv_.notify_all();
  if (!conn) return;
  conn->fail({StatusCode::cancelled, "client closed"});
  // The channel confirms from its loop (or, over mem://, from the thread delivering to it): never
  // wait for that on the loop itself.
  if (!loop_.on_loop_thread()) conn->wait_closed(std::chrono::seconds(2));
}

}  // namespace brine::detail
