// Sockets for the stream schemes (internal): addresses, connecting with a deadline, listening.
//
// The stream schemes (tcp, unix, tls) differ only in how a URI becomes addresses and what is done
// to a socket around bind and connect; SocketFamily is that difference, and the functions here
// are the rest, written once.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "event/fd.hpp"
#include "transport/channel.hpp"

namespace brine::transport {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
  int family = 0;
  int protocol = 0;
  const sockaddr* get() const noexcept { return reinterpret_cast<const sockaddr*>(&storage); }
};

// What one stream scheme does with its URIs and sockets. `rest` is the URI after "scheme://".
struct SocketFamily {
  // Throws std::invalid_argument on a malformed URI, std::system_error when a name does not
  // resolve.
  std::vector<SocketAddress> (*resolve)(std::string_view rest);
  // The URI of a bound listener (the real port replaces port 0).
  std::string (*bound_uri)(std::string_view scheme, std::string_view rest,
                           const SocketAddress& bound);
  // Applied to every connected socket (TCP_NODELAY).
  void (*configure)(int fd);
  // Before bind (a stale unix socket file is removed) and after the listener closed.
  void (*before_bind)(const SocketAddress& address);
  void (*after_close)(const SocketAddress& address);
  // After bind, before listen, so that nobody can connect yet: restricts who may connect (the
  // socket file's mode). Returns an errno value, 0 on success.
  int (*after_bind)(const SocketAddress& address, unsigned unix_mode);
  // "127.0.0.1:40312", "[::1]:7000", a unix path: the peer's address for PeerInfo.
  std::string (*describe)(const SocketAddress& address);
};

// Milliseconds left until the deadline, for poll(): >= 0, rounded up.
int millis_left(Deadline deadline) noexcept;

// Connects to the first address that accepts before the deadline: a non-blocking, close-on-exec,
// configured socket, or an empty Fd with `error` set.
event::Fd connect_socket(const SocketFamily& family, const std::vector<SocketAddress>& addresses,
                         Deadline deadline, std::string& error);

// The address at the other end of a connected socket, described by `family`.
std::string peer_address(const SocketFamily& family, int fd);

// A bound, listening, non-blocking socket and what it is bound to.
struct BoundSocket {
  event::Fd fd;
  SocketAddress address;  // with the real port (unix: as given)
  std::string uri;
};

// Binds every address of `rest` (all on the port the first bind picked, for port 0) and
// listens. Throws std::system_error when none can be bound, naming `uri`.
std::vector<BoundSocket> listen_sockets(const SocketFamily& family, std::string_view scheme,
                                        std::string_view rest, std::string_view uri,
                                        unsigned unix_mode);

}  // namespace brine::transport
