#include "transport/stream/socket.hpp"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <system_error>

namespace brine::transport {

int millis_left(Deadline deadline) noexcept {
  const auto left = deadline - Clock::now();
  if (left <= Clock::duration::zero()) return 0;
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return ms > 1'000'000'000 ? 1'000'000'000 : int(ms);
}

namespace {

std::string errno_text(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}

// One attempt: a connected socket, or an empty Fd with `error` set.
event::Fd connect_one(const SocketAddress& a, Deadline deadline, std::string& error) {
  event::Fd fd(::socket(a.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, a.protocol));
  if (!fd) {
    error = errno_text("socket");
    return {};
  }
  int rc;
  do {
    rc = ::connect(fd.get(), a.get(), a.length);
  } while (rc != 0 && errno == EINTR);
  if (rc == 0) return fd;
  if (errno != EINPROGRESS) {
    error = std::strerror(errno);
    return {};
  }
  pollfd p{fd.get(), POLLOUT, 0};
  for (;;) {
    const int n = ::poll(&p, 1, millis_left(deadline));
    if (n > 0) break;
    if (n == 0) {
      error = "connect timed out";
      return {};
    }
    if (errno != EINTR) {
      error = errno_text("poll");
      return {};
    }
  }
  int so_error = 0;
  socklen_t len = sizeof so_error;
  ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &so_error, &len);
  if (so_error != 0) {
    error = std::strerror(so_error);
    return {};
  }
  return fd;
}

std::uint16_t port_of(const sockaddr_storage& s) {
  if (s.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&s)->sin_port);
  if (s.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&s)->sin6_port);
  return 0;
}

void set_port(SocketAddress& a, std::uint16_t port) {
  if (a.family == AF_INET) reinterpret_cast<sockaddr_in*>(&a.storage)->sin_port = htons(port);
  if (a.family == AF_INET6) reinterpret_cast<sockaddr_in6*>(&a.storage)->sin6_port = htons(port);
}

// Binds and listens on one address; an errno value on failure.
int bind_one(const SocketFamily& family, SocketAddress& address, unsigned unix_mode,
             event::Fd& out) {
  event::Fd fd(
      ::socket(address.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, address.protocol));
  if (!fd) return errno;
  if (address.family != AF_UNIX) {
    const int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  }
  family.before_bind(address);
  if (::bind(fd.get(), address.get(), address.length) != 0) return errno;
  if (const int err = family.after_bind(address, unix_mode)) return err;
  if (::listen(fd.get(), SOMAXCONN) != 0) return errno;
  if (address.family != AF_UNIX) {
    sockaddr_storage local{};
    socklen_t len = sizeof local;
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&local), &len);
    std::memcpy(&address.storage, &local, len);
    address.length = len;
  }
  out = std::move(fd);
  return 0;
}

}  // namespace

event::Fd connect_socket(const SocketFamily& family, const std::vector<SocketAddress>& addresses,
                         Deadline deadline, std::string& error) {
  error = "no address to connect to";
  for (const SocketAddress& a : addresses) {
    event::Fd fd = connect_one(a, deadline, error);
    if (fd) {
      family.configure(fd.get());
      return fd;
    }
  }
  return {};
}

std::string peer_address(const SocketFamily& family, int fd) {
  SocketAddress a;
  a.length = sizeof a.storage;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&a.storage), &a.length) != 0) return {};
  a.family = a.storage.ss_family;
  return family.describe(a);
}

std::vector<BoundSocket> listen_sockets(const SocketFamily& family, std::string_view scheme,
                                        std::string_view rest, std::string_view uri,
                                        unsigned unix_mode) {
  std::vector<SocketAddress> addresses = family.resolve(rest);
  std::vector<BoundSocket> bound;
  std::uint16_t port = 0;
  int first_error = 0;
  for (SocketAddress& address : addresses) {
    // Every address of one name shares the port the first bind picked.
    if (port != 0) set_port(address, port);
    event::Fd fd;
    if (const int err = bind_one(family, address, unix_mode, fd)) {
      if (first_error == 0) first_error = err;
      continue;
    }
    if (port == 0) port = port_of(address.storage);
    std::string bound_uri = family.bound_uri(scheme, rest, address);
    bound.push_back({std::move(fd), address, std::move(bound_uri)});
  }
  if (bound.empty()) {
    throw std::system_error(first_error, std::generic_category(),
                            "cannot listen on " + std::string(uri));
  }
  return bound;
}

}  // namespace brine::transport
