// A client's datagram channel (udp://, unixgram://) (internal): a socket connected to the
// server, on the client's loop.
//
// Dialing draws a session id and sends hellos (with backoff) until the server answers with a
// cookie, which every later datagram carries. Requests are kept until their answer arrives and
// sent again with backoff (retransmit_interval, doubling up to 1 s) until the deadline given to
// send(); the server's memory of call ids makes the copies harmless. A heartbeat is sent again
// the same way until anything arrives from the server. Oneways and cancels go once: fire and
// forget. A connection refused (nothing listens: an ICMP port unreachable, or no unix socket)
// or a server that no longer knows the session ends the channel with UNAVAILABLE.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "event/loop.hpp"
#include "transport/channel.hpp"
#include "transport/datagram/envelope.hpp"
#include "transport/datagram/family.hpp"

namespace brine::transport::datagram {

class DatagramDialer final : public Dialer {
 public:
  DatagramDialer(const Family& family, std::string_view uri, const ClientSide& client);
  std::shared_ptr<Channel> dial(Deadline deadline, std::string& error) override;

 private:
  const Family& family_;
  std::string uri_;
  std::string rest_;
  const ClientOptions& options_;
  event::EventLoop& loop_;
};

class ClientChannel final : public Channel,
                            public event::Watcher,
                            public std::enable_shared_from_this<ClientChannel> {
 public:
  ClientChannel(event::EventLoop& loop, event::Fd fd, std::uint64_t session, const Cookie& cookie,
                PeerInfo peer, const ClientOptions& options);
  ~ClientChannel() override;

  void start(std::shared_ptr<ChannelSink> sink) override;
  SendStatus send(Buffer&& frame, Deadline deadline, WhenFull when_full) override;
  void close(const Status& why, Deadline linger_until) override;
  // A server cannot be held back: while paused, what it sends is discarded.
  void pause_reading(bool paused) override { paused_.store(paused); }
  std::size_t queued_bytes() const override { return 0; }
  ChannelProgress progress() const override { return {}; }
  const PeerInfo& peer() const override { return peer_; }
  std::size_t max_frame_length() const override { return kMaxFrameLength; }
  bool carries_streams() const override { return false; }
  void on_ready(std::uint32_t events) override;

 private:
  struct Outstanding {
    Buffer frame;
    Deadline give_up;
    Clock::time_point next;
    std::chrono::milliseconds interval;
    bool left = false;  // a copy was handed to the socket
  };

  // Sends one frame datagram: 0, or the errno of the failure.
  int transmit(std::span<const std::byte> frame);
  void receive();
  void retransmit();
  // Makes sure the retransmission timer fires by `when` (mu_ held).
  void arm(Clock::time_point when);
  void end(const Status& why);
  Status refused() const;

  event::EventLoop& loop_;
  event::Fd fd_;
  const std::uint64_t session_;
  const Cookie cookie_;
  const PeerInfo peer_;
  const std::size_t max_frame_size_;
  const std::chrono::milliseconds first_interval_;
  const std::chrono::milliseconds heartbeat_interval_;
  std::shared_ptr<ChannelSink> sink_;  // loop thread after start
  event::EventLoop::Registration registration_;
  bool ended_ = false;  // loop thread
  std::atomic<bool> closing_{false};
  std::atomic<bool> paused_{false};

  std::mutex mu_;
  std::unordered_map<std::uint64_t, Outstanding> outstanding_;  // requests awaiting an answer
  std::optional<Outstanding> heartbeat_;                        // awaiting anything
  event::EventLoop::TimerId timer_ = 0;
  Clock::time_point timer_at_ = Clock::time_point::max();
};

}  // namespace brine::transport::datagram
