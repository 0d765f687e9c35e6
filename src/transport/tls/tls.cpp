// tls://host:port: TCP addresses, a TLS layer under the stream channel (tls_stream.hpp).
//
// A client connects and does its handshake before the channel exists, on the calling thread,
// bounded by the call's deadline. A server takes each accepted socket through a handshake on one
// of its loops, bounded by first_frame_timeout; a peer whose first byte is not a TLS handshake
// record is told, in a plaintext brine error frame, that this endpoint speaks TLS.
#include <openssl/err.h>
#include <sys/socket.h>

#include <cerrno>

#include "event/loop.hpp"
#include "transport/stream/stream_channel.hpp"
#include "transport/stream/stream_scheme.hpp"
#include "transport/tcp/tcp.hpp"
#include "transport/tls/tls_stream.hpp"
#include "wire/control.hpp"

namespace brine::transport {
namespace {

class TlsDialer final : public Dialer {
 public:
  TlsDialer(std::string_view rest, const ClientSide& client)
      : context_(tls::client_context(client.options.tls)),
        rest_(rest),
        host_(client.options.tls.server_name.empty() ? host_of(rest)
                                                     : client.options.tls.server_name),
        loop_(client.loop),
        max_frame_size_(client.options.max_frame_size) {}

  std::shared_ptr<Channel> dial(Deadline deadline, std::string& error) override {
    std::vector<SocketAddress> addresses;
    try {
      addresses = kTcpFamily.resolve(rest_);
    } catch (const std::exception& e) {
      error = e.what();
      return nullptr;
    }
    event::Fd fd = connect_socket(kTcpFamily, addresses, deadline, error);
    if (!fd) return nullptr;
    tls::Ssl ssl = tls::client_handshake(context_.get(), fd.get(), host_, deadline, error);
    if (!ssl) return nullptr;
    PeerInfo peer{"tls", peer_address(kTcpFamily, fd.get())};
    tls::describe_peer(ssl.get(), peer);
    return std::make_shared<StreamChannel>(
        loop_, std::make_unique<tls::TlsStream>(std::move(fd), std::move(ssl)), std::move(peer),
        max_frame_size_, StreamChannel::Reader::loop);
  }

 private:
  tls::Context context_;
  std::string rest_;
  std::string host_;
  event::EventLoop& loop_;
  std::size_t max_frame_size_;
};

// One accepted connection on its way to becoming a channel, on its loop.
class ServerHandshake final : public event::Watcher,
                              public std::enable_shared_from_this<ServerHandshake> {
 public:
  ServerHandshake(event::EventLoop& loop, event::Fd fd, PeerInfo peer, tls::Context context,
                  std::size_t max_frame_size, std::chrono::milliseconds timeout,
                  std::shared_ptr<AcceptGate> gate, tls::WrapStream wrap)
      : loop_(loop),
        fd_(std::move(fd)),
        peer_(std::move(peer)),
        context_(std::move(context)),
        max_frame_size_(max_frame_size),
        timeout_(timeout),
        gate_(std::move(gate)),
        wrap_(std::move(wrap)) {}

  void start() {
    loop_.post([self = shared_from_this()] {
      self->timer_ =
          self->loop_.after(self->timeout_, [self] { self->finish(Outcome::timed_out); });
      try {
        self->registration_ = self->loop_.watch(self->fd_.get(), EPOLLIN | EPOLLONESHOT, self);
      } catch (const std::system_error&) {
        self->finish(Outcome::failed);
        return;
      }
      self->step();
    });
  }

  void on_ready(std::uint32_t) override { step(); }

 private:
  enum class Outcome { done, failed, timed_out, gone };

  void step() {
    if (finished_) return;
    if (!ssl_ && !peek()) return;
    ERR_clear_error();
    const int rc = SSL_accept(ssl_.get());
    if (rc == 1) {
      finish(Outcome::done);
      return;
    }
    const int e = SSL_get_error(ssl_.get(), rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      const std::uint32_t want = e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT;
      if (!loop_.rearm(registration_, fd_.get(), want | EPOLLONESHOT)) finish(Outcome::failed);
      return;
    }
    finish(Outcome::failed);
  }

  // Looks at the first byte: false while it has not arrived (or the connection is done with).
  bool peek() {
    unsigned char first = 0;
    const ssize_t n = ::recv(fd_.get(), &first, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      if (!loop_.rearm(registration_, fd_.get(), EPOLLIN | EPOLLONESHOT)) finish(Outcome::gone);
      return false;
    }
    if (n != 1) {
      finish(Outcome::gone);  // closed before saying anything: not a failed handshake
      return false;
    }
    if (first != tls::kHandshakeRecord) {
      const Buffer frame =
          wire::error_frame(0,
                            {StatusCode::invalid_argument,
                             "protocol error: this endpoint speaks TLS; connect with tls://"},
                            max_frame_size_);
      // Best effort: the socket is fresh, so 100-odd bytes fit its buffer.
      (void)::send(fd_.get(), frame.data(), frame.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      finish(Outcome::failed);
      return false;
    }
    ssl_.reset(SSL_new(context_.get()));
    if (!ssl_ || !tls::attach(ssl_.get(), fd_.get())) {
      finish(Outcome::failed);
      return false;
    }
    return true;
  }

  void finish(Outcome outcome) {
    if (finished_) return;
    finished_ = true;
    loop_.cancel(timer_);
    loop_.unwatch(registration_, fd_.get());
    if (outcome != Outcome::done) {
      // Counted before the close, so that a peer that sees the close also sees the count.
      if (outcome != Outcome::gone) gate_->handshake_failed(outcome == Outcome::timed_out);
      fd_.reset();
      return;
    }
    tls::describe_peer(ssl_.get(), peer_);
    auto stream = std::make_unique<tls::TlsStream>(std::move(fd_), std::move(ssl_));
    gate_->deliver(wrap_ ? wrap_(std::move(stream), std::move(peer_), loop_)
                         : std::make_shared<StreamChannel>(loop_, std::move(stream),
                                                           std::move(peer_), max_frame_size_,
                                                           StreamChannel::Reader::loop));
  }

  event::EventLoop& loop_;
  event::Fd fd_;
  PeerInfo peer_;
  tls::Context context_;
  tls::Ssl ssl_;
  std::size_t max_frame_size_;
  std::chrono::milliseconds timeout_;
  std::shared_ptr<AcceptGate> gate_;
  tls::WrapStream wrap_;
  event::EventLoop::Registration registration_;
  event::EventLoop::TimerId timer_ = 0;
  bool finished_ = false;
};

void check(std::string_view uri) {
  check_host_port("tls", uri_rest(uri, "tls"));
}

std::unique_ptr<Dialer> dialer(std::string_view uri, const ClientSide& client) {
  return std::make_unique<TlsDialer>(uri_rest(uri, "tls"), client);
}

std::unique_ptr<Listener> listen(std::string_view uri, const ServerSide& server) {
  check(uri);
  return std::make_unique<StreamListener>(kTcpFamily, "tls", uri, server,
                                          tls::server_channels(server, "tls", nullptr));
}

}  // namespace

MakeChannel tls::server_channels(const ServerSide& server, std::string_view scheme,
                                 WrapStream wrap) {
  tls::Context context = tls::server_context(server.options.tls);
  const std::size_t max_frame_size = server.options.max_frame_size;
  const auto timeout = server.options.first_frame_timeout;
  return [context, max_frame_size, timeout, scheme = std::string(scheme), wrap = std::move(wrap)](
             event::Fd socket, PeerInfo peer, event::EventLoop& loop,
             const std::shared_ptr<AcceptGate>& gate) {
    peer.transport = scheme;
    std::make_shared<ServerHandshake>(loop, std::move(socket), std::move(peer), context,
                                      max_frame_size, timeout, gate, wrap)
        ->start();
  };
}

extern const Scheme kSchemeTls;
const Scheme kSchemeTls{"tls", check, dialer, listen, nullptr};

}  // namespace brine::transport
