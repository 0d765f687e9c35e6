// ServerConnection: the server's connection policy, written once for every transport
// (internal). One per channel a listener accepted.
//
// It filters frame kinds (requests, oneways and cancels go to the dispatcher; heartbeats are
// answered; anything else is a protocol error), applies the admission limits (calls in flight per
// connection; max_connections is checked by the server before one is made), the timeouts
// (first frame, a frame's rest, idle, a peer that reads nothing) and back-pressure
// (max_outbound_bytes queued: the channel stops reading), and keeps the peer's Session (remote
// references) and CallRegistry, both ended with the channel.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "brine/server.hpp"
#include "event/loop.hpp"
#include "server/dispatcher.hpp"
#include "server/session.hpp"
#include "transport/channel.hpp"

namespace brine::detail {

class ServerConnection;
class ServerCall;
class ReverseChannel;
class ClientCore;

// The server's live connections: for its stats, max_connections, and stop().
class ConnectionSet {
 public:
  void add(const std::shared_ptr<ServerConnection>& conn);
  void remove(const ServerConnection* conn);
  std::size_t size() const;
  std::vector<std::shared_ptr<ServerConnection>> all() const;
  // Waits until none is left, or `timeout`; false on timeout.
  bool wait_empty(std::chrono::milliseconds timeout);

 private:
  mutable std::mutex mu_;
  std::condition_variable emptied_;
  std::unordered_map<const ServerConnection*, std::weak_ptr<ServerConnection>> conns_;
};

class ServerConnection final : public transport::ChannelSink,
                               public std::enable_shared_from_this<ServerConnection> {
 public:
  ServerConnection(std::shared_ptr<transport::Channel> channel, const ServerOptions& options,
                   Dispatcher& dispatcher, Counters& counters, ConnectionSet& set,
                   event::EventLoop& timers, std::shared_ptr<event::EventLoop> timers_owner = {});

  // Starts the channel and the watchdog. The set must hold the connection already.
  void start();

  // transport::ChannelSink
  void on_frame(const FrameView& f) override;
  void on_bad_frame(const Status& why, bool recoverable) override;
  void on_close(const Status& why) override;
  void on_sent(std::size_t queued_bytes) override;

  // For the dispatcher, from any thread: a reply (or an error frame) for this peer. Dropped once
  // the connection is closing.
  void send(Buffer&& frame);
  // The peer's objects; null where remote references cannot be kept (a broker's peers).
  Session* session() { return channel_->peer().relayed ? nullptr : &session_; }
  CallRegistry& calls() { return calls_; }
  // The contracts of this peer the server refused; null for a broker's peers (their calls
  // come from many clients through one connection, so only a frame's own contract counts).
  ContractRefusals* refusals() { return channel_->peer().relayed ? nullptr : &refusals_; }
  // The loop that runs this connection's timers (any thread may arm one).
  event::EventLoop& timers() { return timers_; }
  // Counts a call against the in-flight limit: false (nothing counted) when the peer is at it.
  bool admit();
  void release() { inflight_.fetch_sub(1, std::memory_order_relaxed); }
  const transport::PeerInfo& peer() const { return channel_->peer(); }
  bool carries_streams() const { return channel_->carries_streams(); }
  std::string why_no_streams() const { return channel_->why_no_streams(); }

  // The calls that finish later (server_call.hpp), by call id: kept while they run so that
  // their stream frames and cancels reach them, and ended with the connection. keep_call is
  // false once the connection ended.
  bool keep_call(std::shared_ptr<ServerCall> call);
  std::shared_ptr<ServerCall> find_call(std::uint64_t id) const;
  // Forgets `call` (if it is the one kept under `id`).
  void forget_call(std::uint64_t id, const ServerCall* call);

  // The calls this side makes to objects the peer passed as arguments: a client core whose
  // connection is this one (a ReverseChannel), made on first use with `codec` preferred; on a
  // client's callback host, the client's own core. Throws RpcError where the peer cannot be
  // called back (a broker's peer, datagrams).
  std::shared_ptr<ClientCore> peer_core(CodecId codec);
  void set_peer_core(std::weak_ptr<ClientCore> core) {
    forward_core_ = std::move(core);
    for_client_ = true;
  }
  // Whether this serves a client's own objects (a client's callback host).
  bool serves_for_client() const { return for_client_; }

  // Sends an error frame with call id 0 after the replies already queued, then closes (at the
  // latest a second later). Any thread.
  void fail(const Status& why);
  // Closes at once. Any thread.
  void close_now(const Status& why);

 private:
  using Clock = std::chrono::steady_clock;

  void arm_watchdog(Clock::time_point now);
  void on_watchdog();
  // Why the connection must end now ("" if it need not), and whether the peer can still be told.
  std::string overdue(Clock::time_point now, bool& tell_peer) const;

  const std::shared_ptr<transport::Channel> channel_;
  const ServerOptions& options_;
  Dispatcher& dispatcher_;
  Counters& counters_;
  ConnectionSet& set_;
  event::EventLoop& timers_;
  const std::shared_ptr<event::EventLoop> timers_owner_;  // for the calls back (peer_core)
  Session session_;
  CallRegistry calls_;
  std::weak_ptr<ClientCore> forward_core_;  // set on a client's callback host
  bool for_client_ = false;
  std::mutex back_mu_;
  std::shared_ptr<ReverseChannel> back_channel_;  // (back_mu_) the calls back, once made
  std::shared_ptr<ClientCore> back_core_;         // (back_mu_)
  bool back_closed_ = false;                      // (back_mu_) the connection ended
  ContractRefusals refusals_;
  std::atomic<std::size_t> inflight_{0};
  mutable std::mutex later_mu_;
  std::unordered_map<std::uint64_t, std::shared_ptr<ServerCall>> later_;  // (later_mu_)
  bool later_closed_ = false;                                             // (later_mu_)
  std::atomic<bool> paused_{false};
  std::atomic<bool> ended_{false};
  std::atomic<bool> seen_frame_{false};
  std::atomic<Clock::rep> last_received_{0};
  Clock::time_point connected_at_;
  std::mutex watchdog_mu_;
  event::EventLoop::TimerId watchdog_ = 0;
};

}  // namespace brine::detail
