#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "transport/transport.hpp"

namespace brine::transport {

int millis_left(Deadline deadline) noexcept {
  const auto left = deadline - std::chrono::steady_clock::now();
  if (left <= std::chrono::steady_clock::duration::zero()) return 0;
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return ms > 1'000'000'000 ? 1'000'000'000 : int(ms);
}

namespace {

// One attempt; returns the fd or -1 with `error` set.
int connect_one(const SocketAddress& a, Deadline deadline, std::string& error) {
  const int fd = ::socket(a.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, a.protocol);
  if (fd < 0) {
    error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  int rc;
  do {
    rc = ::connect(fd, a.get(), a.length);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0 && errno != EINPROGRESS) {
    error = std::strerror(errno);
    ::close(fd);
    return -1;
  }
  if (rc != 0) {
    pollfd p{fd, POLLOUT, 0};
    for (;;) {
      const int n = ::poll(&p, 1, millis_left(deadline));
      if (n > 0) break;
      if (n == 0) {
        error = "connect timed out";
        ::close(fd);
        return -1;
      }
      if (errno != EINTR) {
        error = std::string("poll: ") + std::strerror(errno);
        ::close(fd);
        return -1;
      }
    }
    int so_error = 0;
    socklen_t len = sizeof so_error;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
    if (so_error != 0) {
      error = std::strerror(so_error);
      ::close(fd);
      return -1;
    }
  }
  return fd;
}

}  // namespace

int connect_stream(const StreamTransport& transport, const std::vector<SocketAddress>& addresses,
                   Deadline deadline, std::string& error) {
  error = "no address to connect to";
  for (const SocketAddress& a : addresses) {
    const int fd = connect_one(a, deadline, error);
    if (fd >= 0) {
      transport.configure(fd);
      return fd;
    }
  }
  return -1;
}

WriteResult write_all(int fd, const std::byte* data, std::size_t size, Deadline deadline) {
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::send(fd, data + done, size - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += std::size_t(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd, POLLOUT, 0};
      const int r = ::poll(&p, 1, millis_left(deadline));
      if (r == 0) {
        return {done == 0 ? WriteOutcome::timed_out_clean : WriteOutcome::timed_out_partial, {}};
      }
      if (r < 0 && errno != EINTR) return {WriteOutcome::failed, std::strerror(errno)};
      continue;
    }
    return {WriteOutcome::failed, n < 0 ? std::strerror(errno) : "send returned 0"};
  }
  return {WriteOutcome::done, {}};
}

}  // namespace brine::transport
