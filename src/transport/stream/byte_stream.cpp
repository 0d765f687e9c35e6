#include "transport/stream/byte_stream.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace brine::transport {

IoResult SocketStream::read(std::span<std::byte> into) {
  for (;;) {
    const ssize_t n = ::recv(fd_.get(), into.data(), into.size(), MSG_DONTWAIT);
    if (n > 0) return IoResult::moved(std::size_t(n), std::size_t(n) < into.size());
    if (n == 0) return IoResult::eof();
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return IoResult::blocked(false);
    return IoResult::broken(std::strerror(errno));
  }
}

IoResult SocketStream::write(std::span<const iovec> parts) {
  msghdr msg{};
  msg.msg_iov = const_cast<iovec*>(parts.data());
  msg.msg_iovlen = parts.size();
  for (;;) {
    const ssize_t n = ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) return IoResult::moved(std::size_t(n));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return IoResult::blocked(true);
    return IoResult::broken(n == 0 ? "send wrote nothing" : std::strerror(errno));
  }
}

void SocketStream::shutdown() noexcept {
  (void)::shutdown(fd_.get(), SHUT_RDWR);
}

}  // namespace brine::transport
