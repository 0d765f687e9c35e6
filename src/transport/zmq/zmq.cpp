// zmq+tcp://host:port, zmq+ipc:///path, zmq+inproc://name: ZeroMQ, one brine frame per message.
// Clients dial a DEALER (dealer_channel.hpp); servers listen with a ROUTER or work for a broker
// with a DEALER (peer_hub.hpp).
#include "transport/zmq/dealer_channel.hpp"
#include "transport/zmq/peer_hub.hpp"

namespace brine::transport {
namespace {

using zmq_transport::DealerChannel;
using zmq_transport::PeerHub;

class ZmqDialer final : public Dialer {
 public:
  ZmqDialer(std::string_view uri, const ClientSide& client)
      : uri_(uri), options_(client.options), loop_(client.loop) {}
  std::shared_ptr<Channel> dial(Deadline, std::string& error) override {
    try {
      return std::make_shared<DealerChannel>(loop_, uri_, options_);
    } catch (const zmq::error_t& e) {
      error = e.what();
      return nullptr;
    }
  }

 private:
  std::string uri_;
  const ClientOptions& options_;
  event::EventLoop& loop_;
};

class ZmqListener final : public Listener {
 public:
  ZmqListener(PeerHub::Mode mode, std::string_view uri, const ServerSide& server)
      : hub_(std::make_shared<PeerHub>(mode, uri, server)) {}
  ~ZmqListener() override { close(false); }
  const std::string& uri() const override { return hub_->uri(); }
  void start(ListenerSink& sink) override { hub_->start(sink); }
  bool channels_outlive_listener() const override { return false; }
  void close(bool linger) override {
    if (closed_) return;
    closed_ = true;
    hub_->close(linger);
  }

 private:
  std::shared_ptr<PeerHub> hub_;
  bool closed_ = false;
};

void check(std::string_view uri) {
  (void)zmq_transport::endpoint_of(uri);
}

std::unique_ptr<Dialer> dialer(std::string_view uri, const ClientSide& client) {
  check(uri);
  return std::make_unique<ZmqDialer>(uri, client);
}

std::unique_ptr<Listener> listen(std::string_view uri, const ServerSide& server) {
  return std::make_unique<ZmqListener>(PeerHub::Mode::router, uri, server);
}

std::unique_ptr<Listener> work_for(std::string_view uri, const ServerSide& server) {
  return std::make_unique<ZmqListener>(PeerHub::Mode::worker, uri, server);
}

}  // namespace

extern const Scheme kSchemeZmqTcp;
extern const Scheme kSchemeZmqIpc;
extern const Scheme kSchemeZmqInproc;
const Scheme kSchemeZmqTcp{"zmq+tcp", check, dialer, listen, work_for};
const Scheme kSchemeZmqIpc{"zmq+ipc", check, dialer, listen, work_for};
const Scheme kSchemeZmqInproc{"zmq+inproc", check, dialer, listen, work_for};

}  // namespace brine::transport
