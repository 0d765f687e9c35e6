// What the socket schemes (tcp, unix, tls) share: a listener that accepts on the server's loops,
// and a dialer for plain sockets (internal). A scheme supplies its SocketFamily and, for the
// listener, what to make of an accepted socket (a channel at once, or after a TLS handshake).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "event/fd.hpp"
#include "event/loop.hpp"
#include "transport/accept_gate.hpp"
#include "transport/channel.hpp"
#include "transport/stream/socket.hpp"

namespace brine::transport {

// Turns an accepted, configured socket into a channel on `loop`, now or later, through `gate`.
using MakeChannel = std::function<void(event::Fd socket, PeerInfo peer, event::EventLoop& loop,
                                       const std::shared_ptr<AcceptGate>& gate)>;

// Binds in its constructor (every address of the URI), accepts once started. Accepted sockets go
// to the server's loops in turn.
class StreamListener final : public Listener {
 public:
  StreamListener(const SocketFamily& family, std::string_view scheme, std::string_view uri,
                 const ServerSide& server, MakeChannel make);
  ~StreamListener() override;
  const std::string& uri() const override { return uri_; }
  void start(ListenerSink& sink) override;
  void close(bool linger = false) override;

 private:
  class Acceptor;

  const SocketFamily& family_;
  std::string scheme_;
  std::string uri_;
  std::vector<event::EventLoop*> loops_;
  MakeChannel make_;
  std::shared_ptr<AcceptGate> gate_ = std::make_shared<AcceptGate>();
  std::shared_ptr<std::atomic<std::size_t>> next_loop_ =
      std::make_shared<std::atomic<std::size_t>>(0);
  std::vector<std::shared_ptr<Acceptor>> acceptors_;
  std::vector<SocketAddress> addresses_;
  bool closed_ = false;
};

// Plain sockets: connects, and makes a channel that callers read.
class SocketDialer final : public Dialer {
 public:
  SocketDialer(const SocketFamily& family, std::string_view scheme, std::string_view rest,
               const ClientSide& client);
  std::shared_ptr<Channel> dial(Deadline deadline, std::string& error) override;

 private:
  const SocketFamily& family_;
  std::string scheme_;
  std::string rest_;
  event::EventLoop& loop_;
  std::size_t max_frame_size_;
};

// Accepted plain sockets become channels that the loop reads, at once.
MakeChannel plain_channels(std::size_t max_frame_size);

// Splits "scheme://rest"; throws std::invalid_argument when `uri` does not start with `scheme`.
std::string_view uri_rest(std::string_view uri, std::string_view scheme);

}  // namespace brine::transport
