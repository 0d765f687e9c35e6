// http://host:port and https://host:port: the HTTP front door (http_channel.hpp), on TCP
// addresses, served only: a brine client does not dial them (curl, a browser, a Prometheus
// scraper and `brine` do the calling).
#include "event/loop.hpp"
#include "transport/http/http_channel.hpp"
#include "transport/stream/stream_scheme.hpp"
#include "transport/tcp/tcp.hpp"
#include "transport/tls/tls_stream.hpp"

namespace brine::transport {
namespace {

template <const char* Name>
void check(std::string_view uri) {
  check_host_port(Name, uri_rest(uri, Name));
}

template <const char* Name>
std::unique_ptr<Dialer> dialer(std::string_view uri, const ClientSide&) {
  throw std::invalid_argument(std::string(uri) + ": " + Name +
                              ":// is a server's front door for HTTP clients (curl, a browser, "
                              "Prometheus); brine clients call the server's brine endpoints");
}

constexpr char kHttp[] = "http";
constexpr char kHttps[] = "https";

std::unique_ptr<Listener> listen_http(std::string_view uri, const ServerSide& server) {
  check<kHttp>(uri);
  const std::size_t max_frame_size = server.options.max_frame_size;
  return std::make_unique<StreamListener>(
      kTcpFamily, kHttp, uri, server,
      [max_frame_size](event::Fd socket, PeerInfo peer, event::EventLoop& loop,
                       const std::shared_ptr<AcceptGate>& gate) {
        peer.transport = kHttp;
        gate->deliver(
            std::make_shared<HttpChannel>(loop, std::make_unique<SocketStream>(std::move(socket)),
                                          std::move(peer), max_frame_size));
      });
}

std::unique_ptr<Listener> listen_https(std::string_view uri, const ServerSide& server) {
  check<kHttps>(uri);
  const std::size_t max_frame_size = server.options.max_frame_size;
  return std::make_unique<StreamListener>(
      kTcpFamily, kHttps, uri, server,
      tls::server_channels(server, kHttps,
                           [max_frame_size](std::unique_ptr<ByteStream> stream, PeerInfo peer,
                                            event::EventLoop& loop) {
                             return std::make_shared<HttpChannel>(loop, std::move(stream),
                                                                  std::move(peer), max_frame_size);
                           }));
}

}  // namespace

extern const Scheme kSchemeHttp;
extern const Scheme kSchemeHttps;
const Scheme kSchemeHttp{"http", check<kHttp>, dialer<kHttp>, listen_http, nullptr};
const Scheme kSchemeHttps{"https", check<kHttps>, dialer<kHttps>, listen_https, nullptr};

}  // namespace brine::transport
