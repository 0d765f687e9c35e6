#include <array>
#include <stdexcept>
#include <string>

#include "transport/transport.hpp"

namespace brine::transport {

extern const StreamTransport kTcpTransport;
extern const StreamTransport kUnixTransport;
extern const StreamTransport kTlsTransport;

namespace {
const std::array<const StreamTransport*, 3> kTransports = {&kTcpTransport, &kUnixTransport,
                                                           &kTlsTransport};
}

ParsedUri parse_uri(std::string_view uri) {
  const auto sep = uri.find("://");
  if (sep == std::string_view::npos) {
    throw std::invalid_argument("URI '" + std::string(uri) +
                                "' lacks a scheme (tcp://, tls://, unix://)");
  }
  const std::string_view scheme = uri.substr(0, sep);
  for (const StreamTransport* t : kTransports) {
    if (t->scheme == scheme) {
      t->check(uri.substr(sep + 3));
      return {t, uri.substr(sep + 3)};
    }
  }
  throw std::invalid_argument("URI '" + std::string(uri) + "': unknown scheme '" +
                              std::string(scheme) + "'");
}

}  // namespace brine::transport
