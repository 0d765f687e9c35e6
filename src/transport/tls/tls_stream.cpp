#include "transport/tls/tls_stream.hpp"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <stdexcept>

#include "transport/stream/socket.hpp"

namespace brine::transport::tls {
namespace {

// What OpenSSL's error queue says (and empties it).
std::string openssl_error() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? std::string("unknown error") : out;
}

void load_or_throw(bool ok, const char* what, const std::string& path) {
  if (!ok) {
    throw std::invalid_argument(std::string("cannot load the TLS ") + what + " '" + path +
                                "': " + openssl_error());
  }
}

Context make_context(const SSL_METHOD* method) {
  ERR_clear_error();
  SSL_CTX* raw = SSL_CTX_new(method);
  if (raw == nullptr) {
    throw std::invalid_argument("cannot create a TLS context: " + openssl_error());
  }
  Context ctx(raw, SSL_CTX_free);
  SSL_CTX_set_min_proto_version(raw, TLS1_2_VERSION);
  SSL_CTX_set_options(raw, SSL_OP_ALL | SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
  // Partial writes (a frame larger than a record leaves in pieces), retried from wherever the
  // queue's buffer now is; buffers released while a connection is idle.
  SSL_CTX_set_mode(raw, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  return ctx;
}

void load_chain(SSL_CTX* ctx, const std::string& certificate, const std::string& key) {
  load_or_throw(SSL_CTX_use_certificate_chain_file(ctx, certificate.c_str()) == 1, "certificate",
                certificate);
  load_or_throw(SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) == 1, "private key",
                key);
  if (SSL_CTX_check_private_key(ctx) != 1) {
    throw std::invalid_argument("the TLS private key '" + key +
                                "' does not match the certificate '" + certificate + "'");
  }
}

bool is_ip_address(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, host.c_str(), buf) == 1 ||
         ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

void expect_host(SSL* ssl, const std::string& host) {
  if (is_ip_address(host)) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str());
  } else {
    // SSL_set_tlsext_host_name, without the macro's C cast.
    SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(host.c_str()));
    SSL_set1_host(ssl, host.c_str());
  }
}

// Why a client handshake failed: the certificate verification error when there is one.
std::string describe_failure(SSL* ssl, int error) {
  const long verify = SSL_get_verify_result(ssl);
  if (verify != X509_V_OK) {
    ERR_clear_error();
    return std::string("the server's certificate was refused: ") +
           X509_verify_cert_error_string(verify);
  }
  if (error == SSL_ERROR_ZERO_RETURN || (error == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
    return "the server closed the connection during the TLS handshake (is it a TLS endpoint, "
           "and does it require a client certificate?)";
  }
  return "TLS handshake failed: " + openssl_error();
}

int socket_of(BIO* b) {
  return int(reinterpret_cast<std::intptr_t>(BIO_get_data(b)));
}

bool retryable(int err) {
  return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

// A socket BIO that sends with MSG_NOSIGNAL. One method table for the process, made once.
BIO_METHOD* socket_method() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "brine socket");
    BIO_meth_set_write(m, [](BIO* b, const char* data, int len) -> int {
      BIO_clear_retry_flags(b);
      const ssize_t n = ::send(socket_of(b), data, std::size_t(len), MSG_NOSIGNAL);
      if (n < 0 && retryable(errno)) BIO_set_retry_write(b);
      return int(n);
    });
    BIO_meth_set_read(m, [](BIO* b, char* data, int len) -> int {
      BIO_clear_retry_flags(b);
      const ssize_t n = ::recv(socket_of(b), data, std::size_t(len), 0);
      if (n < 0 && retryable(errno)) BIO_set_retry_read(b);
      return int(n);
    });
    BIO_meth_set_ctrl(m, [](BIO*, int cmd, long, void*) -> long {
      return cmd == BIO_CTRL_FLUSH ? 1 : 0;  // nothing is buffered here
    });
    BIO_meth_set_create(m, [](BIO* b) {
      BIO_set_init(b, 1);
      return 1;
    });
    return m;
  }();
  return method;
}

}  // namespace

bool attach(SSL* ssl, int fd) {
  BIO* bio = BIO_new(socket_method());
  if (bio == nullptr) return false;
  BIO_set_data(bio, reinterpret_cast<void*>(std::intptr_t(fd)));
  SSL_set_bio(ssl, bio, bio);  // one reference, for both directions
  return true;
}

Context server_context(const TlsServerOptions& o) {
  if (o.certificate_file.empty() || o.private_key_file.empty()) {
    throw std::invalid_argument(
        "a tls:// endpoint needs a certificate and a key (ServerOptions::tls, or "
        "server.tls_certificate and server.tls_private_key in the configuration)");
  }
  Context ctx = make_context(TLS_server_method());
  load_chain(ctx.get(), o.certificate_file, o.private_key_file);
  if (!o.client_ca_file.empty()) {
    load_or_throw(SSL_CTX_load_verify_locations(ctx.get(), o.client_ca_file.c_str(), nullptr) == 1,
                  "client CA file", o.client_ca_file);
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(o.client_ca_file.c_str())) {
      SSL_CTX_set_client_CA_list(ctx.get(), names);  // tells clients which CAs count
    }
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  return ctx;
}

Context client_context(const TlsClientOptions& o) {
  Context ctx = make_context(TLS_client_method());
  if (o.ca_file.empty()) {
    load_or_throw(SSL_CTX_set_default_verify_paths(ctx.get()) == 1, "system CA store",
                  "default paths");
  } else {
    load_or_throw(SSL_CTX_load_verify_locations(ctx.get(), o.ca_file.c_str(), nullptr) == 1,
                  "CA file", o.ca_file);
  }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  if (o.certificate_file.empty() != o.private_key_file.empty()) {
    throw std::invalid_argument(
        "a TLS client certificate needs both certificate_file and private_key_file");
  }
  if (!o.certificate_file.empty()) load_chain(ctx.get(), o.certificate_file, o.private_key_file);
  return ctx;
}

IoResult TlsStream::read(std::span<std::byte> into) {
  ERR_clear_error();
  const int n = SSL_read(ssl_.get(), into.data(), int(std::min<std::size_t>(into.size(), INT_MAX)));
  if (n > 0) return IoResult::moved(std::size_t(n));  // more records may wait: never "drained"
  switch (SSL_get_error(ssl_.get(), n)) {
    case SSL_ERROR_WANT_READ:
      return IoResult::blocked(false);
    case SSL_ERROR_WANT_WRITE:
      return IoResult::blocked(true);
    case SSL_ERROR_ZERO_RETURN:
      return IoResult::eof();
    case SSL_ERROR_SYSCALL:
      if (ERR_peek_error() == 0) {
        return errno == 0 ? IoResult::eof() : IoResult::broken(std::strerror(errno));
      }
      [[fallthrough]];
    default:
      return IoResult::broken("TLS: " + openssl_error());
  }
}

IoResult TlsStream::write(std::span<const iovec> parts) {
  std::size_t total = 0;
  for (const iovec& part : parts) {
    const auto* base = static_cast<const std::byte*>(part.iov_base);
    std::size_t done = 0;
    while (done < part.iov_len) {
      ERR_clear_error();
      const int n = SSL_write(ssl_.get(), base + done,
                              int(std::min<std::size_t>(part.iov_len - done, INT_MAX)));
      if (n > 0) {
        done += std::size_t(n);
        total += std::size_t(n);
        continue;
      }
      const int e = SSL_get_error(ssl_.get(), n);
      if (total > 0) {
        ERR_clear_error();
        return IoResult::moved(total);  // the rest is retried from here next time
      }
      if (e == SSL_ERROR_WANT_WRITE) return IoResult::blocked(true);
      if (e == SSL_ERROR_WANT_READ) return IoResult::blocked(false);
      if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
        return IoResult::broken(errno == 0 ? "connection closed" : std::strerror(errno));
      }
      return IoResult::broken("TLS: " + openssl_error());
    }
  }
  return IoResult::moved(total);
}

void TlsStream::shutdown() noexcept {
  (void)::shutdown(fd_.get(), SHUT_RDWR);
}

Ssl client_handshake(SSL_CTX* ctx, int fd, const std::string& host, Deadline deadline,
                     std::string& error) {
  ERR_clear_error();
  Ssl ssl(SSL_new(ctx));
  if (!ssl || !attach(ssl.get(), fd)) {
    error = "cannot set up TLS: " + openssl_error();
    return nullptr;
  }
  expect_host(ssl.get(), host);
  for (;;) {
    ERR_clear_error();
    const int rc = SSL_connect(ssl.get());
    if (rc == 1) return ssl;
    const int e = SSL_get_error(ssl.get(), rc);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
      error = describe_failure(ssl.get(), e);
      return nullptr;
    }
    pollfd p{fd, short(e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT), 0};
    const int n = ::poll(&p, 1, millis_left(deadline));
    if (n == 0 || (n < 0 && errno != EINTR)) {
      error = "the TLS handshake did not finish before the deadline";
      return nullptr;
    }
  }
}

void describe_peer(SSL* ssl, PeerInfo& peer) {
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr || SSL_get_verify_result(ssl) != X509_V_OK) return;
  if (BIO* bio = BIO_new(BIO_s_mem())) {
    X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
    char* text = nullptr;
    const long n = BIO_get_mem_data(bio, &text);
    if (n > 0) peer.certificate_subject.assign(text, std::size_t(n));
    BIO_free(bio);
  }
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type == GEN_DNS) {
      const ASN1_STRING* s = name->d.dNSName;
      peer.certificate_names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                          std::size_t(ASN1_STRING_length(s)));
    } else if (name->type == GEN_IPADD) {
      const ASN1_OCTET_STRING* ip = name->d.iPAddress;
      char text[INET6_ADDRSTRLEN] = {};
      const int family = ASN1_STRING_length(ip) == 16 ? AF_INET6 : AF_INET;
      if (::inet_ntop(family, ASN1_STRING_get0_data(ip), text, sizeof text) != nullptr) {
        peer.certificate_names.emplace_back(text);
      }
    }
  }
  GENERAL_NAMES_free(names);
}

}  // namespace brine::transport::tls
