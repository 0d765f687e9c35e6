// Stream transports: how a URI scheme becomes socket addresses (internal).
//
// A stream transport carries frames over a connected byte stream (tcp, unix). Each lives in its
// own folder under src/transport/ and contributes one StreamTransport; registry.cpp lists them.
// Message transports (ZeroMQ) plug in at the connection level instead.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace brine::transport {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
  int family = 0;
  int protocol = 0;
  const sockaddr* get() const noexcept { return reinterpret_cast<const sockaddr*>(&storage); }
};

struct StreamTransport {
  std::string_view scheme;  // "tcp"
  // Checks the part of the URI after "scheme://" without resolving anything. Throws
  // std::invalid_argument.
  void (*check)(std::string_view rest);
  // Resolves the part of the URI after "scheme://". Throws std::invalid_argument on a malformed
  // URI, std::system_error when the name does not resolve.
  std::vector<SocketAddress> (*resolve)(std::string_view rest, bool passive);
  // The URI to report for a bound listener (the real port replaces port 0).
  std::string (*bound_uri)(std::string_view rest, const SocketAddress& bound);
  // Applied to every connected socket of this transport (TCP_NODELAY, ...).
  void (*configure)(int fd);
  // Before bind (remove a stale unix socket file) and after the listener closes.
  void (*before_listen)(const SocketAddress& address);
  void (*after_close)(const SocketAddress& address);
  // After bind, before listen (so nobody can connect yet): restrict who may connect (the unix
  // socket file's mode). Returns an errno value, 0 on success.
  int (*after_bind)(const SocketAddress& address, unsigned unix_mode);
  // The host named by the URI (for TLS name checks); empty where there is none.
  std::string (*host)(std::string_view rest);
  // Connections are TLS over this transport (src/transport/tls).
  bool secure = false;
};

struct ParsedUri {
  const StreamTransport* transport;
  std::string_view rest;
};

// Splits "scheme://rest" and finds the transport. Throws std::invalid_argument.
ParsedUri parse_uri(std::string_view uri);

using Deadline = std::chrono::steady_clock::time_point;

// Connects to the first address that accepts before the deadline. Returns a non-blocking,
// close-on-exec socket, configured by the transport, or -1 with `error` set.
int connect_stream(const StreamTransport& transport, const std::vector<SocketAddress>& addresses,
                   Deadline deadline, std::string& error);

enum class WriteOutcome { done, timed_out_clean, timed_out_partial, failed };
struct WriteResult {
  WriteOutcome outcome;
  std::string error;
};
// Writes all of [data, data+size) to a non-blocking socket (the sendall discipline), waiting for
// room with poll() until the deadline. `timed_out_partial` means part of it went out: the stream
// is then unusable.
WriteResult write_all(int fd, const std::byte* data, std::size_t size, Deadline deadline);

// Milliseconds left until the deadline, for poll(): >= 0, rounded up.
int millis_left(Deadline deadline) noexcept;

}  // namespace brine::transport
