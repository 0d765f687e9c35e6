// A client's ZeroMQ channel: a DEALER connected to one server (or broker frontend), on the
// client's loop (internal).
//
// One brine frame is one single-part message. libzmq connects in the background: frames sent
// before it has connected wait in the channel's backlog (ZMQ_IMMEDIATE keeps libzmq from taking
// them into a pipe that has no connection), and a frame sent with WhenFull::wait that is still
// there at its deadline is dropped. A socket monitor reports the connection: a connect attempt
// that fails before any succeeded, or a connection lost, ends the channel with UNAVAILABLE.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include "transport/channel.hpp"
#include "transport/zmq/zmq_socket.hpp"

namespace brine::transport::zmq_transport {

class DealerChannel final : public Channel,
                            public event::Watcher,
                            public std::enable_shared_from_this<DealerChannel> {
 public:
  // Creates and connects the socket (libzmq connects later). Throws zmq::error_t.
  DealerChannel(event::EventLoop& loop, std::string uri, const ClientOptions& options);
  ~DealerChannel() override;

  void start(std::shared_ptr<ChannelSink> sink) override;
  SendStatus send(Buffer&& frame, Deadline deadline, WhenFull when_full) override;
  void close(const Status& why, Deadline linger_until) override;
  void pause_reading(bool paused) override { paused_.store(paused); }
  std::size_t queued_bytes() const override;
  ChannelProgress progress() const override;
  const PeerInfo& peer() const override { return peer_; }
  void on_ready(std::uint32_t events) override;

 private:
  struct Outgoing {
    Buffer frame;
    Deadline drop_at;
  };

  void process();
  void handle_monitor();
  bool receive();  // false: the budget ran out with messages left
  void flush();
  void end(const Status& why);

  event::EventLoop& loop_;
  std::string uri_;
  std::size_t max_frame_size_;
  PeerInfo peer_;
  zmq::socket_t socket_;
  std::unique_ptr<Monitor> monitor_;
  SocketWatch socket_watch_;
  SocketWatch monitor_watch_;
  std::shared_ptr<ChannelSink> sink_;  // loop thread after start
  bool connected_ = false;             // loop thread
  bool ended_ = false;                 // loop thread
  std::atomic<bool> closing_{false};
  std::atomic<bool> paused_{false};
  Status close_why_;

  mutable std::mutex out_mu_;
  std::condition_variable room_;  // senders waiting for the queue to shrink
  std::deque<Outgoing> queue_;    // from any thread
  std::size_t queued_ = 0;
  bool flush_posted_ = false;
  Clock::time_point last_progress_{};
};

}  // namespace brine::transport::zmq_transport
