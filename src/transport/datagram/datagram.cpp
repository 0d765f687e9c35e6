// udp://host:port and unixgram:///path (or unixgram://@name): brine frames in datagrams, one
// frame per datagram, for oneway notifications and small calls. Clients dial a ClientChannel
// (client_channel.hpp); servers listen with an Endpoint (endpoint.hpp). docs/wire-format.md,
// "Datagrams", has the envelope, the cookie exchange and the at-most-once rule.
#include "transport/datagram/client_channel.hpp"
#include "transport/datagram/endpoint.hpp"
#include "transport/stream/stream_scheme.hpp"

namespace brine::transport {
namespace {

using datagram::Endpoint;

class DatagramListener final : public Listener {
 public:
  DatagramListener(const datagram::Family& family, std::string_view uri, const ServerSide& server)
      : endpoint_(std::make_shared<Endpoint>(family, uri, server)) {}
  ~DatagramListener() override { close(false); }
  const std::string& uri() const override { return endpoint_->uri(); }
  void start(ListenerSink& sink) override { endpoint_->start(sink); }
  // The peers' channels share the endpoint's socket: they end with it.
  bool channels_outlive_listener() const override { return false; }
  void close(bool) override {
    if (closed_) return;
    closed_ = true;
    endpoint_->close();
  }

 private:
  std::shared_ptr<Endpoint> endpoint_;
  bool closed_ = false;
};

template <const datagram::Family& F>
void check(std::string_view uri) {
  datagram::check(F, uri_rest(uri, F.scheme));
}

template <const datagram::Family& F>
std::unique_ptr<Dialer> dialer(std::string_view uri, const ClientSide& client) {
  return std::make_unique<datagram::DatagramDialer>(F, uri, client);
}

template <const datagram::Family& F>
std::unique_ptr<Listener> listen(std::string_view uri, const ServerSide& server) {
  return std::make_unique<DatagramListener>(F, uri, server);
}

}  // namespace

extern const Scheme kSchemeUdp;
extern const Scheme kSchemeUnixgram;
const Scheme kSchemeUdp{"udp", check<datagram::kUdp>, dialer<datagram::kUdp>,
                        listen<datagram::kUdp>, nullptr};
const Scheme kSchemeUnixgram{"unixgram", check<datagram::kUnixgram>, dialer<datagram::kUnixgram>,
                             listen<datagram::kUnixgram>, nullptr};

}  // namespace brine::transport
