// What the server keeps per peer (internal): the objects it holds through remote references, and
// its calls that a cancel frame or the peer's departure can reach.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <unordered_map>

#include "brine/server.hpp"
#include "wire/names.hpp"

namespace brine::detail {

struct MethodStats;

// An object served to remote callers: the implementation and its interface's methods.
struct ExposedObject {
  std::shared_ptr<void> self;
  const InterfaceTable* table = nullptr;
};

// The objects one peer holds through remote references, by name. Thread-safe. close() frees
// them all; objects kept after close() are freed at once.
class Session {
 public:
  // `live` (if given) counts the objects kept, across sessions; `limit` bounds this session's.
  explicit Session(std::atomic<std::size_t>* live = nullptr, std::size_t limit = SIZE_MAX)
      : live_(live), limit_(limit) {}
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() { close(); }

  // Keeps `object` under `name`; false (object dropped) after close(). Throws RpcError
  // (RESOURCE_EXHAUSTED) when the session holds `limit` objects already.
  bool keep(const std::string& name, ExposedObject object) {
    std::lock_guard lk(mu_);
    if (closed_) return false;
    if (objects_.size() >= limit_) {
      throw RpcError(StatusCode::resource_exhausted,
                     "this connection holds " + std::to_string(limit_) +
                         " remote objects already (max_objects_per_connection); release some");
    }
    if (objects_.emplace(name, std::move(object)).second && live_ != nullptr) ++*live_;
    return true;
  }
  std::optional<ExposedObject> find(std::string_view name) const {
    std::lock_guard lk(mu_);
    const auto it = objects_.find(name);
    if (it == objects_.end()) return std::nullopt;
    return it->second;
  }
  // Takes `name` out; the object is the caller's to drop (its destructor is user code).
  std::shared_ptr<void> release(std::string_view name) {
    std::lock_guard lk(mu_);
    const auto it = objects_.find(name);
    if (it == objects_.end()) return nullptr;
    std::shared_ptr<void> dropped = std::move(it->second.self);
    objects_.erase(it);
    if (live_ != nullptr) --*live_;
    return dropped;
  }
  void close() {
    decltype(objects_) dropped;  // destroyed after the lock: destructors run user code
    std::lock_guard lk(mu_);
    closed_ = true;
    dropped.swap(objects_);
    if (live_ != nullptr) *live_ -= dropped.size();
  }

 private:
  mutable std::mutex mu_;
  std::unordered_map<std::string, ExposedObject, NameHash, std::equal_to<>> objects_;
  bool closed_ = false;
  std::atomic<std::size_t>* live_;
  std::size_t limit_;
};

// The methods whose contract this peer sent and the server refused, by codec (a method may have
// a handler per type family): later calls of them carry no contract (a client sends it once per
// connection and codec) and get the same refusal. Thread-safe; the test on the path of every
// call is one atomic load.
class ContractRefusals {
 public:
  // Refusals one connection may collect; at one more, the server closes the connection (so a
  // peer cannot grow this without bound, and a client that mismatches this much is broken).
  static constexpr std::size_t kLimit = 64;

  // Records `refusal` for `method` in `codec` (a served codec: below kCodecSlots); false
  // (nothing recorded) when kLimit are held already.
  bool add(std::string_view method, CodecId codec, const Status& refusal) {
    std::lock_guard lk(mu_);
    auto& refused = refused_[std::size_t(codec)];
    if (count_ >= kLimit && !refused.contains(method)) return false;
    if (refused.insert_or_assign(std::string(method), refusal).second) ++count_;
    any_.store(true, std::memory_order_release);
    return true;
  }
  // A contract for `method` in `codec` was accepted: calls without one are the accepted types'.
  void clear(std::string_view method, CodecId codec) {
    if (!any_.load(std::memory_order_acquire)) return;
    std::lock_guard lk(mu_);
    auto& refused = refused_[std::size_t(codec)];
    if (const auto it = refused.find(method); it != refused.end()) {
      refused.erase(it);
      --count_;
    }
  }
  // The refusal recorded for `method` in `codec`, or OK.
  Status find(std::string_view method, CodecId codec) const {
    if (!any_.load(std::memory_order_acquire)) return {};
    std::lock_guard lk(mu_);
    const auto& refused = refused_[std::size_t(codec)];
    const auto it = refused.find(method);
    return it == refused.end() ? Status{} : it->second;
  }

 private:
  mutable std::mutex mu_;
  std::array<std::unordered_map<std::string, Status, NameHash, std::equal_to<>>, kCodecSlots>
      refused_;
  std::size_t count_ = 0;
  std::atomic<bool> any_{false};
};

// What a call carries besides its payload, made when it arrives and moved into its CallState:
// the request's metadata, the answer's, and the interceptors' record of the call.
struct CallExtras {
  Metadata metadata;
  Metadata reply_metadata;
  std::string method;     // the frame's method field (kept when the server has interceptors)
  std::size_t asked = 0;  // interceptors whose before() let the call in
  std::chrono::steady_clock::time_point started{};  // the request was read
  std::chrono::steady_clock::time_point ended{};    // the call ended (metrics, interceptors)
  bool stream = false;
  bool oneway = false;
  bool wants_metadata = false;   // the request had a metadata field: its answer may have one
  MethodStats* stats = nullptr;  // where the call is counted when it ends (metrics on)
  bool stream_counted = false;   // counted in the open streams
  bool onward = false;           // the handler called out (brine::Client) while it ran
  bool has_encoding = false;     // the request had an encoding field: its answer may have one
  std::uint8_t accepts = 0;      // the compression algorithms the caller takes in the answer
};

// One call admitted to run: what its handler can ask (brine::this_call) and what a cancel frame
// or the peer's departure changes. Linked into its peer's CallRegistry while it waits or runs.
struct CallState {
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  mutable std::atomic<bool> cancelled{false};
  std::uint64_t call_id = 0;
  CodecId codec{};
  // The caller (the connection's peer, which outlives its calls).
  const Peer* peer = nullptr;
  // Marks the call cancelled, and stops the token onward calls were given (stop_token()).
  void cancel() const noexcept {
    cancelled.store(true);
    if (auto* source = stop.load()) source->request_stop();
  }
  // A token stopped when the call is cancelled (made on first use: onward calls inherit it).
  std::stop_token stop_token() const {
    std::stop_source* source = stop.load();
    if (source == nullptr) {
      auto fresh = std::make_unique<std::stop_source>();
      if (stop.compare_exchange_strong(source, fresh.get())) source = fresh.release();
    }
    // A cancel that came before the source: stop it here (seq_cst: of cancel()'s store and
    // this one, one sees the other).
    if (cancelled.load()) source->request_stop();
    return source->get_token();
  }
  // Drops the token's source (a recycled state).
  void reset_stop() noexcept { delete stop.exchange(nullptr); }
  CallState() = default;
  CallState(const CallState&) = delete;
  CallState& operator=(const CallState&) = delete;
  ~CallState() { reset_stop(); }
  mutable std::atomic<std::stop_source*> stop{nullptr};
  // Metadata and interceptors' bookkeeping (empty for a call with neither).
  mutable CallExtras extras;
  // A call that finishes on another thread than its handler's (ServerCall: its deadline, a
  // cancel) guards extras.reply_metadata with this while the handler may still add to it.
  std::recursive_mutex* guard = nullptr;
  CallState* prev = nullptr;
  CallState* next = nullptr;
};

// Every call of one peer that waits for or runs on a worker, requests and oneways alike, even
// two with the same call id: a cancel frame marks those with its id, the peer's departure marks
// them all. Thread-safe; the states are linked in (no allocation).
class CallRegistry {
 public:
  // False (and the call is marked cancelled) once the peer is gone.
  bool add(CallState& s) {
    std::lock_guard lk(mu_);
    if (closed_) {
      s.cancel();
      return false;
    }
    s.prev = nullptr;
    s.next = head_;
    if (head_ != nullptr) head_->prev = &s;
    head_ = &s;
    return true;
  }
  // Takes `s` off the list (nothing if it is not on it).
  void remove(CallState& s) {
    std::lock_guard lk(mu_);
    unlink(s);
  }
  // Who answers a call that waits for a worker with a deadline: the worker that starts it, or
  // the timer that answers it DEADLINE_EXCEEDED. The first to claim `taken` wins; the timer
  // also takes the call off the list in the same step, so that its id is free once the answer
  // leaves (and the worker, which finds it taken, never touches the list for it again).
  bool claim_for_worker(std::atomic<bool>& taken) {
    std::lock_guard lk(mu_);
    return !taken.exchange(true);
  }
  bool claim_for_deadline(std::atomic<bool>& taken, CallState& s) {
    std::lock_guard lk(mu_);
    if (taken.exchange(true)) return false;
    unlink(s);
    return true;
  }
  // Whether a call with this id is pending: on the list and not cancelled (a cancelled call is
  // never answered, so its id is free once the cancel is sent). Clients number their calls
  // upwards, so an id above every one seen is answered without a look at the list.
  bool in_use(std::uint64_t call_id) {
    std::lock_guard lk(mu_);
    if (call_id > highest_) {
      highest_ = call_id;
      return false;
    }
    for (CallState* s = head_; s != nullptr; s = s->next) {
      if (s->call_id == call_id && !s->cancelled.load(std::memory_order_relaxed)) return true;
    }
    return false;
  }
  void cancel(std::uint64_t call_id) {
    std::lock_guard lk(mu_);
    for (CallState* s = head_; s != nullptr; s = s->next) {
      if (s->call_id == call_id) s->cancel();
    }
  }
  // The peer is gone: nobody will read these replies, and later calls are cancelled on arrival.
  void cancel_all() {
    std::lock_guard lk(mu_);
    closed_ = true;
    for (CallState* s = head_; s != nullptr; s = s->next) s->cancel();
  }

 private:
  void unlink(CallState& s) {
    if (s.prev != nullptr) s.prev->next = s.next;
    if (s.next != nullptr) s.next->prev = s.prev;
    if (head_ == &s) head_ = s.next;
    s.prev = s.next = nullptr;
  }

  std::mutex mu_;
  CallState* head_ = nullptr;
  std::uint64_t highest_ = 0;  // the highest id in_use() was asked about
  bool closed_ = false;
};

}  // namespace brine::detail
