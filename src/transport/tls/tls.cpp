#include "transport/tls/tls.hpp"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <stdexcept>

namespace brine::detail::tls {
namespace {

// Applies `load` (which reports through an error_code) and turns a failure into
// std::invalid_argument naming what was loaded.
template <class Load>
void load_or_throw(const char* what, const std::string& path, Load&& load) {
  std::error_code ec;
  load(ec);
  if (ec) {
    throw std::invalid_argument(std::string("cannot load the TLS ") + what + " '" + path +
                                "': " + ec.message());
  }
}

void harden(asio::ssl::context& ctx) {
  ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_compression);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
}

bool is_ip_address(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, host.c_str(), buf) == 1 ||
         ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

}  // namespace

std::shared_ptr<asio::ssl::context> server_context(const TlsServerOptions& o) {
  if (o.certificate_file.empty() || o.private_key_file.empty()) {
    throw std::invalid_argument(
        "a tls:// endpoint needs a certificate and a key (ServerOptions::tls, or "
        "server.tls_certificate "
        "and server.tls_private_key in the configuration)");
  }
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  harden(*ctx);
  load_or_throw("certificate", o.certificate_file, [&](std::error_code& ec) {
    ctx->use_certificate_chain_file(o.certificate_file, ec);
  });
  load_or_throw("private key", o.private_key_file, [&](std::error_code& ec) {
    ctx->use_private_key_file(o.private_key_file, asio::ssl::context::pem, ec);
  });
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    throw std::invalid_argument("the TLS private key '" + o.private_key_file +
                                "' does not match the certificate '" + o.certificate_file + "'");
  }
  if (!o.client_ca_file.empty()) {
    load_or_throw("client CA file", o.client_ca_file,
                  [&](std::error_code& ec) { ctx->load_verify_file(o.client_ca_file, ec); });
    ctx->set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
  }
  return ctx;
}

std::shared_ptr<asio::ssl::context> client_context(const TlsClientOptions& o) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  harden(*ctx);
  if (o.ca_file.empty()) {
    load_or_throw("system CA store", "default paths",
                  [&](std::error_code& ec) { ctx->set_default_verify_paths(ec); });
  } else {
    load_or_throw("CA file", o.ca_file,
                  [&](std::error_code& ec) { ctx->load_verify_file(o.ca_file, ec); });
  }
  ctx->set_verify_mode(asio::ssl::verify_peer);
  if (o.certificate_file.empty() != o.private_key_file.empty()) {
    throw std::invalid_argument(
        "a TLS client certificate needs both certificate_file and "
        "private_key_file");
  }
  if (!o.certificate_file.empty()) {
    load_or_throw("certificate", o.certificate_file, [&](std::error_code& ec) {
      ctx->use_certificate_chain_file(o.certificate_file, ec);
    });
    load_or_throw("private key", o.private_key_file, [&](std::error_code& ec) {
      ctx->use_private_key_file(o.private_key_file, asio::ssl::context::pem, ec);
    });
  }
  return ctx;
}

void expect_host(TlsStream& stream, const std::string& host) {
  SSL* ssl = stream.native_handle();
  if (is_ip_address(host)) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str());
  } else {
    // SSL_set_tlsext_host_name, without the macro's C cast.
    SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(host.c_str()));
    SSL_set1_host(ssl, host.c_str());
  }
}

std::string describe_failure(TlsStream& stream, const std::error_code& ec) {
  const long verify = SSL_get_verify_result(stream.native_handle());
  if (verify != X509_V_OK) {
    return std::string("the server's certificate was refused: ") +
           X509_verify_cert_error_string(verify);
  }
  if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
    return "the server closed the connection during the TLS handshake (is it a TLS endpoint, "
           "and does it require a client certificate?)";
  }
  return "TLS handshake failed: " + ec.message();
}

}  // namespace brine::detail::tls
