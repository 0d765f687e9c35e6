// What the ZeroMQ channels share (internal): the context, URIs, socket options, messages that own
// a frame's buffer, the socket monitor, and a socket watched by an EventLoop.
//
// A ZeroMQ socket is not thread-safe: each lives on one loop thread, which alone touches it.
// Its ZMQ_FD is watched by the loop (level-triggered); after it fires, and after any send or
// receive, the socket's ZMQ_EVENTS say what can be done (libzmq's documented pattern).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <zmq.hpp>

#include "brine/buffer.hpp"
#include "event/loop.hpp"

namespace brine::transport::zmq_transport {

// The process's ZeroMQ context. inproc:// endpoints only connect sockets of one context, so
// client and server must share it: one of the two process-wide objects in brine (mem:// names
// are the other). Never destroyed (zmq_ctx_term at exit would wait for sockets of objects not
// yet destroyed).
zmq::context_t& context();

// "zmq+tcp://h:p" -> "tcp://h:p" (port 0 -> '*', ZeroMQ's ephemeral port). Throws
// std::invalid_argument for a malformed URI.
std::string endpoint_of(std::string_view uri);
// "tcp://127.0.0.1:5555" -> "zmq+tcp://127.0.0.1:5555"
std::string uri_of(std::string_view endpoint);

// Linger 0, the frame limit (ZMQ_MAXMSGSIZE), ZMTP heartbeats, reconnect interval.
void set_common_options(zmq::socket_t& s, std::size_t max_frame_size,
                        std::chrono::milliseconds heartbeat_interval,
                        std::chrono::milliseconds heartbeat_timeout);

// A message that owns the frame's bytes (no copy).
zmq::message_t message_of(Buffer&& frame);
std::span<const std::byte> bytes_of(const zmq::message_t& m);
std::string hex(std::string_view bytes);

// Connection events of a socket, delivered to a PAIR socket.
class Monitor {
 public:
  explicit Monitor(zmq::socket_t& watched);
  ~Monitor();
  Monitor(const Monitor&) = delete;
  Monitor& operator=(const Monitor&) = delete;
  zmq::socket_t& socket() { return pair_; }
  // The next event (ZMQ_EVENT_*), or 0 if none is waiting.
  int next_event();

 private:
  zmq::socket_t* watched_;
  zmq::socket_t pair_;
};

// Registers a socket's ZMQ_FD with a loop; the watcher's on_ready() is then called when the
// socket may have something to do. Loop thread only.
class SocketWatch {
 public:
  void watch(event::EventLoop& loop, zmq::socket_t& socket,
             std::shared_ptr<event::Watcher> watcher);
  void unwatch(event::EventLoop& loop) noexcept;

 private:
  int fd_ = -1;
  event::EventLoop::Registration registration_;
};

}  // namespace brine::transport::zmq_transport
