#include "transport/tcp/tcp.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <charconv>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "transport/stream/stream_scheme.hpp"

namespace brine::transport {
namespace {

struct HostPort {
  std::string host;
  std::string port;
};

HostPort split(std::string_view scheme, std::string_view rest) {
  auto bad = [&](const char* why) {
    return std::invalid_argument(std::string(scheme) + " URI '" + std::string(scheme) + "://" +
                                 std::string(rest) + "': " + why);
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

std::vector<SocketAddress> resolve(std::string_view rest) {
  const HostPort hp = split("tcp", rest);
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

std::string bound_uri(std::string_view scheme, std::string_view rest, const SocketAddress& bound) {
  const HostPort hp = split(scheme, rest);
  const auto port = bound.family == AF_INET6
                        ? ntohs(reinterpret_cast<const sockaddr_in6*>(&bound.storage)->sin6_port)
                        : ntohs(reinterpret_cast<const sockaddr_in*>(&bound.storage)->sin_port);
  const bool v6 = hp.host.find(':') != std::string::npos;
  return std::string(scheme) + "://" + (v6 ? "[" + hp.host + "]" : hp.host) + ":" +
         std::to_string(port);
}

std::string describe(const SocketAddress& a) {
  char text[INET6_ADDRSTRLEN] = {};
  if (a.family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&a.storage);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
    return "[" + std::string(text) + "]:" + std::to_string(ntohs(in6->sin6_port));
  }
  const auto* in4 = reinterpret_cast<const sockaddr_in*>(&a.storage);
  ::inet_ntop(AF_INET, &in4->sin_addr, text, sizeof text);
  return std::string(text) + ":" + std::to_string(ntohs(in4->sin_port));
}

void configure(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void nothing(const SocketAddress&) {}

int any_mode(const SocketAddress&, unsigned) {
  return 0;  // who may connect over TCP is the firewall's business, not a file mode
}

void check(std::string_view uri) {
  check_host_port("tcp", uri_rest(uri, "tcp"));
}

std::unique_ptr<Dialer> dialer(std::string_view uri, const ClientSide& client) {
  return std::make_unique<SocketDialer>(kTcpFamily, "tcp", uri_rest(uri, "tcp"), client);
}

std::unique_ptr<Listener> listen(std::string_view uri, const ServerSide& server) {
  return std::make_unique<StreamListener>(kTcpFamily, "tcp", uri, server,
                                          plain_channels(server.options.max_frame_size));
}

}  // namespace

const SocketFamily kTcpFamily{resolve, bound_uri, configure, nothing, nothing, any_mode, describe};

void check_host_port(std::string_view scheme, std::string_view rest) {
  (void)split(scheme, rest);
}

std::string host_of(std::string_view rest) {
  return split("tcp", rest).host;
}

extern const Scheme kSchemeTcp;
const Scheme kSchemeTcp{"tcp", check, dialer, listen, nullptr};

}  // namespace brine::transport
