// ZeroMQ transports: zmq+tcp://host:port, zmq+ipc:///path, zmq+inproc://name.
//
// One brine frame is one single-part ZeroMQ message, byte for byte the frame of the stream
// transports (length prefix included), sent without copying (the message owns the frame's
// Buffer). Clients use a DEALER socket; servers a ROUTER (or, as a broker's worker, a DEALER that
// connects). A ZeroMQ socket is not thread-safe, so each one lives on its own thread; other
// threads hand it frames through a queue and an eventfd.
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <zmq.hpp>

#include "client_conn.hpp"
#include "server_core.hpp"

namespace brine::detail {
namespace {

constexpr int kWorkerHeartbeatMs = 500;  // worker -> broker liveness (see tools/broker)
using Clock = std::chrono::steady_clock;

// The process's ZeroMQ context. inproc:// endpoints only connect sockets of one context, so
// client and server must share it: this is the one process-wide object in brine. It is never
// destroyed (zmq_ctx_term at exit would wait for sockets of objects not yet destroyed).
zmq::context_t& context() {
  static auto* ctx = new zmq::context_t(1);
  return *ctx;
}

// "zmq+tcp://h:p" -> "tcp://h:p" (port 0 -> '*', ZeroMQ's ephemeral port).
std::string zmq_endpoint(std::string_view uri) {
  auto bad = [&](const char* why) {
    return std::invalid_argument("ZeroMQ URI '" + std::string(uri) + "': " + why);
  };
  if (uri.rfind("zmq+", 0) != 0) throw bad("expected zmq+tcp://, zmq+ipc:// or zmq+inproc://");
  std::string ep(uri.substr(4));
  if (ep.rfind("tcp://", 0) == 0) {
    const auto colon = ep.rfind(':');
    if (colon == std::string::npos || colon < 6) throw bad("expected host:port");
    const std::string port = ep.substr(colon + 1);
    if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos ||
        port.size() > 5 || std::stoul(port) > 65535) {
      throw bad("port must be a number from 0 to 65535");
    }
    if (port == "0") ep = ep.substr(0, colon + 1) + "*";
    return ep;
  }
  if (ep.rfind("ipc://", 0) == 0) {
    if (ep.size() <= 6) throw bad("empty ipc path");
    return ep;
  }
  if (ep.rfind("inproc://", 0) == 0) {
    if (ep.size() <= 9) throw bad("empty inproc name");
    return ep;
  }
  throw bad("expected zmq+tcp://, zmq+ipc:// or zmq+inproc://");
}

std::string brine_uri(const std::string& endpoint) {
  return "zmq+" + endpoint;
}

// ZMTP heartbeats (PING/PONG inside libzmq) detect a dead peer on both sides.
void set_common_options(zmq::socket_t& s, std::size_t max_frame_size,
                        std::chrono::milliseconds heartbeat_interval,
                        std::chrono::milliseconds heartbeat_timeout) {
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::maxmsgsize, std::int64_t(max_frame_size + kPrefixSize));
  s.set(zmq::sockopt::heartbeat_ivl, int(heartbeat_interval.count()));
  s.set(zmq::sockopt::heartbeat_timeout, int(heartbeat_timeout.count()));
  s.set(zmq::sockopt::heartbeat_ttl, int(heartbeat_timeout.count()));
  s.set(zmq::sockopt::reconnect_ivl, 100);
}

// A message that owns the frame's bytes (no copy).
zmq::message_t message_of(Buffer&& frame) {
  auto* owned = new Buffer(std::move(frame));
  return zmq::message_t(
      owned->data(), owned->size(), [](void*, void* hint) { delete static_cast<Buffer*>(hint); },
      owned);
}

std::span<const std::byte> bytes_of(const zmq::message_t& m) {
  return {static_cast<const std::byte*>(m.data()), m.size()};
}

class EventFd {
 public:
  EventFd() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  }
  ~EventFd() { ::close(fd_); }
  EventFd(const EventFd&) = delete;
  EventFd& operator=(const EventFd&) = delete;
  void signal() {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto n = ::write(fd_, &one, sizeof one);
  }
  void drain() {
    std::uint64_t v;
    [[maybe_unused]] const auto n = ::read(fd_, &v, sizeof v);
  }
  int fd() const { return fd_; }

 private:
  int fd_;
};

// Socket monitor: connection events of `socket` arrive on a PAIR socket.
class Monitor {
 public:
  explicit Monitor(zmq::socket_t& socket) {
    static std::atomic<unsigned> counter{0};
    address_ =
        "inproc://brine-monitor-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    const int events =
        ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_CONNECT_RETRIED | ZMQ_EVENT_DISCONNECTED;
    if (zmq_socket_monitor(socket.handle(), address_.c_str(), events) != 0) {
      throw zmq::error_t();
    }
    pair_ = zmq::socket_t(context(), zmq::socket_type::pair);
    pair_.set(zmq::sockopt::linger, 0);
    pair_.connect(address_);
    watched_ = &socket;
  }
  ~Monitor() { zmq_socket_monitor(watched_->handle(), nullptr, 0); }
  Monitor(const Monitor&) = delete;
  Monitor& operator=(const Monitor&) = delete;

  zmq::socket_t& socket() { return pair_; }
  // The next event, or 0 if none is waiting.
  int next_event() {
    zmq::message_t head;
    if (!pair_.recv(head, zmq::recv_flags::dontwait)) return 0;
    std::uint16_t event = 0;
    if (head.size() >= 2) std::memcpy(&event, head.data(), 2);
    zmq::message_t address;
    if (head.more()) (void)pair_.recv(address, zmq::recv_flags::none);
    return event;
  }

 private:
  std::string address_;
  zmq::socket_t pair_;
  zmq::socket_t* watched_ = nullptr;
};

// ---------------------------------------------------------------------------------------------
// Client: a DEALER on its own thread.
class ZmqClientConn final : public ClientConn {
 public:
  ZmqClientConn(asio::io_context& timers, std::string uri, const ClientOptions& options)
      : ClientConn(timers.get_executor()),
        uri_(std::move(uri)),
        endpoint_(zmq_endpoint(uri_)),
        max_frame_size_(options.max_frame_size),
        heartbeat_interval_(options.heartbeat_interval),
        socket_(context(), zmq::socket_type::dealer) {
    set_common_options(socket_, max_frame_size_, options.heartbeat_interval,
                       options.heartbeat_timeout);
    // Queue nothing on a pipe that is not connected: frames wait in backlog_ instead, where a
    // call that timed out can still be dropped.
    socket_.set(zmq::sockopt::immediate, 1);
    monitor_ = std::make_unique<Monitor>(socket_);
    socket_.connect(endpoint_);
  }

  ~ZmqClientConn() override {
    stop_ = true;
    wake_.signal();
    if (thread_.joinable()) thread_.join();
  }

  // The thread holds no reference to the connection, so the connection is never destroyed on it.
  void start(std::shared_ptr<ClientConn>) override {
    thread_ = std::thread([this] {
      on_client_thread = true;
      run();
    });
  }

  transport::WriteResult write(Buffer&& frame, Deadline) override {
    {
      std::lock_guard lk(queue_mu_);
      if (stop_) return {transport::WriteOutcome::failed, "connection closed"};
      queue_.push_back(std::move(frame));
    }
    wake_.signal();
    return {transport::WriteOutcome::done, {}};
  }

 private:
  void close_transport() override {
    stop_ = true;
    wake_.signal();
  }

  void run() {
    zmq::pollitem_t items[] = {{socket_.handle(), 0, ZMQ_POLLIN, 0},
                               {monitor_->socket().handle(), 0, ZMQ_POLLIN, 0},
                               {nullptr, wake_.fd(), ZMQ_POLLIN, 0}};
    auto next_heartbeat = Clock::now();
    while (!stop_) {
      zmq::poll(items, 3, std::chrono::milliseconds(100));
      if (items[2].revents & ZMQ_POLLIN) wake_.drain();
      handle_events();
      if (stop_) break;
      receive();
      flush();
      if (connected_ && Clock::now() >= next_heartbeat) {
        heartbeat();
        next_heartbeat = Clock::now() + heartbeat_interval_;
      }
    }
    monitor_.reset();
    socket_.close();
  }

  void handle_events() {
    while (const int event = monitor_->next_event()) {
      if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
        connected_ = true;
      } else if (event == ZMQ_EVENT_CONNECT_RETRIED && !connected_) {
        fail({StatusCode::unavailable, "cannot connect to " + uri_}, false);
      } else if (event == ZMQ_EVENT_DISCONNECTED) {
        receive();  // replies that arrived before the server left still count
        fail({StatusCode::unavailable, "connection to " + uri_ + " lost"}, false);
      }
    }
  }

  void receive() {
    zmq::message_t m;
    while (!stop_ && socket_.recv(m, zmq::recv_flags::dontwait)) {
      FrameView f{};
      if (m.more()) {
        fail({StatusCode::internal, "multipart message from the server"}, false);
        return;
      }
      if (Status s = frame_from_message(bytes_of(m), max_frame_size_, &f); !s.ok()) {
        fail({s.code == StatusCode::resource_exhausted ? s.code : StatusCode::internal,
              "bad frame from the server: " + s.message},
             false);
        return;
      }
      if (!deliver(f, false)) return;
    }
  }

  // Tells the server this client is alive even when it makes no calls: a ROUTER frees the remote
  // references of a peer silent for its heartbeat timeout. Dropped when it cannot go at once.
  void heartbeat() {
    Buffer frame;
    begin_frame(frame, FrameKind::heartbeat, 0, {});
    (void)finish_frame(frame, 0xFFFFFFFFu);
    zmq::message_t m = message_of(std::move(frame));
    (void)socket_.send(m, zmq::send_flags::dontwait);
  }

  void flush() {
    {
      std::lock_guard lk(queue_mu_);
      for (auto& b : queue_) backlog_.push_back(std::move(b));
      queue_.clear();
    }
    while (!backlog_.empty() && !stop_) {
      Buffer& frame = backlog_.front();
      const auto kind = FrameKind(frame.data()[7]);
      if (kind == FrameKind::request && !pending(load_be64(frame.data() + 12))) {
        backlog_.pop_front();  // its call ended (timed out) before it could be sent
        continue;
      }
      zmq::message_t m = message_of(std::move(frame));
      if (!socket_.send(m, zmq::send_flags::dontwait)) {
        // Not connected (yet) or the pipe is full: keep it. message_of took the bytes, so take
        // them back from the message.
        Buffer back;
        back.append(m.data(), m.size());
        frame = std::move(back);
        return;
      }
      backlog_.pop_front();
    }
  }

  std::string uri_;
  std::string endpoint_;
  std::size_t max_frame_size_;
  std::chrono::milliseconds heartbeat_interval_;
  zmq::socket_t socket_;
  std::unique_ptr<Monitor> monitor_;
  EventFd wake_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  bool connected_ = false;
  std::mutex queue_mu_;
  std::vector<Buffer> queue_;
  std::deque<Buffer> backlog_;  // owned by the thread
};

// ---------------------------------------------------------------------------------------------
// Server: a ROUTER that binds, or (worker) a DEALER that connects to a broker's backend.
class ZmqServerEndpoint final : public MessageEndpoint {
 public:
  ZmqServerEndpoint(FrameDispatcher& dispatcher, std::string_view uri, bool worker)
      : dispatcher_(dispatcher),
        worker_(worker),
        max_frame_size_(dispatcher.options().max_frame_size),
        peer_timeout_(dispatcher.peer_timeout()),
        socket_(context(), worker ? zmq::socket_type::dealer : zmq::socket_type::router) {
    const std::string endpoint = zmq_endpoint(uri);
    set_common_options(socket_, max_frame_size_, dispatcher.options().heartbeat_interval,
                       dispatcher.options().heartbeat_timeout);
    // A full pipe must say so (EAGAIN) rather than drop the reply; a peer that is gone says
    // EHOSTUNREACH, and only then is the reply dropped.
    if (!worker) socket_.set(zmq::sockopt::router_mandatory, 1);
    if (worker) {
      monitor_ = std::make_unique<Monitor>(socket_);
      socket_.connect(endpoint);
      uri_ = std::string(uri);
    } else {
      try {
        socket_.bind(endpoint);
      } catch (const zmq::error_t& e) {
        throw std::system_error(e.num(), std::generic_category(),
                                "cannot listen on " + std::string(uri));
      }
      uri_ = brine_uri(socket_.get(zmq::sockopt::last_endpoint));
      // libzmq binds and listens at once, so the mode is set just after: a connection made in
      // between (microseconds) is accepted, but its requests wait for start(). Streams set it
      // before listening.
      if (endpoint.rfind("ipc://", 0) == 0 &&
          ::chmod(endpoint.c_str() + 6, mode_t(dispatcher.options().unix_socket_mode)) != 0) {
        throw std::system_error(errno, std::generic_category(),
                                "cannot set the mode of " + endpoint.substr(6));
      }
    }
  }

  ~ZmqServerEndpoint() override { stop(false); }

  const std::string& uri() const override { return uri_; }

  void start() override {
    if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
  }

  void stop(bool graceful) override {
    graceful_ = graceful;
    stop_ = true;
    wake_.signal();
    if (thread_.joinable()) thread_.join();
  }

  void send(std::vector<zmq::message_t>&& envelope, Buffer&& frame) {
    {
      std::lock_guard lk(queue_mu_);
      if (stop_) return;
      queue_.push_back({std::move(envelope), std::move(frame)});
    }
    wake_.signal();
  }

 private:
  struct Outgoing {
    std::vector<zmq::message_t> envelope;
    Buffer frame;
  };

  // What the server keeps for one ROUTER peer (routing id).
  struct PeerObjects {
    std::shared_ptr<Session> session;
    std::shared_ptr<CallRegistry> calls;
  };

  // The envelope of one request: the routing parts before the frame, echoed on the reply.
  class Peer final : public ReplySink {
   public:
    Peer(ZmqServerEndpoint& ep, std::vector<zmq::message_t> envelope)
        : ep_(ep), envelope_(std::move(envelope)) {}
    void send(Buffer&& frame) override {
      std::vector<zmq::message_t> copy;
      copy.reserve(envelope_.size());
      for (auto& part : envelope_) copy.emplace_back(part.data(), part.size());
      ep_.send(std::move(copy), std::move(frame));
    }
    // A ROUTER's peer (one routing id) keeps its objects; a broker's worker sees only the
    // broker, so it keeps none.
    Session* session() override {
      if (ep_.worker_ || envelope_.empty()) return nullptr;
      if (!peer_) peer_ = ep_.peer_for(routing_id(envelope_.front()));
      return peer_->session.get();
    }
    // Cancel frames come straight from a client only (a broker does not forward them).
    CallRegistry* calls() override {
      if (ep_.worker_ || envelope_.empty()) return nullptr;
      if (!peer_) peer_ = ep_.peer_for(routing_id(envelope_.front()));
      return peer_->calls.get();
    }

   private:
    ZmqServerEndpoint& ep_;
    std::vector<zmq::message_t> envelope_;
    std::shared_ptr<const PeerObjects> peer_;
  };

  static std::string routing_id(const zmq::message_t& m) {
    return {static_cast<const char*>(m.data()), m.size()};
  }

  // --- the remote references and calls of each peer; freed when the peer falls silent --------
  struct PeerEntry {
    std::shared_ptr<const PeerObjects> peer;
    Clock::time_point last_seen;
  };

  std::shared_ptr<const PeerObjects> peer_for(const std::string& id) {
    std::lock_guard lk(sessions_mu_);
    auto& entry = sessions_[id];
    if (!entry.peer) {
      entry.peer = std::make_shared<const PeerObjects>(
          PeerObjects{std::make_shared<Session>(dispatcher_.object_counter()),
                      std::make_shared<CallRegistry>()});
    }
    entry.last_seen = Clock::now();
    return entry.peer;
  }

  void touch(const zmq::message_t& id) {
    std::lock_guard lk(sessions_mu_);
    if (sessions_.empty()) return;
    const auto it = sessions_.find(routing_id(id));
    if (it != sessions_.end()) it->second.last_seen = Clock::now();
  }

  void expire_silent_peers() {
    const auto now = Clock::now();
    std::vector<std::shared_ptr<const PeerObjects>> expired;
    {
      std::lock_guard lk(sessions_mu_);
      for (auto it = sessions_.begin(); it != sessions_.end();) {
        if (now - it->second.last_seen > peer_timeout_) {
          expired.push_back(std::move(it->second.peer));
          it = sessions_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& p : expired) {  // outside the lock: destructors run user code
      p->session->close();
      p->calls->cancel_all();
    }
  }

  void run() {
    std::vector<zmq::pollitem_t> items = {{socket_.handle(), 0, ZMQ_POLLIN, 0},
                                          {nullptr, wake_.fd(), ZMQ_POLLIN, 0}};
    if (monitor_) items.push_back({monitor_->socket().handle(), 0, ZMQ_POLLIN, 0});
    auto next_heartbeat = std::chrono::steady_clock::now();
    while (!stop_) {
      // With replies waiting for room in a full pipe, come back soon to try again.
      const auto wait = !backlog_.empty() ? std::chrono::milliseconds(1)
                        : worker_         ? std::chrono::milliseconds(kWorkerHeartbeatMs / 2)
                                          : std::chrono::milliseconds(100);
      zmq::poll(items.data(), items.size(), wait);
      if (items[1].revents & ZMQ_POLLIN) wake_.drain();
      if (monitor_) {
        while (const int event = monitor_->next_event()) {
          if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) announce();
        }
        if (std::chrono::steady_clock::now() >= next_heartbeat) {
          send_control(FrameKind::heartbeat, {});
          next_heartbeat =
              std::chrono::steady_clock::now() + std::chrono::milliseconds(kWorkerHeartbeatMs);
        }
      }
      receive();
      flush();
      if (!worker_) expire_silent_peers();
    }
    if (graceful_) {
      // The replies of calls that finished during the drain. ZeroMQ has no close handshake, and
      // a client (ZMQ_IMMEDIATE) drops what it has not read when the connection drops: give the
      // peers a moment to read before closing.
      const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
      do {
        flush();
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      } while (std::chrono::steady_clock::now() < until);
      socket_.set(zmq::sockopt::linger, 1000);
    }
    monitor_.reset();
    socket_.close();
    std::lock_guard lk(sessions_mu_);
    for (auto& [id, entry] : sessions_) {
      entry.peer->session->close();
      entry.peer->calls->cancel_all();  // their replies would go nowhere
    }
  }

  // Tells the broker this worker is ready, and which of its methods may be retried elsewhere.
  void announce() {
    Buffer payload;
    const auto names = dispatcher_.idempotent_methods();
    std::byte count[2];
    store_be16(count, std::uint16_t(names.size()));
    payload.append(count, 2);
    for (const auto& n : names) {
      std::byte len[2];
      store_be16(len, std::uint16_t(n.size()));
      payload.append(len, 2);
      payload.append(n.data(), n.size());
    }
    send_control(FrameKind::worker_ready, payload.bytes());
  }

  void send_control(FrameKind kind, std::span<const std::byte> payload) {
    Buffer frame;
    begin_frame(frame, kind, 0, {});
    frame.append(payload.data(), payload.size());
    (void)finish_frame(frame, 0xFFFFFFFFu);
    zmq::message_t m = message_of(std::move(frame));
    (void)socket_.send(m, zmq::send_flags::dontwait);  // dropped if not connected: fine
  }

  void receive() {
    for (int budget = 0; budget < 1000 && !stop_; ++budget) {
      std::vector<zmq::message_t> parts;
      zmq::message_t m;
      if (!socket_.recv(m, zmq::recv_flags::dontwait)) return;
      parts.push_back(std::move(m));
      while (parts.back().more()) {
        zmq::message_t more;
        (void)socket_.recv(more, zmq::recv_flags::none);
        parts.push_back(std::move(more));
      }
      zmq::message_t frame_msg = std::move(parts.back());
      parts.pop_back();
      if (!worker_ && parts.empty()) continue;  // a ROUTER always gives the identity first
      handle(std::move(parts), frame_msg);
    }
  }

  void handle(std::vector<zmq::message_t> envelope, const zmq::message_t& msg) {
    if (!worker_) touch(envelope.front());
    FrameView f{};
    Status s = frame_from_message(bytes_of(msg), max_frame_size_, &f);
    if (s.ok() && f.kind == FrameKind::heartbeat) return;  // a client's "still here"
    if (s.ok() && f.kind != FrameKind::request && f.kind != FrameKind::oneway &&
        f.kind != FrameKind::cancel) {
      s = {StatusCode::invalid_argument, "clients send only requests"};
    }
    if (!s.ok()) {
      // A bad message costs only itself: ZeroMQ keeps the framing, so there is nothing to
      // resynchronise, and a ROUTER cannot drop one peer's connection anyway.
      Buffer err;
      make_error_frame(err, 0, {s.code, "protocol error: " + s.message});
      send(std::move(envelope), std::move(err));
      return;
    }
    dispatcher_.dispatch(std::make_shared<Peer>(*this, std::move(envelope)), f);
  }

  void flush() {
    {
      std::lock_guard lk(queue_mu_);
      for (auto& o : queue_) backlog_.push_back(std::move(o));
      queue_.clear();
    }
    while (!backlog_.empty()) {
      Outgoing& o = backlog_.front();
      try {
        if (!o.envelope.empty() &&
            !socket_.send(o.envelope.front(),
                          zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
          return;  // that peer's pipe is full: try again soon (the message is atomic)
        }
        for (std::size_t i = 1; i < o.envelope.size(); ++i) {
          (void)socket_.send(o.envelope[i], zmq::send_flags::sndmore);
        }
        zmq::message_t m = message_of(std::move(o.frame));
        (void)socket_.send(m, zmq::send_flags::none);
      } catch (const zmq::error_t& e) {
        if (e.num() != EHOSTUNREACH) throw;  // the peer is gone: its reply goes nowhere
      }
      backlog_.pop_front();
    }
  }

  FrameDispatcher& dispatcher_;
  bool worker_;
  std::size_t max_frame_size_;
  std::chrono::milliseconds peer_timeout_;
  zmq::socket_t socket_;
  std::unique_ptr<Monitor> monitor_;
  std::string uri_;
  EventFd wake_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> graceful_{false};
  std::mutex queue_mu_;
  std::vector<Outgoing> queue_;
  std::deque<Outgoing> backlog_;  // owned by the thread
  std::mutex sessions_mu_;
  std::unordered_map<std::string, PeerEntry> sessions_;
};

}  // namespace

bool is_zmq_uri(std::string_view uri) noexcept {
  return uri.rfind("zmq+", 0) == 0;
}

std::shared_ptr<ClientConn> make_zmq_client_conn(asio::io_context& timers, std::string_view uri,
                                                 const ClientOptions& options, Status& error) {
  try {
    return std::make_shared<ZmqClientConn>(timers, std::string(uri), options);
  } catch (const zmq::error_t& e) {
    error = {StatusCode::unavailable, e.what()};
    return nullptr;
  }
}

std::unique_ptr<MessageEndpoint> make_zmq_endpoint(FrameDispatcher& dispatcher,
                                                   std::string_view uri, bool worker) {
  return std::make_unique<ZmqServerEndpoint>(dispatcher, uri, worker);
}

void check_zmq_uri(std::string_view uri) {
  (void)zmq_endpoint(uri);
}

}  // namespace brine::detail
