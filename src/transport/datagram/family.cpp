#include "transport/datagram/family.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "transport/tcp/tcp.hpp"
#include "transport/unix/unix.hpp"

namespace brine::transport::datagram {
const Family kUdp{"udp", kTcpFamily, false};
const Family kUnixgram{"unixgram", kUnixFamily, true};

void set_buffers(int fd) {
  const int size = 4 << 20;
  for (const auto& [force, plain] :
       {std::pair{SO_RCVBUFFORCE, SO_RCVBUF}, std::pair{SO_SNDBUFFORCE, SO_SNDBUF}}) {
    // Past net.core.rmem_max/wmem_max only with CAP_NET_ADMIN; otherwise capped there.
    if (::setsockopt(fd, SOL_SOCKET, force, &size, sizeof size) != 0) {
      ::setsockopt(fd, SOL_SOCKET, plain, &size, sizeof size);
    }
  }
}

void check(const Family& family, std::string_view rest) {
  if (!family.unix) {
    check_host_port(family.scheme, rest);
    return;
  }
  try {
    (void)kUnixFamily.resolve(rest);
  } catch (const std::invalid_argument& e) {
    // The unix scheme's message, with this scheme's name.
    std::string why = e.what();
    for (auto at = why.find("unix://"); at != std::string::npos; at = why.find("unix://", at)) {
      why.replace(at, 7, std::string(family.scheme) + "://");
      at += family.scheme.size() + 3;
    }
    const auto colon = why.find("': ");
    throw std::invalid_argument(std::string(family.scheme) + " URI '" + std::string(family.scheme) +
                                "://" + std::string(rest) + "'" +
                                (colon == std::string::npos ? "" : why.substr(colon + 1)));
  }
}

SocketAddress resolve(const Family& family, std::string_view rest) {
  check(family, rest);
  std::vector<SocketAddress> all = family.addresses.resolve(rest);
  if (all.empty()) {
    throw std::system_error(std::make_error_code(std::errc::host_unreachable),
                            "no address for " + std::string(rest));
  }
  SocketAddress a = all.front();
  a.protocol = family.unix ? 0 : IPPROTO_UDP;
  return a;
}

event::Fd bind_socket(const Family& family, SocketAddress& address, std::string_view uri,
                      unsigned unix_mode) {
  auto fail = [&](int err) {
    return std::system_error(err, std::generic_category(), "cannot listen on " + std::string(uri));
  };
  if (family.unix) remove_stale_socket_file(address, SOCK_DGRAM);
  event::Fd fd(
      ::socket(address.family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, address.protocol));
  if (!fd) throw fail(errno);
  if (address.family == AF_INET6) {
    const int one = 1;
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  }
  if (::bind(fd.get(), address.get(), address.length) != 0) throw fail(errno);
  set_buffers(fd.get());
  if (family.unix) {
    if (const int err = family.addresses.after_bind(address, unix_mode); err != 0) {
      unbind(family, address);
      throw fail(err);
    }
    return fd;
  }
  socklen_t len = sizeof address.storage;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address.storage), &len);
  address.length = len;
  return fd;
}

void unbind(const Family& family, const SocketAddress& address) {
  if (family.unix) family.addresses.after_close(address);
}

event::Fd connect_socket(const Family& family, const SocketAddress& to, std::string& error) {
  event::Fd fd(::socket(to.family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, to.protocol));
  if (!fd) {
    error = std::string("socket: ") + std::strerror(errno);
    return {};
  }
  if (family.unix) {
    // Autobind: an abstract name of the kernel's choosing, so the server can answer.
    const sa_family_t only_family = AF_UNIX;
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&only_family), sizeof only_family) !=
        0) {
      error = std::string("bind: ") + std::strerror(errno);
      return {};
    }
  }
  if (::connect(fd.get(), to.get(), to.length) != 0) {
    error = std::strerror(errno);
    return {};
  }
  return fd;
}

}  // namespace brine::transport::datagram
