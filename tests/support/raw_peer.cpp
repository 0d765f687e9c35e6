#include "raw_peer.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace brine_test {

namespace {
using Clock = std::chrono::steady_clock;

int connect_uri(const std::string& uri) {
  if (uri.rfind("tcp://", 0) == 0) {
    const std::string rest = uri.substr(6);
    const auto colon = rest.rfind(':');
    std::string host = rest.substr(0, colon);
    if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
    const std::string port = rest.substr(colon + 1);
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    addrinfo* ai = nullptr;
    if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &ai) != 0) {
      throw std::runtime_error("bad address " + uri);
    }
    const int fd = ::socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int rc = fd < 0 ? -1 : ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    ::freeaddrinfo(ai);
    if (rc != 0) {
      if (fd >= 0) ::close(fd);
      throw std::runtime_error("cannot connect to " + uri + ": " + std::strerror(errno));
    }
    return fd;
  }
  if (uri.rfind("unix://", 0) == 0) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::string path = uri.substr(7);
    socklen_t len;
    if (!path.empty() && path.front() == '@') {
      std::memcpy(a.sun_path + 1, path.data() + 1, path.size() - 1);
      len = socklen_t(offsetof(sockaddr_un, sun_path) + path.size());
    } else {
      std::memcpy(a.sun_path, path.data(), path.size());
      len = sizeof a;
    }
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&a), len) != 0) {
      if (fd >= 0) ::close(fd);
      throw std::runtime_error("cannot connect to " + uri + ": " + std::strerror(errno));
    }
    return fd;
  }
  throw std::runtime_error("RawPeer: unsupported URI " + uri);
}
}  // namespace

RawPeer::RawPeer(const std::string& uri) : fd_(connect_uri(uri)) {}

RawPeer::~RawPeer() {
  close();
}

void RawPeer::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool RawPeer::send_all(const void* data, std::size_t size) {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::send(fd_, p, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= std::size_t(n);
  }
  return true;
}

bool RawPeer::send_all(const brine::Buffer& bytes) {
  return send_all(bytes.data(), bytes.size());
}

std::optional<RawPeer::Frame> RawPeer::read_frame(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    brine::detail::FrameView f{};
    const auto next = parser_.next(&f);
    if (next == brine::detail::FrameParser::Next::frame) {
      return Frame{f.kind, f.call_id,
                   std::string(reinterpret_cast<const char*>(f.payload.data()), f.payload.size())};
    }
    if (next == brine::detail::FrameParser::Next::error) {
      throw std::runtime_error("bad frame from the server: " + parser_.error().message);
    }
    if (closed_) return std::nullopt;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, int(left.count())) <= 0) continue;
    const auto space = parser_.prepare();
    const ssize_t n = ::recv(fd_, space.data(), space.size(), 0);
    if (n <= 0) {
      closed_ = true;
      continue;
    }
    parser_.commit(std::size_t(n));
  }
}

bool RawPeer::wait_closed(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!closed_ && Clock::now() < deadline) {
    (void)read_frame(std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()));
  }
  return closed_;
}

brine::Buffer control_frame(brine::detail::FrameKind kind, std::uint64_t id) {
  brine::Buffer frame;
  brine::detail::begin_frame(frame, kind, 0, {});
  brine::detail::set_call_id(frame, id);
  (void)brine::detail::finish_frame(frame, brine::detail::kDefaultMaxFrameSize);
  return frame;
}

LoopbackPort::LoopbackPort(Kind kind) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      (kind != refusing && ::listen(fd_, 16) != 0) ||
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    throw std::runtime_error(std::string("LoopbackPort: ") + std::strerror(errno));
  }
  port_ = ntohs(a.sin_port);
  if (kind == http) {
    answerer_ = std::jthread([fd = fd_](std::stop_token stop) {
      static constexpr std::string_view kAnswer =
          "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      while (!stop.stop_requested()) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        const int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) continue;
        (void)!::send(c, kAnswer.data(), kAnswer.size(), MSG_NOSIGNAL);
        ::shutdown(c, SHUT_WR);
        // Drain until the client closes (bounded), so that the close sends no reset that could
        // overtake the answer.
        char sink[512];
        for (int i = 0; i < 20; ++i) {
          pollfd q{c, POLLIN, 0};
          if (::poll(&q, 1, 50) > 0 && ::recv(c, sink, sizeof sink, 0) <= 0) break;
        }
        ::close(c);
      }
    });
  }
}

LoopbackPort::~LoopbackPort() {
  if (answerer_.joinable()) {
    answerer_.request_stop();
    answerer_.join();
  }
  if (fd_ >= 0) ::close(fd_);
}

std::string LoopbackPort::uri(const std::string& scheme) const {
  return scheme + "://127.0.0.1:" + std::to_string(port_);
}

}  // namespace brine_test
