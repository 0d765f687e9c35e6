// tcp://host:port, tcp://[v6addr]:port, and the same with tls://. Port 0 (listening) picks a free
// port.
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <charconv>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>

#include "transport/transport.hpp"

namespace brine::transport {
namespace {

struct HostPort {
  std::string host;
  std::string port;
};

HostPort split(std::string_view rest) {
  auto bad = [&](const char* why) {
    return std::invalid_argument("tcp URI 'tcp://" + std::string(rest) + "': " + why);
  };
  std::string_view host;
  std::string_view port;
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    if (close == std::string_view::npos) throw bad("unclosed '['");
    host = rest.substr(1, close - 1);
    if (close + 1 >= rest.size() || rest[close + 1] != ':') throw bad("expected ':port' after ']'");
    port = rest.substr(close + 2);
  } else {
    const auto colon = rest.rfind(':');
    if (colon == std::string_view::npos) throw bad("expected host:port");
    host = rest.substr(0, colon);
    if (host.find(':') != std::string_view::npos) throw bad("IPv6 addresses go in [brackets]");
    port = rest.substr(colon + 1);
  }
  if (host.empty()) throw bad("empty host");
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc{} || end != port.data() + port.size() || value > 65535) {
    throw bad("port must be a number from 0 to 65535");
  }
  return {std::string(host), std::string(port)};
}

std::vector<SocketAddress> resolve(std::string_view rest, bool /*passive*/) {
  const HostPort hp = split(rest);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* list = nullptr;
  const int rc = ::getaddrinfo(hp.host.c_str(), hp.port.c_str(), &hints, &list);
  if (rc != 0) {
    throw std::system_error(std::make_error_code(std::errc::host_unreachable),
                            "cannot resolve '" + hp.host + "': " + ::gai_strerror(rc));
  }
  std::vector<SocketAddress> out;
  for (addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    SocketAddress a;
    std::memcpy(&a.storage, ai->ai_addr, ai->ai_addrlen);
    a.length = ai->ai_addrlen;
    a.family = ai->ai_family;
    a.protocol = IPPROTO_TCP;
    out.push_back(a);
  }
  ::freeaddrinfo(list);
  return out;
}

std::string bound_uri_of(std::string_view scheme, std::string_view rest,
                         const SocketAddress& bound) {
  const HostPort hp = split(rest);
  const auto port = bound.family == AF_INET6
                        ? ntohs(reinterpret_cast<const sockaddr_in6*>(&bound.storage)->sin6_port)
                        : ntohs(reinterpret_cast<const sockaddr_in*>(&bound.storage)->sin_port);
  const bool v6 = hp.host.find(':') != std::string::npos;
  return std::string(scheme) + "://" + (v6 ? "[" + hp.host + "]" : hp.host) + ":" +
         std::to_string(port);
}
std::string bound_uri(std::string_view rest, const SocketAddress& bound) {
  return bound_uri_of("tcp", rest, bound);
}
std::string bound_tls_uri(std::string_view rest, const SocketAddress& bound) {
  return bound_uri_of("tls", rest, bound);
}
std::string host(std::string_view rest) {
  return split(rest).host;
}

void configure(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void nothing(const SocketAddress&) {}
int any_mode(const SocketAddress&, unsigned) {
  return 0;  // who may connect over TCP is the firewall's business, not a file mode
}
void check(std::string_view rest) {
  (void)split(rest);
}

}  // namespace

extern const StreamTransport kTcpTransport;
const StreamTransport kTcpTransport{"tcp",   check,   resolve,  bound_uri, configure,
                                    nothing, nothing, any_mode, host,      false};
// tls://host:port: TCP underneath, TLS on top (src/transport/tls).
extern const StreamTransport kTlsTransport;
const StreamTransport kTlsTransport{"tls",   check,   resolve,  bound_tls_uri, configure,
                                    nothing, nothing, any_mode, host,          true};

}  // namespace brine::transport
