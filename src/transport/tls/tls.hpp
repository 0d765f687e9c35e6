// TLS over stream sockets (internal): contexts built from the options, host-name checks, and
// failures described in words. OpenSSL through asio::ssl.
//
// Connections themselves are the ordinary stream connections of the server and the client,
// instantiated with TlsStream instead of a plain socket (server.cpp, client.cpp).
#pragma once

#include <memory>
#include <string>
#include <system_error>

#include "brine/client.hpp"
#include "brine/server.hpp"
#include "brine_asio.hpp"

#include <asio/ssl.hpp>

namespace brine::detail::tls {

using Socket = asio::generic::stream_protocol::socket;
using TlsStream = asio::ssl::stream<Socket>;

// TLS 1.2 at least, the certificate chain and key loaded, and client certificates required when
// a client CA is given. Throws std::invalid_argument naming the file and OpenSSL's reason.
std::shared_ptr<asio::ssl::context> server_context(const TlsServerOptions& options);
// TLS 1.2 at least, peer verification on (against ca_file or the system's CAs), the client's own
// certificate when given. Throws std::invalid_argument like server_context.
std::shared_ptr<asio::ssl::context> client_context(const TlsClientOptions& options);

// Before a client handshake: sends `host` as SNI (a DNS name) and makes the handshake fail unless
// the server's certificate names `host` (a DNS name or an IP address).
void expect_host(TlsStream& stream, const std::string& host);

// Why a handshake failed: the certificate verification error when there is one, else `ec`.
std::string describe_failure(TlsStream& stream, const std::error_code& ec);

// The first byte of every TLS connection (a handshake record).
inline constexpr unsigned char kHandshakeRecord = 0x16;

}  // namespace brine::detail::tls
