// What the server core offers to the transports that feed it (internal).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "brine/buffer.hpp"
#include "brine/detail/frame.hpp"
#include "brine/server.hpp"

namespace brine::detail {

// An object served to remote callers: the implementation and its interface's methods.
struct ExposedObject {
  std::shared_ptr<void> self;
  const InterfaceTable* table = nullptr;
};

// The objects one connection (one peer) holds through remote references, by name. Thread-safe.
// close() frees them all; objects kept after close() are freed at once.
class Session {
 public:
  // `live` (if given) counts the objects kept, across sessions.
  explicit Session(std::atomic<std::size_t>* live = nullptr) : live_(live) {}
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() { close(); }

  // Keeps `object` under `name`; false (object dropped) after close().
  bool keep(const std::string& name, ExposedObject object) {
    std::lock_guard lk(mu_);
    if (closed_) return false;
    if (objects_.emplace(name, std::move(object)).second && live_ != nullptr) ++*live_;
    return true;
  }
  std::optional<ExposedObject> find(std::string_view name) const {
    std::lock_guard lk(mu_);
    const auto it = objects_.find(name);
    if (it == objects_.end()) return std::nullopt;
    return it->second;
  }
  void release(std::string_view name) {
    ExposedObject dropped;  // destroyed after the lock is released
    std::lock_guard lk(mu_);
    const auto it = objects_.find(name);
    if (it == objects_.end()) return;
    dropped = std::move(it->second);
    objects_.erase(it);
    if (live_ != nullptr) --*live_;
  }
  void close() {
    decltype(objects_) dropped;
    std::lock_guard lk(mu_);
    closed_ = true;
    dropped.swap(objects_);
    if (live_ != nullptr) *live_ -= dropped.size();
  }
  std::size_t size() const {
    std::lock_guard lk(mu_);
    return objects_.size();
  }

 private:
  mutable std::mutex mu_;
  // Looked up by string_view: no string built per call.
  struct NameHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  std::unordered_map<std::string, ExposedObject, NameHash, std::equal_to<>> objects_;
  bool closed_ = false;
  std::atomic<std::size_t>* live_;
};

// One call admitted to run: what its handler can ask (brine::this_call) and what a cancel frame
// changes.
struct CallState {
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  std::atomic<bool> cancelled{false};
};

// The calls of one peer that wait for or run on a worker, by call id, so that a cancel frame
// finds them. Thread-safe.
class CallRegistry {
 public:
  // False (not tracked) if the id is already in use.
  bool add(std::uint64_t id, CallState* state) {
    std::lock_guard lk(mu_);
    if (spare_.empty()) return calls_.emplace(id, state).second;
    auto node = std::move(spare_.back());  // a finished call's node: no allocation
    spare_.pop_back();
    node.key() = id;
    node.mapped() = state;
    auto inserted = calls_.insert(std::move(node));
    if (!inserted.inserted) spare_.push_back(std::move(inserted.node));
    return inserted.inserted;
  }
  void remove(std::uint64_t id) {
    std::lock_guard lk(mu_);
    auto node = calls_.extract(id);
    if (!node.empty() && spare_.size() < kSpareNodes) spare_.push_back(std::move(node));
  }
  void cancel(std::uint64_t id) {
    std::lock_guard lk(mu_);
    if (const auto it = calls_.find(id); it != calls_.end()) it->second->cancelled = true;
  }
  // The peer is gone: nobody will read these replies.
  void cancel_all() {
    std::lock_guard lk(mu_);
    for (auto& [id, state] : calls_) state->cancelled = true;
  }

 private:
  std::mutex mu_;
  std::unordered_map<std::uint64_t, CallState*> calls_;
  static constexpr std::size_t kSpareNodes = 64;
  std::vector<std::unordered_map<std::uint64_t, CallState*>::node_type> spare_;
};

// Where the replies to one peer's requests go. send() is safe from any thread; frames sent after
// the peer is gone are dropped.
class ReplySink {
 public:
  virtual ~ReplySink() = default;
  virtual void send(Buffer&& frame) = 0;
  // The peer's objects; null where remote references are not possible (a broker's worker).
  virtual Session* session() { return nullptr; }
  // Counts a call against the peer's in-flight limit: false (nothing counted) when the peer is
  // at `limit`. Each admitted call is released once it has run.
  virtual bool admit(std::size_t /*limit*/) { return true; }
  virtual void release() {}
  // The peer's calls that a cancel frame can reach; null where cancel frames are ignored.
  virtual CallRegistry* calls() { return nullptr; }
};

// Runs request and oneway frames (inline or on the pool) and sends their replies to `sink`.
// `f` is borrowed for the duration of the call.
class FrameDispatcher {
 public:
  virtual ~FrameDispatcher() = default;
  virtual void dispatch(const std::shared_ptr<ReplySink>& sink, const FrameView& f) = 0;
  virtual const ServerOptions& options() const = 0;
  // The longest a ZeroMQ peer holding remote references may stay silent before they are freed.
  virtual std::chrono::milliseconds peer_timeout() const = 0;
  // Names of the methods registered as idempotent.
  virtual std::vector<std::string> idempotent_methods() const = 0;
  // Counts the objects kept for remote references (for ServerStats).
  virtual std::atomic<std::size_t>* object_counter() = 0;
};

// An endpoint whose transport carries whole frames as messages (ZeroMQ). It binds (or connects,
// as a broker's worker) in its constructor, runs its own thread between start() and stop().
class MessageEndpoint {
 public:
  virtual ~MessageEndpoint() = default;
  virtual const std::string& uri() const = 0;
  virtual void start() = 0;
  // `graceful`: first give the replies already queued a moment to reach their peers.
  virtual void stop(bool graceful = false) = 0;
};

// Throws std::invalid_argument for a bad URI, std::system_error when it cannot bind/connect.
std::unique_ptr<MessageEndpoint> make_zmq_endpoint(FrameDispatcher& dispatcher,
                                                   std::string_view uri, bool worker);

}  // namespace brine::detail
