#include "transport/zmq/zmq_socket.hpp"

#include <unistd.h>

#include <atomic>
#include <cstring>
#include <stdexcept>

namespace brine::transport::zmq_transport {

zmq::context_t& context() {
  static auto* ctx = new zmq::context_t(1);
  return *ctx;
}

std::string endpoint_of(std::string_view uri) {
  auto bad = [&](const char* why) {
    return std::invalid_argument("ZeroMQ URI '" + std::string(uri) + "': " + why);
  };
  if (uri.rfind("zmq+", 0) != 0) throw bad("expected zmq+tcp://, zmq+ipc:// or zmq+inproc://");
  std::string ep(uri.substr(4));
  if (ep.rfind("tcp://", 0) == 0) {
    const auto colon = ep.rfind(':');
    if (colon == std::string::npos || colon < 6) throw bad("expected host:port");
    const std::string port = ep.substr(colon + 1);
    if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos ||
        port.size() > 5 || std::stoul(port) > 65535) {
      throw bad("port must be a number from 0 to 65535");
    }
    if (port == "0") ep = ep.substr(0, colon + 1) + "*";
    return ep;
  }
  if (ep.rfind("ipc://", 0) == 0) {
    if (ep.size() <= 6) throw bad("empty ipc path");
    return ep;
  }
  if (ep.rfind("inproc://", 0) == 0) {
    if (ep.size() <= 9) throw bad("empty inproc name");
    return ep;
  }
  throw bad("expected zmq+tcp://, zmq+ipc:// or zmq+inproc://");
}

std::string uri_of(std::string_view endpoint) {
  return "zmq+" + std::string(endpoint);
}

// ZMTP heartbeats (PING/PONG inside libzmq) detect a dead peer on both sides.
void set_common_options(zmq::socket_t& s, std::size_t max_frame_size,
                        std::chrono::milliseconds heartbeat_interval,
                        std::chrono::milliseconds heartbeat_timeout) {
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::maxmsgsize, std::int64_t(max_frame_size + 4));
  s.set(zmq::sockopt::heartbeat_ivl, int(heartbeat_interval.count()));
  s.set(zmq::sockopt::heartbeat_timeout, int(heartbeat_timeout.count()));
  s.set(zmq::sockopt::heartbeat_ttl, int(heartbeat_timeout.count()));
  s.set(zmq::sockopt::reconnect_ivl, 100);
}

// A message's bytes are written on a brine thread and freed on libzmq's I/O thread once sent,
// handed over through libzmq's lock-free pipes. libzmq is not built with ThreadSanitizer, which
// therefore cannot see that hand-off: it is told, or every message would be a race report, and
// matching each report against tools/tsan.supp stalls the I/O thread for a second or more.
#if defined(__SANITIZE_THREAD__)
#define BRINE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define BRINE_TSAN 1
#endif
#endif
#ifdef BRINE_TSAN
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
#endif

zmq::message_t message_of(Buffer&& frame) {
  auto owned = std::make_unique<Buffer>(std::move(frame));
  Buffer* raw = owned.get();
  zmq::message_t m(
      raw->data(), raw->size(),
      [](void*, void* hint) {
#ifdef BRINE_TSAN
        __tsan_acquire(hint);
#endif
        delete static_cast<Buffer*>(hint);
      },
      raw);
  (void)owned.release();  // the message owns it now
#ifdef BRINE_TSAN
  __tsan_release(raw);
#endif
  return m;
}

std::span<const std::byte> bytes_of(const zmq::message_t& m) {
  return {static_cast<const std::byte*>(m.data()), m.size()};
}

std::string hex(std::string_view bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

Monitor::Monitor(zmq::socket_t& watched) : watched_(&watched) {
  static std::atomic<unsigned> counter{0};
  const std::string address =
      "inproc://brine-monitor-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  const int events =
      ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_CONNECT_RETRIED | ZMQ_EVENT_DISCONNECTED;
  if (zmq_socket_monitor(watched.handle(), address.c_str(), events) != 0) throw zmq::error_t();
  pair_ = zmq::socket_t(context(), zmq::socket_type::pair);
  pair_.set(zmq::sockopt::linger, 0);
  pair_.connect(address);
}

Monitor::~Monitor() {
  zmq_socket_monitor(watched_->handle(), nullptr, 0);
}

int Monitor::next_event() {
  zmq::message_t head;
  if (!pair_.recv(head, zmq::recv_flags::dontwait)) return 0;
  std::uint16_t event = 0;
  if (head.size() >= 2) std::memcpy(&event, head.data(), 2);
  zmq::message_t address;
  if (head.more()) (void)pair_.recv(address, zmq::recv_flags::none);
  return event;
}

void SocketWatch::watch(event::EventLoop& loop, zmq::socket_t& socket,
                        std::shared_ptr<event::Watcher> watcher) {
  fd_ = socket.get(zmq::sockopt::fd);
  registration_ = loop.watch(fd_, EPOLLIN, std::move(watcher));
}

void SocketWatch::unwatch(event::EventLoop& loop) noexcept {
  loop.unwatch(registration_, fd_);
}

}  // namespace brine::transport::zmq_transport
