#include "transport/zmq/peer_hub.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <future>
#include <system_error>

#include "wire/control.hpp"

namespace brine::transport::zmq_transport {
namespace {

constexpr auto kWorkerHeartbeat = std::chrono::milliseconds(500);  // see tools/broker
constexpr auto kMaxRetryDelay = std::chrono::milliseconds(50);
constexpr auto kCloseLinger = std::chrono::milliseconds(100);
constexpr int kReceiveBudget = 1000;

// The key of a relayed peer: every routing part, each with its length.
std::string envelope_key(const std::vector<zmq::message_t>& parts) {
  std::string key;
  for (const auto& p : parts) {
    key += char(p.size() >> 8);
    key += char(p.size() & 0xFF);
    key.append(static_cast<const char*>(p.data()), p.size());
  }
  return key;
}

}  // namespace

PeerHub::PeerHub(Mode mode, std::string_view uri, const ServerSide& server)
    : mode_(mode),
      scheme_(uri.substr(0, uri.find("://"))),
      loop_(*server.loops.at(0)),
      max_frame_size_(server.options.max_frame_size),
      idempotent_methods_(server.idempotent_methods),
      socket_(context(),
              mode == Mode::router ? zmq::socket_type::router : zmq::socket_type::dealer) {
  const std::string endpoint = endpoint_of(uri);
  set_common_options(socket_, max_frame_size_, server.options.heartbeat_interval,
                     server.options.heartbeat_timeout);
  if (mode_ == Mode::worker) {
    monitor_ = std::make_unique<Monitor>(socket_);
    socket_.connect(endpoint);
    uri_ = std::string(uri);
    return;
  }
  // A full pipe must say so (EAGAIN) rather than drop the frame; a peer that is gone says
  // EHOSTUNREACH, and only then are its frames dropped.
  socket_.set(zmq::sockopt::router_mandatory, 1);
  try {
    socket_.bind(endpoint);
  } catch (const zmq::error_t& e) {
    throw std::system_error(e.num(), std::generic_category(),
                            "cannot listen on " + std::string(uri));
  }
  uri_ = uri_of(socket_.get(zmq::sockopt::last_endpoint));
  // libzmq binds and listens at once, so the mode is set just after: a connection made in
  // between (microseconds) is accepted, but its requests wait for start(). Streams set it
  // before listening.
  if (endpoint.rfind("ipc://", 0) == 0 &&
      ::chmod(endpoint.c_str() + 6, mode_t(server.options.unix_socket_mode)) != 0) {
    throw std::system_error(errno, std::generic_category(),
                            "cannot set the mode of " + endpoint.substr(6));
  }
}

PeerHub::~PeerHub() {
  monitor_.reset();
  socket_.close();
}

void PeerHub::start(ListenerSink& sink) {
  gate_.open(sink);
  loop_.post([self = shared_from_this()] {
    if (self->closed_) return;
    try {
      self->socket_watch_.watch(self->loop_, self->socket_, self);
      if (self->monitor_) self->monitor_watch_.watch(self->loop_, self->monitor_->socket(), self);
    } catch (const std::exception&) {
      return;  // cannot happen for a ZeroMQ socket's descriptor
    }
    if (self->mode_ == Mode::worker) self->heartbeat();
    self->process();
  });
}

void PeerHub::on_ready(std::uint32_t) {
  process();
}

void PeerHub::process() {
  for (int pass = 0; pass < 8; ++pass) {
    if (closed_) return;
    if (mode_ == Mode::worker) worker_events();
    const bool exhausted = !receive();
    flush();
    if (exhausted) break;
    // A send or receive may have taken the socket's signal: look before sleeping again.
    if ((socket_.get(zmq::sockopt::events) & ZMQ_POLLIN) == 0) return;
  }
  loop_.post([self = shared_from_this()] { self->process(); });  // others get a turn first
}

bool PeerHub::receive() {
  for (int budget = 0; budget < kReceiveBudget; ++budget) {
    if (closed_) return true;
    zmq::message_t m;
    if (!socket_.recv(m, zmq::recv_flags::dontwait)) return true;
    std::vector<zmq::message_t> parts;
    parts.push_back(std::move(m));
    while (parts.back().more()) {
      zmq::message_t more;
      (void)socket_.recv(more, zmq::recv_flags::none);
      parts.push_back(std::move(more));
    }
    zmq::message_t frame = std::move(parts.back());
    parts.pop_back();
    if (parts.empty()) continue;  // a ROUTER gives the identity first; a broker, the client
    handle(parts, frame);
  }
  return false;
}

void PeerHub::handle(std::vector<zmq::message_t>& envelope, const zmq::message_t& frame) {
  std::string key =
      mode_ == Mode::router
          ? std::string(static_cast<const char*>(envelope[0].data()), envelope[0].size())
          : envelope_key(envelope);
  std::shared_ptr<PeerChannel> peer;
  if (const auto it = peers_.find(key); it != peers_.end()) {
    peer = it->second;
  } else {
    PeerInfo info;
    info.transport = scheme_;
    info.address = hex(mode_ == Mode::router ? key : key.substr(2));
    info.relayed = mode_ == Mode::worker;
    info.silent_departure = true;
    peer =
        std::make_shared<PeerChannel>(weak_from_this(), key, std::move(envelope), std::move(info));
    peers_.emplace(std::move(key), peer);
    if (!gate_.deliver(peer)) {
      peers_.erase(peer->key_);
      return;
    }
  }
  if (peer->closing_.load() || !peer->sink_) return;
  detail::FrameView f{};
  if (Status s = detail::frame_from_message(bytes_of(frame), max_frame_size_, &f); !s.ok()) {
    peer->sink_->on_bad_frame(s, true);
    return;
  }
  if (peer->paused_.load(std::memory_order_relaxed)) return;  // held back: discarded
  peer->sink_->on_frame(f);
}

void PeerHub::wake(std::shared_ptr<PeerChannel> peer) {
  std::lock_guard lk(wake_mu_);
  woken_.push_back(std::move(peer));
  if (flush_posted_) return;
  flush_posted_ = true;
  // process(), not just flush(): a send may take the socket's signal for an arrival, which
  // then must be looked for (ZMQ_EVENTS) or it waits unread.
  loop_.post([self = shared_from_this()] { self->process(); });
}

void PeerHub::flush() {
  std::vector<std::shared_ptr<PeerChannel>> woken;
  {
    std::lock_guard lk(wake_mu_);
    woken.swap(woken_);
    flush_posted_ = false;
  }
  if (closed_) return;
  const bool none_blocked = blocked_.empty();
  for (auto& peer : woken) {
    if (!flush_peer(*peer)) blocked_.push_back(std::move(peer));
  }
  if (none_blocked && !blocked_.empty()) {
    retry_delay_ = std::chrono::milliseconds(1);
    retry_timer_ =
        loop_.after(retry_delay_, [self = shared_from_this()] { self->retry_blocked(); });
  }
}

void PeerHub::retry_blocked() {
  retry_timer_ = 0;
  if (closed_) return;
  std::vector<std::shared_ptr<PeerChannel>> still;
  bool progressed = false;
  for (auto& peer : blocked_) {
    const std::size_t before = peer->queued_bytes();
    if (!flush_peer(*peer)) still.push_back(peer);
    progressed = progressed || peer->queued_bytes() < before;
  }
  blocked_.swap(still);
  if ((socket_.get(zmq::sockopt::events) & ZMQ_POLLIN) != 0) process();
  if (blocked_.empty() || retry_timer_ != 0) return;
  // A peer that does not read is looked at less and less often (the policy closes it after
  // frame_timeout without progress).
  retry_delay_ =
      progressed ? std::chrono::milliseconds(1) : std::min(retry_delay_ * 2, kMaxRetryDelay);
  retry_timer_ = loop_.after(retry_delay_, [self = shared_from_this()] { self->retry_blocked(); });
}

bool PeerHub::flush_peer(PeerChannel& peer) {
  if (peer.closed_) return true;
  std::unique_lock lk(peer.out_mu_);
  bool progressed = false;
  bool blocked = false;
  while (!peer.queue_.empty()) {
    Buffer& frame = peer.queue_.front();
    const std::size_t size = frame.size();
    try {
      const auto& env = peer.envelope_;
      zmq::message_t first(env[0].data(), env[0].size());
      if (!socket_.send(first, zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
        blocked = true;  // that peer's pipe is full (a message goes whole or not at all)
        break;
      }
      for (std::size_t i = 1; i < env.size(); ++i) {
        zmq::message_t part(env[i].data(), env[i].size());
        (void)socket_.send(part, zmq::send_flags::sndmore);
      }
      zmq::message_t m = message_of(std::move(frame));
      (void)socket_.send(m, zmq::send_flags::none);
    } catch (const zmq::error_t&) {
      // The peer is gone (EHOSTUNREACH): what it was sent goes nowhere.
      peer.queue_.clear();
      peer.queued_ = 0;
      break;
    }
    peer.queued_ -= size;
    peer.queue_.pop_front();
    peer.last_progress_ = Clock::now();
    progressed = true;
  }
  const bool drained = peer.queue_.empty();
  if (drained) peer.scheduled_ = false;
  const std::size_t left = peer.queued_;
  lk.unlock();
  if (progressed && peer.sink_) peer.sink_->on_sent(left);
  if (drained && peer.closing_.load() && peer.linger_timer_ != 0)
    finish_peer(peer, peer.close_why_);
  return !blocked;
}

void PeerHub::close_peer(std::shared_ptr<PeerChannel> peer, Status why, Deadline linger_until) {
  loop_.post(
      [self = shared_from_this(), peer = std::move(peer), why = std::move(why), linger_until] {
        if (peer->closed_) return;
        peer->close_why_ = why;
        if (peer->queued_bytes() > 0 && Clock::now() < linger_until && !self->closed_) {
          peer->linger_timer_ = self->loop_.at(
              linger_until, [self, peer] { self->finish_peer(*peer, peer->close_why_); });
          self->flush_peer(*peer);  // may finish it at once
          return;
        }
        self->finish_peer(*peer, why);
      });
}

void PeerHub::finish_peer(PeerChannel& peer, const Status& why) {
  if (peer.closed_) return;
  peer.closed_ = true;
  peer.closing_.store(true);
  loop_.cancel(peer.linger_timer_);
  if (const auto it = peers_.find(peer.key_); it != peers_.end() && it->second.get() == &peer) {
    peers_.erase(it);
  }
  {
    std::lock_guard lk(peer.out_mu_);
    peer.queue_.clear();
    peer.queued_ = 0;
  }
  if (auto sink = std::move(peer.sink_)) sink->on_close(why);
}

void PeerHub::worker_events() {
  while (const int event = monitor_->next_event()) {
    if (event != ZMQ_EVENT_HANDSHAKE_SUCCEEDED) continue;
    // (Re)connected to the broker: ready, and which methods may be retried elsewhere.
    zmq::message_t m = message_of(wire::worker_ready_frame(idempotent_methods_()));
    (void)socket_.send(m, zmq::send_flags::dontwait);  // dropped if not connected: fine
  }
}

void PeerHub::heartbeat() {
  if (closed_) return;
  zmq::message_t m = message_of(wire::heartbeat_frame());
  (void)socket_.send(m, zmq::send_flags::dontwait);
  heartbeat_timer_ =
      loop_.after(kWorkerHeartbeat, [self = shared_from_this()] { self->heartbeat(); });
  if ((socket_.get(zmq::sockopt::events) & ZMQ_POLLIN) != 0) process();
}

void PeerHub::close(bool linger) {
  gate_.close();
  if (!loop_.running() || loop_.on_loop_thread()) {
    close_on_loop(false);
    return;
  }
  auto done = std::make_shared<std::promise<void>>();
  auto closed = done->get_future();
  loop_.post([self = shared_from_this(), linger, done] {
    self->close_on_loop(linger);
    if (!linger) {
      done->set_value();
      return;
    }
    // ZeroMQ has no close handshake, and a client (ZMQ_IMMEDIATE) drops what it has not read
    // when the connection drops: give the peers a moment to read before closing.
    self->loop_.after(kCloseLinger, [self, done] {
      self->close_socket(true);
      done->set_value();
    });
  });
  (void)closed.wait_for(std::chrono::seconds(3));
}

void PeerHub::close_on_loop(bool linger) {
  if (closed_) return;
  flush();
  for (auto& peer : blocked_) flush_peer(*peer);
  closed_ = true;
  loop_.cancel(retry_timer_);
  loop_.cancel(heartbeat_timer_);
  blocked_.clear();
  auto peers = std::move(peers_);
  peers_.clear();
  for (auto& [key, peer] : peers) {
    finish_peer(*peer, {StatusCode::unavailable, "the server's endpoint " + uri_ + " closed"});
  }
  if (!linger) close_socket(false);
}

void PeerHub::close_socket(bool linger) {
  socket_watch_.unwatch(loop_);
  monitor_watch_.unwatch(loop_);
  monitor_.reset();
  if (linger) socket_.set(zmq::sockopt::linger, 1000);
  socket_.close();
}

PeerChannel::PeerChannel(std::weak_ptr<PeerHub> hub, std::string key,
                         std::vector<zmq::message_t> envelope, PeerInfo peer)
    : hub_(std::move(hub)),
      key_(std::move(key)),
      envelope_(std::move(envelope)),
      peer_(std::move(peer)) {}

SendStatus PeerChannel::send(Buffer&& frame, Deadline, WhenFull) {
  bool wake = false;
  {
    std::lock_guard lk(out_mu_);
    if (closing_.load()) return SendStatus::closed;
    if (queue_.empty()) last_progress_ = Clock::now();
    queued_ += frame.size();
    queue_.push_back(std::move(frame));
    if (!scheduled_) {
      scheduled_ = true;
      wake = true;
    }
  }
  if (wake) {
    if (auto hub = hub_.lock()) hub->wake(shared_from_this());
  }
  return SendStatus::sent;
}

void PeerChannel::close(const Status& why, Deadline linger_until) {
  if (closing_.exchange(true)) return;
  if (auto hub = hub_.lock()) hub->close_peer(shared_from_this(), why, linger_until);
}

std::size_t PeerChannel::queued_bytes() const {
  std::lock_guard lk(out_mu_);
  return queued_;
}

ChannelProgress PeerChannel::progress() const {
  ChannelProgress p;
  std::lock_guard lk(out_mu_);
  if (!queue_.empty()) p.stalled_since = last_progress_;
  return p;
}

}  // namespace brine::transport::zmq_transport
