// unix:///absolute/path and unix://@abstract-name (internal). The datagram scheme unixgram://
// (src/transport/datagram) uses the same addresses.
#pragma once

#include "transport/stream/socket.hpp"

namespace brine::transport {

extern const SocketFamily kUnixFamily;

}  // namespace brine::transport
