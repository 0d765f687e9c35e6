// tcp://host:port and tcp://[v6address]:port (internal). Port 0 (listening) picks a free port.
// TLS (src/transport/tls) uses the same addresses under its own scheme name.
#pragma once

#include <string>
#include <string_view>

#include "transport/stream/socket.hpp"

namespace brine::transport {

extern const SocketFamily kTcpFamily;

// Checks "host:port" (the URI after "scheme://") without resolving it; `scheme` names the URI
// in messages. Throws std::invalid_argument.
void check_host_port(std::string_view scheme, std::string_view rest);
// The host of "host:port" (brackets removed).
std::string host_of(std::string_view rest);

}  // namespace brine::transport
