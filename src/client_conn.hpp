// The client side of one connection, whatever carries it (internal).
//
// ClientConn owns the table of calls pending on the connection and the rules for completing
// them exactly once (reply, error frame, timeout, connection loss, close). A transport derives
// from it and provides start() (begin receiving; call deliver() per frame), write() and
// close_transport().
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <stop_token>
#include <unordered_map>
#include <vector>

#include "brine/client.hpp"
#include "brine_asio.hpp"
#include "transport/transport.hpp"

namespace brine::detail {

using transport::Deadline;

// True on the threads a client owns (its I/O thread, a ZeroMQ connection's thread). A client
// core must not be destroyed on them: its destructor joins them.
inline thread_local bool on_client_thread = false;

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

// A blocking caller's slot: wraps the typed one, and says in `finished` when it is filled. The flag
// is set, and the condition variable notified, under `mu`: a sleeping caller waits on `cv`, a
// caller that spins or reads the socket itself polls the flag, then calls settled().
struct Waiter final : PendingCall {
  explicit Waiter(PendingCall& wrapped) : inner(wrapped) {}
  void complete(Status status, std::span<const std::byte> payload) noexcept override {
    inner.complete(std::move(status), payload);
    std::lock_guard lk(mu);  // notify under the lock: the waiter may return at once
    finished.store(true, std::memory_order_release);
    cv.notify_one();
  }
  bool is_finished() const { return finished.load(std::memory_order_acquire); }
  // True once the call is completed and its completer no longer touches this Waiter, which may
  // then be destroyed: a caller that saw `finished` takes `mu` once, so that it does not destroy
  // the mutex and condition variable while the completer is still inside them.
  bool settled() {
    if (!is_finished()) return false;
    std::lock_guard lk(mu);
    return true;
  }
  // Sleeps until the call is completed (true) or `deadline` passes (false).
  bool sleep_until(Deadline deadline) {
    std::unique_lock lk(mu);
    return cv.wait_until(lk, deadline, [&] { return is_finished(); });
  }
  // Sleeps until the call is completed (its completion is known to be under way).
  void sleep() {
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return is_finished(); });
  }
  PendingCall& inner;
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<bool> finished{false};
};

class ClientConn {
 public:
  // `timers` runs the deadline timers of asynchronous calls (the client's I/O thread).
  explicit ClientConn(asio::any_io_executor timers) : timers_(std::move(timers)) {}
  virtual ~ClientConn() = default;
  ClientConn(const ClientConn&) = delete;
  ClientConn& operator=(const ClientConn&) = delete;

  // Begins receiving. `self` is this connection.
  virtual void start(std::shared_ptr<ClientConn> self) = 0;
  // Sends one finished frame (or queues it to be sent, for message transports).
  virtual transport::WriteResult write(Buffer&& frame, Deadline deadline) = 0;

  // Waits until `w` is completed or `deadline` passes (false). Here: the connection's reader
  // (another thread) completes it; the caller spins for `spin` first, then sleeps. Transports
  // whose callers read the socket themselves override it.
  virtual bool wait_for(Waiter& w, Deadline deadline, std::chrono::microseconds spin) {
    if (spin.count() > 0) {
      const auto until = std::min(deadline, std::chrono::steady_clock::now() + spin);
      while (!w.is_finished()) {
        if (std::chrono::steady_clock::now() >= until) break;
      }
    }
    return w.sleep_until(deadline);
  }
  // A call that a blocking caller will not wait for (asynchronous) was sent: make sure someone
  // reads its reply.
  virtual void expect_reply() {}
  // Before a new call: takes in what arrived while nobody was reading (the server closing, late
  // heartbeat answers). False if the connection turned out dead.
  virtual bool refresh() { return !dead(); }

  // Registers a call. False if the connection is already dead (the call was not registered).
  bool add(std::uint64_t id, PendingCall* call) {
    std::lock_guard lk(mu_);
    if (dead_) return false;
    if (spare_.empty()) {
      pending_.emplace(id, Entry{call, nullptr, nullptr});
    } else {  // a node of a completed call: no allocation
      auto node = std::move(spare_.back());
      spare_.pop_back();
      node.key() = id;
      node.mapped().call = call;
      pending_.insert(std::move(node));
    }
    return true;
  }

  bool pending(std::uint64_t id) const {
    std::lock_guard lk(mu_);
    return pending_.count(id) != 0;
  }
  std::size_t pending_count() const {
    std::lock_guard lk(mu_);
    return pending_.size();
  }

  // Cancels call `id` when `token` is stopped (at once if it already is). Call after add().
  void watch_cancel(std::uint64_t id, const std::stop_token& token,
                    const std::shared_ptr<ClientConn>& self) {
    if (!token.stop_possible()) return;
    auto callback = std::make_unique<CancelCallback>(token, CancelFn{self, id});  // may run now
    std::lock_guard lk(mu_);
    auto it = pending_.find(id);
    if (it != pending_.end()) {
      it->second.on_cancel = std::move(callback);
      return;
    }
    // Already completed: `callback` is destroyed after the lock is released (it is declared
    // before the lock_guard).
  }

  // Completes call `id` with CANCELLED, if it is still pending, and tells the server.
  void cancel(std::uint64_t id) {
    PendingCall* call = take(id, false);
    if (call == nullptr) return;  // the reply (or another outcome) won the race
    call->complete({StatusCode::cancelled, "cancelled by the caller"}, {});
    wake_reader();
    Buffer frame;
    begin_frame(frame, FrameKind::cancel, 0, {});
    set_call_id(frame, id);
    (void)finish_frame(frame, 0xFFFFFFFFu);
    send_control(std::move(frame));
  }

  // Sends a small frame that no caller waits for (cancel, release); on a partial write the
  // stream is broken and the connection fails.
  void send_control(Buffer&& frame) noexcept {
    try {
      const auto result =
          write(std::move(frame), std::chrono::steady_clock::now() + std::chrono::seconds(1));
      if (result.outcome == transport::WriteOutcome::timed_out_partial) {
        fail({StatusCode::unavailable, "connection closed: partial write"}, false);
      }
    } catch (...) {
      // Out of memory: the frame is lost; the server learns when the connection ends.
    }
  }

  // Arms the deadline timer of an asynchronous call. On the timers' executor only.
  void arm_timer(std::uint64_t id, Deadline deadline, const std::shared_ptr<ClientConn>& self) {
    std::lock_guard lk(mu_);
    auto it = pending_.find(id);
    if (it == pending_.end()) return;  // already completed
    auto timer = std::make_shared<asio::steady_timer>(timers_, deadline);
    timer->async_wait([weak = std::weak_ptr<ClientConn>(self), id](std::error_code ec) {
      if (ec) return;
      if (auto conn = weak.lock()) conn->expire(id);
    });
    it->second.timer = std::move(timer);
  }

  // Removes a pending call; nullptr if it already completed.
  PendingCall* take(std::uint64_t id, bool on_timer_thread) {
    std::shared_ptr<asio::steady_timer> timer;
    std::unique_ptr<CancelCallback> on_cancel;  // destroyed outside the lock
    PendingCall* call = nullptr;
    {
      std::lock_guard lk(mu_);
      auto it = pending_.find(id);
      if (it == pending_.end()) return nullptr;
      auto node = pending_.extract(it);
      call = node.mapped().call;
      timer = std::move(node.mapped().timer);
      on_cancel = std::move(node.mapped().on_cancel);
      if (spare_.size() < kSpareNodes) spare_.push_back(std::move(node));
    }
    if (timer) cancel_timer(std::move(timer), on_timer_thread);
    return call;
  }

  void expire(std::uint64_t id) {
    if (PendingCall* call = take(id, true)) {
      call->complete({StatusCode::deadline_exceeded, "no reply before the deadline"}, {});
    }
  }

  // Marks the connection dead, closes the transport and fails every pending call with `status`.
  void fail(const Status& status, bool on_timer_thread) {
    std::unordered_map<std::uint64_t, Entry> pending;
    {
      std::lock_guard lk(mu_);
      if (dead_) return;
      dead_ = true;
      death_ = status;
      pending.swap(pending_);
    }
    close_transport();
    for (auto& [id, entry] : pending) {
      if (entry.timer) cancel_timer(std::move(entry.timer), on_timer_thread);
      entry.on_cancel.reset();
      entry.call->complete(status, {});
    }
  }

  bool dead() const {
    std::lock_guard lk(mu_);
    return dead_;
  }
  Status death() const {
    std::lock_guard lk(mu_);
    return death_;
  }

 protected:
  // Stops the transport; called once, by fail().
  virtual void close_transport() = 0;
  // A call was completed by another thread than the connection's reader (cancel): a caller
  // sleeping on the socket itself must look at its slot again.
  virtual void wake_reader() {}

  // Completes the call a received frame answers. False when the connection must close (the
  // connection has then been failed).
  bool deliver(const FrameView& f, bool on_timer_thread) {
    if (f.kind == FrameKind::reply) {
      if (PendingCall* call = take(f.call_id, on_timer_thread)) call->complete({}, f.payload);
      return true;
    }
    if (f.kind == FrameKind::error) {
      Status s = parse_error_payload(f.payload);
      if (f.call_id == 0) {  // about the connection, not a call
        fail(s, on_timer_thread);
        return false;
      }
      if (PendingCall* call = take(f.call_id, on_timer_thread)) call->complete(std::move(s), {});
      return true;
    }
    if (f.kind == FrameKind::heartbeat) return true;  // the answer to ours: it arrived, enough
    fail({StatusCode::internal, "the server sent a frame of a kind only clients send"},
         on_timer_thread);
    return false;
  }

 private:
  struct CancelFn {
    std::weak_ptr<ClientConn> conn;  // the entry holding this lives in the connection
    std::uint64_t id;
    void operator()() const noexcept {
      if (auto c = conn.lock()) c->cancel(id);
    }
  };
  using CancelCallback = std::stop_callback<CancelFn>;
  struct Entry {
    PendingCall* call;
    std::shared_ptr<asio::steady_timer> timer;
    std::unique_ptr<CancelCallback> on_cancel;
  };

  void cancel_timer(std::shared_ptr<asio::steady_timer> timer, bool on_timer_thread) {
    if (on_timer_thread) {
      timer->cancel();
    } else {
      asio::post(timers_, [t = std::move(timer)] { t->cancel(); });
    }
  }

  asio::any_io_executor timers_;
  mutable std::mutex mu_;
  std::unordered_map<std::uint64_t, Entry> pending_;
  // Nodes of completed calls, reused by the next ones (a call allocates no node of its own).
  static constexpr std::size_t kSpareNodes = 64;
  std::vector<std::unordered_map<std::uint64_t, Entry>::node_type> spare_;
  bool dead_ = false;
  Status death_;
};

// A connection over ZeroMQ (src/transport/zmq). Throws std::invalid_argument for a bad URI.
// Returns nullptr with `error` set when the socket cannot be set up.
std::shared_ptr<ClientConn> make_zmq_client_conn(asio::io_context& timers, std::string_view uri,
                                                 const ClientOptions& options, Status& error);
bool is_zmq_uri(std::string_view uri) noexcept;
// Throws std::invalid_argument for a malformed zmq+ URI.
void check_zmq_uri(std::string_view uri);

}  // namespace brine::detail
