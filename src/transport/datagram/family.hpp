// The two datagram schemes' addresses and sockets (internal): udp://host:port (IPv4, IPv6 in
// [brackets]) and unixgram:///path or unixgram://@abstract. They take their addresses from the
// stream schemes with the same syntax (tcp://, unix://).
#pragma once

#include <string>
#include <string_view>

#include "event/fd.hpp"
#include "transport/stream/socket.hpp"

namespace brine::transport::datagram {

struct Family {
  std::string_view scheme;  // "udp", "unixgram"
  const SocketFamily& addresses;
  bool unix;
};

extern const Family kUdp;
extern const Family kUnixgram;

// Checks the URI (after "scheme://") without resolving it. Throws std::invalid_argument.
void check(const Family& family, std::string_view rest);
// The first address of the URI. Throws std::invalid_argument, or std::system_error when a name
// does not resolve.
SocketAddress resolve(const Family& family, std::string_view rest);

// A bound, non-blocking datagram socket; `address` gets the real port. A unix socket file left
// by a dead server is removed first, and the file gets `unix_mode`. Throws std::system_error.
event::Fd bind_socket(const Family& family, SocketAddress& address, std::string_view uri,
                      unsigned unix_mode);
// Removes what bind_socket() made besides the socket (a unix socket file).
void unbind(const Family& family, const SocketAddress& address);
// A non-blocking socket connected to `to` (unix: bound first to an abstract name the kernel
// picks, so that answers can reach it), or an empty Fd with `error` set.
event::Fd connect_socket(const Family& family, const SocketAddress& to, std::string& error);

// Gives a datagram socket's buffers room for bursts (4 MiB each way, or what the system allows):
// a datagram that finds a full receive buffer is lost.
void set_buffers(int fd);

// The raw bytes of an address, for keys and cookies.
inline std::span<const std::byte> address_bytes(const SocketAddress& a) {
  return {reinterpret_cast<const std::byte*>(&a.storage), std::size_t(a.length)};
}

}  // namespace brine::transport::datagram
