// Connector: the client's one connection, made on demand and made again after it was lost, with
// gRPC's reconnection backoff (internal).
//
// Connecting is lazy: the next call makes the attempt. While backing off after a failed attempt,
// a call fails at once with UNAVAILABLE naming the last error and the time to the next attempt,
// unless it waits for ready (then it waits for the attempts, until its deadline).
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

#include "brine/client.hpp"
#include "client/backoff.hpp"
#include "client/connection.hpp"
#include "transport/channel.hpp"

namespace brine::detail {

// A mutex whose lock gives up at a deadline. (std::timed_mutex would do, but ThreadSanitizer
// cannot see its try_lock_until and reports every unlock as an error, hiding real reports.)
class DeadlineMutex {
 public:
  bool try_lock_until(Deadline deadline) {
    std::unique_lock lk(mu_);
    if (!cv_.wait_until(lk, deadline, [&] { return !held_; })) return false;
    held_ = true;
    return true;
  }
  void unlock() {
    {
      std::lock_guard lk(mu_);
      held_ = false;
    }
    cv_.notify_one();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool held_ = false;
};

class Connector {
 public:
  // Prepares dialing `uri` (its scheme's Dialer). Throws std::invalid_argument for a bad URI or
  // TLS files that do not load.
  Connector(std::string_view uri, const ClientOptions& options, event::EventLoop& loop);
  // Dials with `dialer` (a server's calls back to its client, over that client's connection).
  Connector(std::string_view uri, std::unique_ptr<transport::Dialer> dialer,
            const ClientOptions& options, event::EventLoop& loop);

  // The live connection, or a new one. `wait`: wait out the backoff (until the deadline)
  // instead of failing at once. Null with `error` set on failure.
  std::shared_ptr<ClientConnection> connection(Deadline deadline, Status& error, bool wait);
  // The connection if it is up; never connects.
  std::shared_ptr<ClientConnection> live() const;
  // Whether close() was called.
  bool closed() const {
    std::lock_guard lk(conn_mu_);
    return closed_;
  }
  // Fails the connection with CANCELLED; every later connection() fails with CANCELLED too.
  // Waits (bounded) for the channel to confirm its end.
  void close();

  const std::string& uri() const { return uri_; }
  std::uint64_t attempts() const { return attempts_.load(std::memory_order_relaxed); }
  std::uint64_t connections() const { return connections_.load(std::memory_order_relaxed); }

 private:
  // With connect_mu_ held: waits out the backoff, or says why the call cannot wait. False when
  // the caller must give up (`error` set); true to attempt now (`conn` set if another thread
  // connected meanwhile).
  bool wait_turn(Deadline deadline, bool wait, Status& error,
                 std::shared_ptr<ClientConnection>& conn);
  // One attempt, without conn_mu_ (calls on a live connection must not wait for it).
  std::shared_ptr<ClientConnection> attempt(Deadline deadline, std::string& why);

  std::string uri_;
  const ClientOptions& options_;
  event::EventLoop& loop_;
  std::unique_ptr<transport::Dialer> dialer_;
  DeadlineMutex connect_mu_;
  mutable std::mutex conn_mu_;
  std::condition_variable closed_cv_;  // wakes a caller waiting out a backoff on close()
  std::shared_ptr<ClientConnection> conn_;
  bool closed_ = false;
  // Reconnection (under connect_mu_ and conn_mu_).
  Backoff backoff_;
  Deadline next_attempt_{};
  std::string last_error_;
  std::atomic<std::uint64_t> attempts_{0};
  std::atomic<std::uint64_t> connections_{0};
};

}  // namespace brine::detail
