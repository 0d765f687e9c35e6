#include "transport/stream/stream_scheme.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <future>
#include <stdexcept>

#include "transport/stream/byte_stream.hpp"
#include "transport/stream/stream_channel.hpp"

namespace brine::transport {

std::string_view uri_rest(std::string_view uri, std::string_view scheme) {
  if (uri.size() < scheme.size() + 3 || uri.substr(0, scheme.size()) != scheme ||
      uri.substr(scheme.size(), 3) != "://") {
    throw std::invalid_argument("URI '" + std::string(uri) + "' is not a " + std::string(scheme) +
                                ":// URI");
  }
  return uri.substr(scheme.size() + 3);
}

// One bound socket, accepted on one loop.
class StreamListener::Acceptor final : public event::Watcher,
                                       public std::enable_shared_from_this<Acceptor> {
 public:
  Acceptor(event::EventLoop& loop, event::Fd fd, const SocketFamily& family, std::string scheme,
           std::vector<event::EventLoop*> loops, MakeChannel make, std::shared_ptr<AcceptGate> gate,
           std::shared_ptr<std::atomic<std::size_t>> next)
      : loop_(loop),
        fd_(std::move(fd)),
        family_(family),
        scheme_(std::move(scheme)),
        loops_(std::move(loops)),
        make_(std::move(make)),
        gate_(std::move(gate)),
        next_(std::move(next)) {}

  void start() {
    loop_.post([self = shared_from_this()] {
      if (self->stopped_) return;
      try {
        self->registration_ = self->loop_.watch(self->fd_.get(), EPOLLIN | EPOLLET, self);
      } catch (const std::system_error&) {
        return;  // cannot happen for a listening socket; nothing to accept then
      }
      self->accept_all();  // connections already in the backlog
    });
  }

  // Stops accepting and closes the listening socket, on the loop's thread; waits for it.
  void stop() {
    auto stop_here = [](Acceptor& a) {
      a.stopped_ = true;
      a.loop_.cancel(a.retry_);
      a.loop_.unwatch(a.registration_, a.fd_.get());
      a.fd_.reset();
    };
    if (!loop_.running() || loop_.on_loop_thread()) {
      stop_here(*this);
      return;
    }
    auto done = std::make_shared<std::promise<void>>();
    auto finished = done->get_future();
    loop_.post([self = shared_from_this(), done, stop_here] {
      stop_here(*self);
      done->set_value();
    });
    (void)finished.wait_for(std::chrono::seconds(2));
  }

  void on_ready(std::uint32_t) override { accept_all(); }

 private:
  void accept_all() {
    for (int budget = 0; budget < 64; ++budget) {
      if (stopped_) return;
      event::Fd socket(::accept4(fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
      if (!socket) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        // Out of descriptors or memory: try again later instead of spinning (edge-triggered,
        // the waiting connection raises no new event).
        retry_ = loop_.after(std::chrono::milliseconds(100), [self = shared_from_this()] {
          self->retry_ = 0;
          self->accept_all();
        });
        return;
      }
      family_.configure(socket.get());
      PeerInfo peer{scheme_, peer_address(family_, socket.get())};
      event::EventLoop& target = *loops_[next_->fetch_add(1) % loops_.size()];
      make_(std::move(socket), std::move(peer), target, gate_);
    }
    loop_.post([self = shared_from_this()] { self->accept_all(); });  // a flood: others first
  }

  event::EventLoop& loop_;
  event::Fd fd_;
  const SocketFamily& family_;
  std::string scheme_;
  std::vector<event::EventLoop*> loops_;
  MakeChannel make_;
  std::shared_ptr<AcceptGate> gate_;
  std::shared_ptr<std::atomic<std::size_t>> next_;
  event::EventLoop::Registration registration_;
  event::EventLoop::TimerId retry_ = 0;
  bool stopped_ = false;
};

StreamListener::StreamListener(const SocketFamily& family, std::string_view scheme,
                               std::string_view uri, const ServerSide& server, MakeChannel make)
    : family_(family), scheme_(scheme), loops_(server.loops), make_(std::move(make)) {
  if (loops_.empty()) throw std::logic_error("a stream listener needs a loop");
  auto bound =
      listen_sockets(family, scheme, uri_rest(uri, scheme), uri, server.options.unix_socket_mode);
  uri_ = bound.front().uri;
  for (std::size_t i = 0; i < bound.size(); ++i) {
    addresses_.push_back(bound[i].address);
    acceptors_.push_back(std::make_shared<Acceptor>(*loops_[i % loops_.size()],
                                                    std::move(bound[i].fd), family, scheme_, loops_,
                                                    make_, gate_, next_loop_));
  }
}

StreamListener::~StreamListener() {
  close();
}

void StreamListener::start(ListenerSink& sink) {
  gate_->open(sink);
  for (auto& a : acceptors_) a->start();
}

void StreamListener::close(bool) {
  if (closed_) return;
  closed_ = true;
  gate_->close();
  for (auto& a : acceptors_) a->stop();
  for (const auto& address : addresses_) family_.after_close(address);
}

MakeChannel plain_channels(std::size_t max_frame_size) {
  return [max_frame_size](event::Fd socket, PeerInfo peer, event::EventLoop& loop,
                          const std::shared_ptr<AcceptGate>& gate) {
    gate->deliver(std::make_shared<StreamChannel>(
        loop, std::make_unique<SocketStream>(std::move(socket)), std::move(peer), max_frame_size,
        StreamChannel::Reader::loop));
  };
}

SocketDialer::SocketDialer(const SocketFamily& family, std::string_view scheme,
                           std::string_view rest, const ClientSide& client)
    : family_(family),
      scheme_(scheme),
      rest_(rest),
      loop_(client.loop),
      max_frame_size_(client.options.max_frame_size) {}

std::shared_ptr<Channel> SocketDialer::dial(Deadline deadline, std::string& error) {
  std::vector<SocketAddress> addresses;
  try {
    addresses = family_.resolve(rest_);
  } catch (const std::exception& e) {
    error = e.what();
    return nullptr;
  }
  event::Fd fd = connect_socket(family_, addresses, deadline, error);
  if (!fd) return nullptr;
  PeerInfo peer{scheme_, peer_address(family_, fd.get())};
  return std::make_shared<StreamChannel>(loop_, std::make_unique<SocketStream>(std::move(fd)),
                                         std::move(peer), max_frame_size_,
                                         StreamChannel::Reader::caller);
}

}  // namespace brine::transport
