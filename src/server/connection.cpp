#include "server/connection.hpp"

#include "callback/reverse_channel.hpp"
#include "server/server_call.hpp"
#include "wire/control.hpp"

namespace brine::detail {
namespace {

using Clock = std::chrono::steady_clock;

Clock::rep rep(Clock::time_point t) {
  return t.time_since_epoch().count();
}

std::string ms(std::chrono::milliseconds d) {
  return std::to_string(d.count()) + " ms";
}

}  // namespace

// --- the set --------------------------------------------------------------------------------

void ConnectionSet::add(const std::shared_ptr<ServerConnection>& conn) {
  std::lock_guard lk(mu_);
  conns_.emplace(conn.get(), conn);
}

void ConnectionSet::remove(const ServerConnection* conn) {
  std::lock_guard lk(mu_);
  conns_.erase(conn);
  if (conns_.empty()) emptied_.notify_all();
}

std::size_t ConnectionSet::size() const {
  std::lock_guard lk(mu_);
  return conns_.size();
}

std::vector<std::shared_ptr<ServerConnection>> ConnectionSet::all() const {
  std::vector<std::shared_ptr<ServerConnection>> out;
  std::lock_guard lk(mu_);
  for (const auto& [ptr, weak] : conns_) {
    if (auto c = weak.lock()) out.push_back(std::move(c));
  }
  return out;
}

bool ConnectionSet::wait_empty(std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  return emptied_.wait_for(lk, timeout, [&] { return conns_.empty(); });
}

// --- one connection --------------------------------------------------------------------------

ServerConnection::ServerConnection(std::shared_ptr<transport::Channel> channel,
                                   const ServerOptions& options, Dispatcher& dispatcher,
                                   Counters& counters, ConnectionSet& set, event::EventLoop& timers,
                                   std::shared_ptr<event::EventLoop> timers_owner)
    : channel_(std::move(channel)),
      options_(options),
      dispatcher_(dispatcher),
      counters_(counters),
      set_(set),
      timers_(timers),
      timers_owner_(std::move(timers_owner)),
      session_(&counters.objects_live, options.max_objects_per_connection),
      connected_at_(Clock::now()) {
  last_received_.store(rep(connected_at_), std::memory_order_relaxed);
}

void ServerConnection::start() {
  arm_watchdog(Clock::now());
  channel_->start(shared_from_this());
}

void ServerConnection::on_frame(const FrameView& f) {
  last_received_.store(rep(Clock::now()), std::memory_order_relaxed);
  counters_.bytes_in.fetch_add(f.size, std::memory_order_relaxed);
  seen_frame_.store(true, std::memory_order_relaxed);
  if (f.kind == FrameKind::reply || f.kind == FrameKind::error) {
    // The answer to a call back to the peer: its client policy takes it.
    if (deliver_reverse(back_mu_, back_channel_, f)) return;
  }
  if (!wire::client_sends(f.kind)) {
    // A well-formed frame of a kind clients never send. A ZeroMQ peer cannot be disconnected
    // alone, so there it costs only the frame; elsewhere the connection.
    on_bad_frame({StatusCode::invalid_argument,
                  "clients send only requests, oneways, heartbeats, cancels and stream frames"},
                 channel_->peer().silent_departure);
    return;
  }
  if (Status s = wire::check_fields(f); !s.ok()) {
    on_bad_frame(s, channel_->peer().silent_departure);
    return;
  }
  if (f.kind == FrameKind::heartbeat) {
    send(wire::heartbeat_frame());  // "still here": any byte would do
    return;
  }
  dispatcher_.dispatch(*this, f);  // a request, oneway or cancel
}

void ServerConnection::on_bad_frame(const Status& why, bool recoverable) {
  // A frame over the size limit is refused for what it is: sending it again fails again.
  const Status told{why.code, "protocol error: " + why.message,
                    why.code == StatusCode::resource_exhausted ? Retry::never : Retry::unknown};
  send(wire::error_frame(0, told, options_.max_frame_size));
  if (!recoverable) channel_->close(told, Clock::now() + std::chrono::seconds(1));
}

void ServerConnection::on_close(const Status&) {
  if (ended_.exchange(true)) return;
  {
    std::lock_guard lk(watchdog_mu_);
    timers_.cancel(watchdog_);
    watchdog_ = 0;
  }
  {
    std::lock_guard lk(back_mu_);
    back_closed_ = true;
  }
  close_reverse(back_mu_, back_channel_,
                {StatusCode::unavailable, "the client's connection was lost"});
  session_.close();     // the connection's remote references end with it
  calls_.cancel_all();  // and so do its calls: queued ones are not run
  decltype(later_) later;
  {
    std::lock_guard lk(later_mu_);
    later_closed_ = true;
    later.swap(later_);
  }
  for (auto& [id, call] : later) call->abandon({StatusCode::unavailable, "the connection closed"});
  set_.remove(this);
}

void ServerConnection::send(Buffer&& frame) {
  const std::size_t size = frame.size();
  if (channel_->send(std::move(frame), Clock::now(), transport::WhenFull::queue) !=
      transport::SendStatus::sent) {
    return;
  }
  counters_.bytes_out.fetch_add(size, std::memory_order_relaxed);
  // Back-pressure: past the bound, read no more requests until the peer has taken its replies.
  const std::size_t bound = options_.max_outbound_bytes;
  if (paused_.load(std::memory_order_relaxed) || channel_->queued_bytes() <= bound) return;
  if (paused_.exchange(true)) return;
  channel_->pause_reading(true);
  // The queue may have drained (and on_sent passed) between the two looks.
  if (channel_->queued_bytes() <= bound / 2 && paused_.exchange(false)) {
    channel_->pause_reading(false);
  }
}

void ServerConnection::on_sent(std::size_t queued_bytes) {
  if (queued_bytes > options_.max_outbound_bytes / 2) return;
  if (paused_.load(std::memory_order_relaxed) && paused_.exchange(false)) {
    channel_->pause_reading(false);
  }
}

bool ServerConnection::keep_call(std::shared_ptr<ServerCall> call) {
  std::lock_guard lk(later_mu_);
  if (later_closed_) return false;
  const std::uint64_t id = call->id();
  later_.insert_or_assign(id, std::move(call));
  return true;
}

std::shared_ptr<ServerCall> ServerConnection::find_call(std::uint64_t id) const {
  std::lock_guard lk(later_mu_);
  const auto it = later_.find(id);
  return it == later_.end() ? nullptr : it->second;
}

void ServerConnection::forget_call(std::uint64_t id, const ServerCall* call) {
  std::shared_ptr<ServerCall> gone;  // released after the lock
  std::lock_guard lk(later_mu_);
  const auto it = later_.find(id);
  if (it == later_.end() || it->second.get() != call) return;
  gone = std::move(it->second);
  later_.erase(it);
}

bool ServerConnection::admit() {
  const std::size_t limit = options_.max_inflight_per_connection;
  std::size_t n = inflight_.load(std::memory_order_relaxed);
  do {
    if (n >= limit) return false;
  } while (!inflight_.compare_exchange_weak(n, n + 1, std::memory_order_relaxed));
  return true;
}

std::shared_ptr<ClientCore> ServerConnection::peer_core(CodecId codec) {
  if (auto forward = forward_core_.lock()) return forward;
  if (channel_->peer().relayed) {
    throw RpcError(StatusCode::unimplemented,
                   "objects passed as arguments are called back over the caller's connection: "
                   "this call came through a broker");
  }
  if (!channel_->carries_streams()) {
    throw RpcError(StatusCode::unimplemented,
                   "objects passed as arguments are called back over the caller's connection, "
                   "which " +
                       channel_->peer().transport + ":// (datagrams) cannot carry both ways");
  }
  std::lock_guard lk(back_mu_);
  // (One whose direction failed, say on a bad answer from the client, is made again.)
  if (back_core_ && !back_channel_->closed()) return back_core_;
  if (back_closed_) {
    throw RpcError(StatusCode::unavailable, "the client's connection was lost");
  }
  ClientOptions o;
  o.codec = std::string(codec_name(codec));
  o.timeout = options_.callback_timeout;
  o.max_frame_size = options_.max_frame_size;
  o.decode_limits = options_.decode_limits;
  o.metadata_limits = options_.metadata_limits;
  o.log_calls = options_.log_calls;
  // The connection is the client's: its own heartbeats keep it, and its end ends these calls.
  o.heartbeat_interval = std::chrono::hours(24 * 365);
  o.heartbeat_timeout = 2 * o.heartbeat_interval;
  if (!timers_owner_) throw RpcError(StatusCode::internal, "no loop for calls back");
  back_channel_ = std::make_shared<ReverseChannel>(channel_, timers_owner_);
  back_core_ = make_peer_core(back_channel_, std::move(o), timers_owner_);
  return back_core_;
}

void ServerConnection::fail(const Status& why) {
  send(wire::error_frame(0, why, options_.max_frame_size));
  channel_->close(why, Clock::now() + std::chrono::seconds(1));
}

void ServerConnection::close_now(const Status& why) {
  channel_->close(why, Clock::now());
}

// --- timeouts: one timer per connection, armed for the earliest deadline ---------------------

void ServerConnection::arm_watchdog(Clock::time_point now) {
  const ServerOptions& o = options_;
  const bool silent = channel_->peer().silent_departure;
  const auto idle = silent ? o.heartbeat_timeout : o.idle_timeout;
  auto next = now + std::min({o.first_frame_timeout, o.frame_timeout, idle});
  if (!seen_frame_.load(std::memory_order_relaxed)) {
    next = std::min(next, connected_at_ + o.first_frame_timeout);
  }
  const auto progress = channel_->progress();
  if (progress.partial_since) next = std::min(next, *progress.partial_since + o.frame_timeout);
  if (progress.stalled_since) next = std::min(next, *progress.stalled_since + o.frame_timeout);
  const auto last = Clock::time_point(Clock::duration(last_received_.load()));
  next = std::min(next, last + idle);
  std::lock_guard lk(watchdog_mu_);
  if (ended_.load()) return;
  watchdog_ = timers_.at(next, [weak = weak_from_this()] {
    if (auto c = weak.lock()) c->on_watchdog();
  });
}

std::string ServerConnection::overdue(Clock::time_point now, bool& tell_peer) const {
  const ServerOptions& o = options_;
  tell_peer = true;
  const auto progress = channel_->progress();
  if (!seen_frame_.load(std::memory_order_relaxed) &&
      now >= connected_at_ + o.first_frame_timeout) {
    return "no complete frame within first_frame_timeout (" + ms(o.first_frame_timeout) + ")";
  }
  if (progress.partial_since && now >= *progress.partial_since + o.frame_timeout) {
    return "a frame took longer than frame_timeout (" + ms(o.frame_timeout) + ") to arrive";
  }
  if (progress.stalled_since && now >= *progress.stalled_since + o.frame_timeout) {
    tell_peer = false;  // it does not read: an error frame would not get through either
    return "no reply could be written for frame_timeout (" + ms(o.frame_timeout) + ")";
  }
  const auto last = Clock::time_point(Clock::duration(last_received_.load()));
  if (channel_->peer().silent_departure) {
    // Its departure shows only as silence: brine clients send a heartbeat every interval.
    tell_peer = false;
    // A broker's client is heard only through its calls (the broker answers its heartbeats
    // itself): while one of them runs (a stream, a long call), their deadlines bound it.
    if (channel_->peer().relayed && inflight_.load(std::memory_order_relaxed) > 0) return {};
    if (now >= last + o.heartbeat_timeout) {
      return "nothing heard for heartbeat_timeout (" + ms(o.heartbeat_timeout) + ")";
    }
    return {};
  }
  if (inflight_.load(std::memory_order_relaxed) == 0 && !progress.stalled_since &&
      now >= last + o.idle_timeout) {
    return "nothing received for idle_timeout (" + ms(o.idle_timeout) + ")";
  }
  return {};
}

void ServerConnection::on_watchdog() {
  if (ended_.load()) return;
  const auto now = Clock::now();
  bool tell_peer = true;
  const std::string why = overdue(now, tell_peer);
  if (why.empty()) {
    arm_watchdog(now);
    return;
  }
  counters_.timed_out.fetch_add(1, std::memory_order_relaxed);
  if (tell_peer) {
    fail({StatusCode::unavailable, "connection closed by the server: " + why});
  } else {
    close_now({StatusCode::unavailable, "connection closed by the server: " + why});
  }
}

}  // namespace brine::detail
