// The calls pending on one client connection, by call id (internal), and the rule that makes each
// complete exactly once: whoever take()s a call completes it (a reply, an error frame, its timer,
// its cancel, or the connection's end), and only one can take it.
#pragma once

#include <memory>
#include <mutex>
#include <stop_token>
#include <unordered_map>
#include <vector>

#include "brine/client.hpp"
#include "event/loop.hpp"

namespace brine::detail {

class ClientConnection;

// A call's stop_token callback: cancels call `id` on the connection, if both still exist.
struct CancelFn {
  std::weak_ptr<ClientConnection> conn;  // the entry holding this lives in the connection
  std::uint64_t id;
  void operator()() const noexcept;
};
using CancelCallback = std::stop_callback<CancelFn>;

// A call taken out of the table: complete `call`, then let `owned` (an asynchronous call's
// PendingCall) go. Empty if the call had completed already.
struct TakenCall {
  PendingCall* call = nullptr;
  std::unique_ptr<PendingCall> owned;
  event::EventLoop::TimerId timer = 0;
  explicit operator bool() const noexcept { return call != nullptr; }
};

class CallTable {
 public:
  // Registers a call; `owned` is null for a blocking call (its caller owns it). False once the
  // table is closed (the connection died): nothing is registered.
  bool add(std::uint64_t id, PendingCall* call, std::unique_ptr<PendingCall>& owned);
  // Attaches the deadline timer (asynchronous calls) or the cancel callback to a pending call;
  // false if the call completed already (the caller cancels the timer / drops the callback).
  bool set_timer(std::uint64_t id, event::EventLoop::TimerId timer);
  bool set_cancel(std::uint64_t id, std::unique_ptr<CancelCallback>& on_cancel);
  TakenCall take(std::uint64_t id);
  // Closes the table: every call still pending is returned, and nothing can be added after.
  std::vector<TakenCall> close();

  bool pending(std::uint64_t id) const;
  std::size_t size() const;

 private:
  struct Entry {
    PendingCall* call = nullptr;
    std::unique_ptr<PendingCall> owned;
    event::EventLoop::TimerId timer = 0;
    std::unique_ptr<CancelCallback> on_cancel;
  };
  using Map = std::unordered_map<std::uint64_t, Entry>;

  mutable std::mutex mu_;
  Map pending_;
  // Nodes of completed calls, reused by the next ones (a call allocates no node of its own).
  static constexpr std::size_t kSpareNodes = 64;
  std::vector<Map::node_type> spare_;
  bool closed_ = false;
};

}  // namespace brine::detail
