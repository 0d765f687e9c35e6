// A server's datagram endpoint (udp://, unixgram://) (internal): one socket on one of the
// server's loops, and a channel per peer, a peer being a client address and the session id its
// client drew.
//
// * A hello is answered with a cookie, and nothing else is kept: an address that has not proven
//   itself (by echoing its cookie) makes no state and never gets more bytes back than it sent.
// * A frame datagram with a valid cookie from an unknown (address, session) makes a peer, whose
//   channel goes to the server like an accepted connection. Its departure shows only as silence
//   (the connection policy gives up on it after heartbeat_timeout) or at its bye, and it is then
//   remembered as retired for the cookie's lifetime, so that its session is not started afresh
//   with an empty memory. (Past 65,536 retired sessions the cookie secret is replaced instead.)
// * At most once: each peer remembers the call ids it was sent (CallMemory). A request seen
//   before is not delivered again: while it runs, the copy is dropped; once answered, the
//   remembered answer is sent again. Answers are remembered for call_memory, and within
//   max_inflight_per_connection entries and max_outbound_bytes of answers per peer, and 64 MiB of
//   answers for the endpoint; a request older than what a peer still remembers is answered
//   UNAVAILABLE, not run.
// * Sending is a sendmsg() on the shared socket from the sender's thread (a datagram leaves
//   whole or not at all); one the socket cannot take now is dropped, as the network may drop
//   it, and the client's retransmission brings it back from the memory.
#pragma once

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "event/loop.hpp"
#include "transport/accept_gate.hpp"
#include "transport/channel.hpp"
#include "transport/datagram/envelope.hpp"
#include "transport/datagram/family.hpp"

namespace brine::transport::datagram {

class Peer;

// Answers kept for copies of requests, all sessions of an endpoint together.
inline constexpr std::size_t kEndpointAnswerBytes = 64u << 20;

class Endpoint final : public event::Watcher, public std::enable_shared_from_this<Endpoint> {
 public:
  // Binds at once. Throws std::invalid_argument for a bad URI, std::system_error when it cannot
  // bind.
  Endpoint(const Family& family, std::string_view uri, const ServerSide& server);
  ~Endpoint();

  const std::string& uri() const { return uri_; }
  void start(ListenerSink& sink);
  // Tells every peer that its session ended, closes their channels, stops reading and releases
  // the address (the port, or the unix socket file); waits (bounded) for the loop to do it.
  void close();

  void on_ready(std::uint32_t events) override;

  // From a peer (any thread).
  void send_to(const SocketAddress& to, Type type, std::uint64_t session,
               std::span<const std::byte> body);
  void close_peer(std::shared_ptr<Peer> peer, Status why);

  struct Limits {
    std::size_t max_frame_size;
    std::chrono::milliseconds memory;
    std::size_t max_entries;
    std::size_t max_answer_bytes;
  };
  const Limits& limits() const { return limits_; }

 private:
  void receive();
  void handle(const SocketAddress& from, std::span<const std::byte> datagram);
  std::shared_ptr<Peer> make_peer(const SocketAddress& from, const Header& h, std::string key);
  // Ends a peer's session; `tell`: send it "session unknown" (not after its bye).
  void finish_peer(Peer& peer, const Status& why, bool tell = true);
  bool retired(const std::string& key);
  void retire(const std::string& key);
  void close_on_loop();

  const Family& family_;
  std::string uri_;
  event::EventLoop& loop_;
  Limits limits_;
  event::Fd fd_;
  SocketAddress bound_;
  event::EventLoop::Registration registration_;
  AcceptGate gate_;
  CookieJar cookies_;
  bool closed_ = false;  // loop thread

  std::shared_ptr<std::atomic<std::size_t>> answer_bytes_ =
      std::make_shared<std::atomic<std::size_t>>(0);
  std::unordered_map<std::string, std::shared_ptr<Peer>> peers_;  // loop thread
  // Sessions that ended, and when (oldest first): bounded, kept for a cookie's lifetime.
  std::unordered_map<std::string, Clock::time_point> retired_;  // loop thread
  std::deque<std::string> retired_order_;
};

// What a peer remembers of its calls (the peer's lock held).
class CallMemory {
 public:
  // `unkept`: answered, but the answer was not kept (the endpoint's budget was spent).
  enum class Seen { fresh, running, answered, forgotten, finished, unkept };
  // `total`: the answer bytes all sessions of the endpoint keep (kEndpointAnswerBytes at most).
  explicit CallMemory(std::shared_ptr<std::atomic<std::size_t>> total) : total_(std::move(total)) {}
  ~CallMemory();
  CallMemory(const CallMemory&) = delete;
  CallMemory& operator=(const CallMemory&) = delete;
  // A request or oneway `id` arrived: fresh (remembered now as running, or finished for a
  // oneway) or what became of it before.
  Seen arrive(std::uint64_t id, bool oneway, Clock::time_point now);
  // The caller gave up on `id`: no answer is coming.
  void cancel(std::uint64_t id, Clock::time_point now);
  // The answer to `id`: kept (true, and *kept points at it) if `id` is running and the
  // endpoint's budget has room once this session's oldest answers are forgotten; otherwise
  // `frame` is left as it was. A copy of the request does not run again either way.
  bool answer(std::uint64_t id, Buffer&& frame, Clock::time_point now, const Buffer** kept);
  // The kept answer to `id`, or null.
  const Buffer* answer_of(std::uint64_t id) const;
  // Forgets what is past its time or over the bounds.
  void trim(Clock::time_point now, const Endpoint::Limits& limits);
  std::uint64_t floor() const { return floor_; }

 private:
  struct Entry {
    Seen state = Seen::running;  // running, answered or finished
    Buffer answer;
  };
  void finish(std::uint64_t id, Clock::time_point now);
  void forget_oldest();

  std::shared_ptr<std::atomic<std::size_t>> total_;
  std::unordered_map<std::uint64_t, Entry> entries_;
  std::deque<std::pair<std::uint64_t, Clock::time_point>> finished_;  // oldest first
  std::size_t bytes_ = 0;
  std::uint64_t floor_ = 0;  // the highest id forgotten
};

// One peer of an Endpoint.
class Peer final : public Channel, public std::enable_shared_from_this<Peer> {
 public:
  Peer(std::weak_ptr<Endpoint> endpoint, std::string key, SocketAddress address,
       std::uint64_t session, const Cookie& cookie, PeerInfo info,
       std::shared_ptr<std::atomic<std::size_t>> answer_bytes);

  void start(std::shared_ptr<ChannelSink> sink) override { sink_ = std::move(sink); }
  SendStatus send(Buffer&& frame, Deadline deadline, WhenFull when_full) override;
  void close(const Status& why, Deadline linger_until) override;
  // A datagram peer cannot be held back: while paused, what it sends is discarded.
  void pause_reading(bool paused) override { paused_.store(paused); }
  std::size_t queued_bytes() const override { return 0; }
  ChannelProgress progress() const override { return {}; }
  const PeerInfo& peer() const override { return info_; }
  std::size_t max_frame_length() const override { return kMaxFrameLength; }
  bool carries_streams() const override { return false; }

 private:
  friend class Endpoint;
  // On the loop: a frame from this peer. Delivers it, drops a copy, or answers from memory.
  void arrive(std::span<const std::byte> frame);
  void transmit(std::span<const std::byte> frame);

  std::weak_ptr<Endpoint> endpoint_;
  const std::string key_;
  const SocketAddress address_;
  const std::uint64_t session_;
  const Cookie cookie_;
  const PeerInfo info_;
  std::shared_ptr<ChannelSink> sink_;  // the loop thread, after start
  std::atomic<bool> paused_{false};
  std::atomic<bool> closing_{false};
  bool closed_ = false;  // loop thread

  std::mutex mu_;
  CallMemory memory_;  // (mu_)
};

}  // namespace brine::transport::datagram
