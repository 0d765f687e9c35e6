// TLS as a byte-stream layer (internal): OpenSSL over a non-blocking socket, under the ordinary
// stream channel. Contexts are built from the options (TLS 1.2 at least, verification always
// on); handshakes run here, before a channel exists.
#pragma once

#include <openssl/ssl.h>

#include <functional>
#include <memory>
#include <string>

#include "brine/client.hpp"
#include "brine/server.hpp"
#include "transport/channel.hpp"
#include "transport/stream/byte_stream.hpp"
#include "transport/stream/stream_scheme.hpp"

namespace brine::transport::tls {

using Context = std::shared_ptr<SSL_CTX>;

// TLS 1.2 at least, the certificate chain and key loaded, client certificates required when a
// client CA is given. Throws std::invalid_argument naming the file and OpenSSL's reason.
Context server_context(const TlsServerOptions& options);
// TLS 1.2 at least, peer verification on (against ca_file or the system's CAs), the client's own
// certificate when given. Throws std::invalid_argument like server_context.
Context client_context(const TlsClientOptions& options);

struct SslFree {
  void operator()(SSL* ssl) const noexcept { SSL_free(ssl); }
};
using Ssl = std::unique_ptr<SSL, SslFree>;

// A TLS session over a connected socket, after its handshake. I/O from one thread at a time:
// the stream channel runs it on its loop.
class TlsStream final : public ByteStream {
 public:
  TlsStream(event::Fd socket, Ssl ssl) noexcept : fd_(std::move(socket)), ssl_(std::move(ssl)) {}
  int fd() const noexcept override { return fd_.get(); }
  IoResult read(std::span<std::byte> into) override;
  IoResult write(std::span<const iovec> parts) override;
  bool any_thread() const noexcept override { return false; }
  void shutdown() noexcept override;

 private:
  event::Fd fd_;
  Ssl ssl_;
};

// Makes `ssl` read and write `fd` (sending with MSG_NOSIGNAL: OpenSSL's own socket BIO writes
// with write(), which raises SIGPIPE on a closed connection). False when OpenSSL refuses.
bool attach(SSL* ssl, int fd);

// The first byte of every TLS connection (a handshake record).
inline constexpr unsigned char kHandshakeRecord = 0x16;

// A client handshake on the calling thread, bounded by `deadline`: sends `host` as SNI when it is
// a DNS name and requires the certificate to name `host`. The session, or nullptr with `error`
// saying why.
Ssl client_handshake(SSL_CTX* ctx, int fd, const std::string& host, Deadline deadline,
                     std::string& error);

// Fills the TLS identity fields of `peer` from a finished session's verified peer certificate.
void describe_peer(SSL* ssl, PeerInfo& peer);

// What a server makes of a connection once its handshake is done: a frame channel (null), or
// another channel over the TLS stream (https://).
using WrapStream = std::function<std::shared_ptr<Channel>(std::unique_ptr<ByteStream> stream,
                                                          PeerInfo peer, event::EventLoop& loop)>;
// Takes accepted sockets of `scheme` through a TLS handshake on their loop (bounded by
// first_frame_timeout), then hands over wrap's channel. Loads the certificate and key now:
// throws std::invalid_argument for bad files.
MakeChannel server_channels(const ServerSide& server, std::string_view scheme, WrapStream wrap);

}  // namespace brine::transport::tls
