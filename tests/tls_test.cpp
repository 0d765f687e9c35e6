// TLS: what must be refused, with a clear error, while the server goes on serving others. The
// certificates are made by the openssl command at test time (tls_files.hpp). Good calls over
// tls4 and tls6 run in the whole call grid (call_test).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>

#include "eventually.hpp"
#include "families.hpp"
#include "raw_peer.hpp"
#include "test_server.hpp"
#include "tls_files.hpp"

namespace {

using brine::Client;
using brine::StatusCode;
using namespace brine_test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

brine::ClientOptions trusting(const std::string& ca) {
  brine::ClientOptions o;
  o.timeout = 5s;
  o.tls.ca_file = ca;
  return o;
}

brine::Result<calc::Number> add(Client& c) {
  return c.try_call<calc::Number>("add", calc::AddRequest{2, 3});
}

// A server on tls://127.0.0.1 with the given certificate, and a well-configured client that
// proves it keeps serving.
struct TlsServer {
  explicit TlsServer(brine::ServerOptions o = {}) : s((tls_files(), std::move(o))) {
    uri = s.listen("tls4");
    s.server.start();
  }
  void expect_still_serving() {
    Client good(uri, trusting(tls_files().ca));
    const auto r = add(good);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(r->value, 5);
  }
  TestServer s;
  std::string uri;
};

brine::ServerOptions certificate(const std::string& crt, const std::string& key) {
  brine::ServerOptions o;
  o.tls.certificate_file = crt;
  o.tls.private_key_file = key;
  return o;
}

TEST(Tls, AGoodCallIsEncryptedEndToEnd) {
  TlsServer server;
  Client c(server.uri, trusting(tls_files().ca));
  const auto r = add(c);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->value, 5);
  // The same port does not speak plaintext brine.
  EXPECT_EQ(server.uri.rfind("tls://127.0.0.1:", 0), 0u);
}

TEST(Tls, AServerSignedByAnotherCaIsRefused) {
  TlsServer server;
  Client c(server.uri, trusting(tls_files().other_ca));
  const auto r = add(c);
  EXPECT_EQ(r.code(), StatusCode::unavailable);
  EXPECT_NE(r.status().message.find("certificate was refused"), std::string::npos)
      << r.status().to_string();
  server.expect_still_serving();
}

TEST(Tls, AnExpiredCertificateIsRefused) {
  TlsServer server(certificate(tls_files().expired_crt, tls_files().expired_key));
  Client c(server.uri, trusting(tls_files().ca));
  const auto r = add(c);
  EXPECT_EQ(r.code(), StatusCode::unavailable);
  EXPECT_NE(r.status().message.find("expired"), std::string::npos) << r.status().to_string();
}

TEST(Tls, ACertificateForAnotherNameIsRefused) {
  TlsServer server(certificate(tls_files().other_name_crt, tls_files().other_name_key));
  Client by_ip(server.uri, trusting(tls_files().ca));
  const auto r = add(by_ip);
  EXPECT_EQ(r.code(), StatusCode::unavailable);
  EXPECT_NE(r.status().message.find("mismatch"), std::string::npos) << r.status().to_string();
  auto o = trusting(tls_files().ca);
  o.tls.server_name = "localhost";
  Client by_name(server.uri, o);
  const auto r2 = add(by_name);
  EXPECT_EQ(r2.code(), StatusCode::unavailable);
  EXPECT_NE(r2.status().message.find("mismatch"), std::string::npos) << r2.status().to_string();
  // The name it does carry is accepted.
  o.tls.server_name = "other.example";
  Client right(server.uri, o);
  EXPECT_TRUE(add(right).ok());
}

TEST(Tls, APlaintextClientIsToldThatTheEndpointSpeaksTls) {
  TlsServer server;
  const std::string plain = "tcp://" + server.uri.substr(6);
  Client c(plain);
  const auto r = add(c);
  EXPECT_EQ(r.code(), StatusCode::invalid_argument) << r.status().to_string();
  EXPECT_NE(r.status().message.find("speaks TLS"), std::string::npos) << r.status().to_string();
  server.expect_still_serving();
  EXPECT_GE(server.s.server.stats().tls_handshakes_failed, 1u);
}

TEST(Tls, AStalledHandshakeIsClosedAndOthersAreServed) {
  brine::ServerOptions o;
  o.first_frame_timeout = 300ms;
  TlsServer server(o);
  RawPeer silent(server.uri.replace(0, 3, "tcp"));
  RawPeer half(server.uri);
  const unsigned char record_start[] = {0x16, 0x03, 0x01};  // a handshake record that never ends
  ASSERT_TRUE(half.send_all(record_start, sizeof record_start));
  server.uri.replace(0, 3, "tls");
  server.expect_still_serving();
  EXPECT_TRUE(silent.wait_closed(3s));
  EXPECT_TRUE(half.wait_closed(3s));
  EXPECT_EQ(server.s.server.stats().connections_timed_out, 2u);
}

TEST(Tls, AClientGivesUpOnAServerThatNeverCompletesTheHandshake) {
  const LoopbackPort stopped(LoopbackPort::silent);
  auto o = trusting(tls_files().ca);
  o.timeout = 500ms;
  Client c(stopped.uri("tls"), o);
  const auto t0 = Clock::now();
  const auto r = add(c);
  EXPECT_EQ(r.code(), StatusCode::unavailable);
  EXPECT_NE(r.status().message.find("handshake did not finish"), std::string::npos)
      << r.status().to_string();
  EXPECT_LT(Clock::now() - t0, 2s);
}

TEST(Tls, MutualTlsRequiresAClientCertificate) {
  brine::ServerOptions o;
  o.tls.client_ca_file = tls_files().ca;
  TlsServer server(o);
  Client anonymous(server.uri, trusting(tls_files().ca));
  const auto r = add(anonymous);
  EXPECT_EQ(r.code(), StatusCode::unavailable) << r.status().to_string();
  auto with_cert = trusting(tls_files().ca);
  with_cert.tls.certificate_file = tls_files().client_crt;
  with_cert.tls.private_key_file = tls_files().client_key;
  Client known(server.uri, with_cert);
  const auto ok = add(known);
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  EXPECT_EQ(ok->value, 5);
  EXPECT_GE(server.s.server.stats().tls_handshakes_failed, 1u);
}

TEST(Tls, MisconfigurationIsReportedWhereItIsMade) {
  brine::ServerOptions none;
  none.tls.certificate_file = "";
  brine::Server bare(brine::ServerOptions{});
  try {
    bare.listen("tls://127.0.0.1:0");
    FAIL() << "listened without a certificate";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("certificate"), std::string::npos) << e.what();
  }
  brine::ClientOptions missing;
  missing.tls.ca_file = "/nonexistent/ca.crt";
  try {
    Client c("tls://127.0.0.1:1", missing);
    FAIL() << "a missing CA file was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/ca.crt"), std::string::npos) << e.what();
  }
}

}  // namespace

namespace {

// Runs `openssl s_client` against the server with one protocol version forced, and with the
// client's own security level lowered so that it would speak old versions: true if the
// handshake succeeded with a verified certificate.
bool openssl_handshake(const std::string& uri, const char* version) {
  const std::string hostport = uri.substr(uri.find("://") + 3);
  const std::string command = "timeout 10 openssl s_client -connect " + hostport + " " + version +
                              " -cipher DEFAULT@SECLEVEL=0 -CAfile " + tls_files().ca +
                              " -verify_return_error </dev/null >/dev/null 2>&1";
  return std::system(command.c_str()) == 0;
}

TEST(Tls, OnlyTls12AndNewerAreSpoken) {
  TlsServer server;
  EXPECT_TRUE(openssl_handshake(server.uri, "-tls1_2"));
  EXPECT_TRUE(openssl_handshake(server.uri, "-tls1_3"));
  EXPECT_FALSE(openssl_handshake(server.uri, "-tls1_1"));
  EXPECT_FALSE(openssl_handshake(server.uri, "-tls1"));
  server.expect_still_serving();
}

}  // namespace
