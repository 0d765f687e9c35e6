// unix:///absolute/path and unix://@abstract-name (internal). The datagram scheme unixgram://
// (src/transport/datagram) uses the same addresses.
#pragma once

#include "transport/stream/socket.hpp"

namespace brine::transport {

extern const SocketFamily kUnixFamily;

// A socket file at `a` (a unix address; abstract names have none) left by a dead server is
// removed; one a live server holds is left (bind then fails with EADDRINUSE). `type`: the
// server's socket type (SOCK_STREAM, SOCK_DGRAM), which a probe must share to connect.
void remove_stale_socket_file(const SocketAddress& a, int type);

}  // namespace brine::transport
