// A server's ZeroMQ endpoint (internal): one socket on one of the server's loops, and a channel
// per peer it hears from.
//
// * As a ROUTER bound to a URI, a peer is a routing id: every client connection is one.
// * As a broker's worker (a DEALER connected to the broker's backend), a peer is a client as the
//   broker names it (the routing parts in front of each frame). Such a peer is `relayed`: its
//   next call may go to another worker. The worker also announces itself (worker_ready, with
//   its idempotent methods) on every connection and sends a heartbeat every 500 ms.
//
// Each peer has its own outbound queue, and the queues are written in turn: a peer whose pipe is
// full (it does not read) waits alone, retried with a growing interval, while the others are
// served. A peer's channel never sees its peer leave (ZeroMQ does not say), so it ends when the
// connection policy gives up on it, or with the endpoint.
#pragma once

#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "transport/accept_gate.hpp"
#include "transport/channel.hpp"
#include "transport/zmq/zmq_socket.hpp"

namespace brine::transport::zmq_transport {

class PeerChannel;

class PeerHub final : public event::Watcher, public std::enable_shared_from_this<PeerHub> {
 public:
  enum class Mode { router, worker };

  // Binds (router) or connects (worker) at once. Throws std::invalid_argument for a bad URI,
  // std::system_error when it cannot bind.
  PeerHub(Mode mode, std::string_view uri, const ServerSide& server);
  ~PeerHub();

  const std::string& uri() const { return uri_; }
  void start(ListenerSink& sink);
  // Closes every peer's channel and the socket; waits (bounded) for the loop to do it.
  void close(bool linger);

  void on_ready(std::uint32_t events) override;

  // From a peer's channel (any thread): it has frames to send / wants to close.
  void wake(std::shared_ptr<PeerChannel> peer);
  void close_peer(std::shared_ptr<PeerChannel> peer, Status why, Deadline linger_until);

 private:
  void process();
  bool receive();  // false: the budget ran out with messages left
  void handle(std::vector<zmq::message_t>& envelope, const zmq::message_t& frame);
  void flush();
  // Sends what `peer` has queued; false if its pipe is full.
  bool flush_peer(PeerChannel& peer);
  void retry_blocked();
  void finish_peer(PeerChannel& peer, const Status& why);
  void worker_events();
  void heartbeat();
  void close_on_loop(bool linger);
  void close_socket(bool linger);

  Mode mode_;
  std::string uri_;
  std::string scheme_;
  event::EventLoop& loop_;
  std::size_t max_frame_size_;
  std::function<std::vector<std::string>()> idempotent_methods_;
  zmq::socket_t socket_;
  std::unique_ptr<Monitor> monitor_;  // worker: (re)connections to the broker
  SocketWatch socket_watch_;
  SocketWatch monitor_watch_;
  AcceptGate gate_;
  bool closed_ = false;  // loop thread

  std::unordered_map<std::string, std::shared_ptr<PeerChannel>> peers_;  // loop thread
  std::vector<std::shared_ptr<PeerChannel>> blocked_;                    // loop thread
  std::chrono::milliseconds retry_delay_{1};
  event::EventLoop::TimerId retry_timer_ = 0;
  event::EventLoop::TimerId heartbeat_timer_ = 0;

  std::mutex wake_mu_;
  std::vector<std::shared_ptr<PeerChannel>> woken_;
  bool flush_posted_ = false;
};

// One peer of a PeerHub.
class PeerChannel final : public Channel, public std::enable_shared_from_this<PeerChannel> {
 public:
  PeerChannel(std::weak_ptr<PeerHub> hub, std::string key, std::vector<zmq::message_t> envelope,
              PeerInfo peer);

  void start(std::shared_ptr<ChannelSink> sink) override { sink_ = std::move(sink); }
  SendStatus send(Buffer&& frame, Deadline deadline, WhenFull when_full) override;
  void close(const Status& why, Deadline linger_until) override;
  // A ROUTER cannot stop one peer: while paused, what it sends is discarded.
  void pause_reading(bool paused) override { paused_.store(paused); }
  std::size_t queued_bytes() const override;
  ChannelProgress progress() const override;
  const PeerInfo& peer() const override { return peer_; }

 private:
  friend class PeerHub;

  std::weak_ptr<PeerHub> hub_;
  const std::string key_;
  const std::vector<zmq::message_t> envelope_;  // echoed in front of every frame sent
  const PeerInfo peer_;
  std::shared_ptr<ChannelSink> sink_;  // the hub's loop thread, after start
  std::atomic<bool> paused_{false};
  std::atomic<bool> closing_{false};
  bool closed_ = false;  // the hub's loop thread
  Status close_why_;     // (the hub's loop thread)
  event::EventLoop::TimerId linger_timer_ = 0;

  mutable std::mutex out_mu_;
  std::deque<Buffer> queue_;
  std::size_t queued_ = 0;
  bool scheduled_ = false;  // woken, or blocked: the hub will flush it
  Clock::time_point last_progress_{};
};

}  // namespace brine::transport::zmq_transport
