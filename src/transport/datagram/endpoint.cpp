#include "transport/datagram/endpoint.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <future>

#include "transport/stream/stream_scheme.hpp"
#include "wire/control.hpp"

namespace brine::transport::datagram {
namespace {

constexpr int kReceiveBudget = 256;  // datagrams per turn before other work of the loop
// Ended sessions remembered at once; past it the cookie secret is replaced, so that no session
// forgotten early can be reopened with a cookie still valid.
constexpr std::size_t kMaxRetired = 65536;

std::string key_of(const SocketAddress& from, std::uint64_t session) {
  const auto bytes = address_bytes(from);
  std::string key(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  key.append(reinterpret_cast<const char*>(&session), sizeof session);
  return key;
}

}  // namespace

// --- CallMemory ------------------------------------------------------------------------------

CallMemory::Seen CallMemory::arrive(std::uint64_t id, bool oneway, Clock::time_point now) {
  if (const auto it = entries_.find(id); it != entries_.end()) return it->second.state;
  if (id <= floor_) return Seen::forgotten;
  entries_.emplace(id, Entry{});
  if (oneway) finish(id, now);
  return Seen::fresh;
}

void CallMemory::cancel(std::uint64_t id, Clock::time_point now) {
  const auto it = entries_.find(id);
  if (it != entries_.end() && it->second.state == Seen::running) finish(id, now);
}

void CallMemory::finish(std::uint64_t id, Clock::time_point now) {
  entries_[id].state = Seen::finished;
  finished_.emplace_back(id, now);
}

CallMemory::~CallMemory() {
  total_->fetch_sub(bytes_);
}

bool CallMemory::answer(std::uint64_t id, Buffer&& frame, Clock::time_point now,
                        const Buffer** kept) {
  const auto it = entries_.find(id);
  if (it == entries_.end() || it->second.state != Seen::running) return false;
  const auto over = [&] { return total_->load() + frame.size() > kEndpointAnswerBytes; };
  while (over() && !finished_.empty()) forget_oldest();  // this session's oldest go first
  finished_.emplace_back(id, now);
  if (over()) {
    it->second.state = Seen::unkept;
    return false;
  }
  it->second.state = Seen::answered;
  bytes_ += frame.size();
  total_->fetch_add(frame.size());
  it->second.answer = std::move(frame);
  *kept = &it->second.answer;
  return true;
}

void CallMemory::forget_oldest() {
  const std::uint64_t id = finished_.front().first;
  finished_.pop_front();
  if (const auto it = entries_.find(id); it != entries_.end()) {
    bytes_ -= it->second.answer.size();
    total_->fetch_sub(it->second.answer.size());
    entries_.erase(it);
  }
  floor_ = std::max(floor_, id);
}

const Buffer* CallMemory::answer_of(std::uint64_t id) const {
  const auto it = entries_.find(id);
  return it != entries_.end() && it->second.state == Seen::answered ? &it->second.answer : nullptr;
}

void CallMemory::trim(Clock::time_point now, const Endpoint::Limits& limits) {
  while (!finished_.empty()) {
    const bool over = finished_.size() > limits.max_entries || bytes_ > limits.max_answer_bytes;
    if (!over && now - finished_.front().second < limits.memory) return;
    forget_oldest();
  }
}

// --- Endpoint --------------------------------------------------------------------------------

Endpoint::Endpoint(const Family& family, std::string_view uri, const ServerSide& server)
    : family_(family),
      loop_(*server.loops.at(0)),
      limits_{std::min(server.options.max_frame_size, kMaxFrameLength), server.options.call_memory,
              server.options.max_inflight_per_connection, server.options.max_outbound_bytes} {
  const std::string_view rest = uri_rest(uri, family.scheme);
  bound_ = resolve(family, rest);
  fd_ = bind_socket(family, bound_, uri, server.options.unix_socket_mode);
  uri_ = family.addresses.bound_uri(family.scheme, rest, bound_);
}

Endpoint::~Endpoint() {
  if (!closed_) unbind(family_, bound_);
}

void Endpoint::start(ListenerSink& sink) {
  gate_.open(sink);
  loop_.post([self = shared_from_this()] {
    if (self->closed_) return;
    try {
      self->registration_ = self->loop_.watch(self->fd_.get(), EPOLLIN, self);
    } catch (const std::exception&) {
      return;  // cannot happen for a fresh socket
    }
    self->receive();
  });
}

void Endpoint::on_ready(std::uint32_t) {
  receive();
}

void Endpoint::receive() {
  for (int budget = 0; budget < kReceiveBudget; ++budget) {
    if (closed_) return;
    const std::span<std::byte> buf = loop_.scratch();
    SocketAddress from;
    socklen_t len = sizeof from.storage;
    const ssize_t n = ::recvfrom(fd_.get(), buf.data(), buf.size(), MSG_DONTWAIT | MSG_TRUNC,
                                 reinterpret_cast<sockaddr*>(&from.storage), &len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // EAGAIN; or an error a datagram socket reports for one datagram: next turn
    }
    if (std::size_t(n) > buf.size() || std::size_t(n) > kMaxDatagram) continue;  // oversized
    from.length = len;
    from.family = from.storage.ss_family;
    handle(from, buf.first(std::size_t(n)));
  }
  // Others get a turn; the socket is level-triggered, so what is left wakes the loop again.
}

void Endpoint::handle(const SocketAddress& from, std::span<const std::byte> datagram) {
  const std::optional<Header> h = parse_client_datagram(datagram);
  if (!h) return;  // not ours: nothing is answered to what may be a spoofed source
  if (family_.unix && from.length <= sizeof(sa_family_t)) return;  // unnamed: cannot answer
  if (h->type == Type::hello) {
    const Cookie c = cookies_.make(address_bytes(from), h->session);
    send_to(from, Type::cookie, h->session, c);  // as large as the hello, no larger
    return;
  }
  std::string key = key_of(from, h->session);
  std::shared_ptr<Peer> peer;
  if (const auto it = peers_.find(key); it != peers_.end()) {
    peer = it->second;
    if (peer->cookie_ != h->cookie) return;
    if (h->type == Type::bye) {  // the client closed its end: no answer, and no reopening
      finish_peer(*peer, {StatusCode::unavailable, "the client closed the session"}, false);
      return;
    }
  } else if (h->type == Type::bye) {
    return;  // nothing to end
  } else {
    if (retired(key) || !cookies_.check(address_bytes(from), h->session, h->cookie)) {
      send_to(from, Type::session_unknown, h->session, {});  // 12 bytes for at least 48
      return;
    }
    peer = make_peer(from, *h, std::move(key));
    if (!peer) return;
  }
  peer->arrive(h->rest);
}

std::shared_ptr<Peer> Endpoint::make_peer(const SocketAddress& from, const Header& h,
                                          std::string key) {
  PeerInfo info(std::string(family_.scheme), family_.addresses.describe(from));
  info.silent_departure = true;
  auto peer = std::make_shared<Peer>(weak_from_this(), key, from, h.session, h.cookie,
                                     std::move(info), answer_bytes_);
  peers_.emplace(std::move(key), peer);
  if (!gate_.deliver(peer)) {
    peers_.erase(peer->key_);
    return nullptr;
  }
  return peer;
}

bool Endpoint::retired(const std::string& key) {
  const auto now = Clock::now();
  const auto lifetime = std::chrono::seconds(CookieJar::kLifetimeSeconds);
  while (!retired_order_.empty()) {
    const auto it = retired_.find(retired_order_.front());
    if (it != retired_.end() && now - it->second < lifetime) break;
    if (it != retired_.end()) retired_.erase(it);
    retired_order_.pop_front();
  }
  return retired_.contains(key);
}

void Endpoint::retire(const std::string& key) {
  (void)retired(key);  // drops those past a cookie's lifetime
  if (retired_.size() >= kMaxRetired) {
    // Too many to remember: no cookie made so far will open a session any more, so none of
    // them needs remembering. Live sessions compare their own cookie and carry on; a client
    // between its hello and its first frame is told "session unknown" and starts again.
    cookies_.rotate();
    retired_.clear();
    retired_order_.clear();
  }
  retired_.emplace(key, Clock::now());
  retired_order_.push_back(key);
}

void Endpoint::send_to(const SocketAddress& to, Type type, std::uint64_t session,
                       std::span<const std::byte> body) {
  std::byte header[kServerHeader];
  put_server_header(header, type, session);
  iovec iov[2] = {{header, sizeof header}, {const_cast<std::byte*>(body.data()), body.size()}};
  msghdr msg{};
  msg.msg_name = const_cast<sockaddr*>(to.get());
  msg.msg_namelen = to.length;
  msg.msg_iov = iov;
  msg.msg_iovlen = body.empty() ? 1 : 2;
  // A datagram the socket cannot take now is lost, as the network may lose it.
  (void)::sendmsg(fd_.get(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
}

void Endpoint::close_peer(std::shared_ptr<Peer> peer, Status why) {
  loop_.post([self = shared_from_this(), peer = std::move(peer), why = std::move(why)] {
    self->finish_peer(*peer, why);
  });
}

void Endpoint::finish_peer(Peer& peer, const Status& why, bool tell) {
  if (peer.closed_) return;
  peer.closed_ = true;
  peer.closing_.store(true);
  if (const auto it = peers_.find(peer.key_); it != peers_.end() && it->second.get() == &peer) {
    peers_.erase(it);
    retire(peer.key_);
  }
  if (tell && !closed_) send_to(peer.address_, Type::session_unknown, peer.session_, {});
  if (auto sink = std::move(peer.sink_)) sink->on_close(why);
}

void Endpoint::close() {
  gate_.close();
  if (!loop_.running() || loop_.on_loop_thread()) {
    close_on_loop();
    return;
  }
  auto done = std::make_shared<std::promise<void>>();
  auto closed = done->get_future();
  loop_.post([self = shared_from_this(), done] {
    self->close_on_loop();
    done->set_value();
  });
  (void)closed.wait_for(std::chrono::seconds(3));
}

void Endpoint::close_on_loop() {
  if (closed_) return;
  auto peers = std::move(peers_);
  peers_.clear();
  for (auto& [key, peer] : peers) {
    // The client learns at once that its session is over, not at its next heartbeat.
    finish_peer(*peer, {StatusCode::unavailable, "the server's endpoint " + uri_ + " closed"});
  }
  closed_ = true;
  if (registration_) loop_.unwatch(registration_, fd_.get());
  unbind(family_, bound_);
  // The address is released at once (a UDP client's next datagram meets a closed port), but
  // the descriptor keeps naming a socket until the endpoint goes: a worker may be sending a late
  // reply on it, and a closed descriptor's number could by then name another socket. So an
  // unbound socket takes its place.
  if (const event::Fd blank(::socket(bound_.family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
      blank) {
    (void)::dup3(blank.get(), fd_.get(), O_CLOEXEC);
  }
}

// --- Peer ------------------------------------------------------------------------------------

Peer::Peer(std::weak_ptr<Endpoint> endpoint, std::string key, SocketAddress address,
           std::uint64_t session, const Cookie& cookie, PeerInfo info,
           std::shared_ptr<std::atomic<std::size_t>> answer_bytes)
    : endpoint_(std::move(endpoint)),
      key_(std::move(key)),
      address_(address),
      session_(session),
      cookie_(cookie),
      info_(std::move(info)),
      memory_(std::move(answer_bytes)) {}

void Peer::arrive(std::span<const std::byte> bytes) {
  auto endpoint = endpoint_.lock();
  if (!endpoint || closing_.load() || !sink_) return;
  detail::FrameView f{};
  if (Status s = detail::frame_from_message(bytes, endpoint->limits().max_frame_size, &f);
      !s.ok()) {
    sink_->on_bad_frame(s, true);
    return;
  }
  if (paused_.load(std::memory_order_relaxed)) return;  // held back: discarded
  const auto now = Clock::now();
  if (f.kind == detail::FrameKind::request || f.kind == detail::FrameKind::oneway) {
    std::unique_lock lk(mu_);
    memory_.trim(now, endpoint->limits());
    const CallMemory::Seen seen =
        memory_.arrive(f.call_id, f.kind == detail::FrameKind::oneway, now);
    switch (seen) {
      case CallMemory::Seen::fresh:
        break;
      case CallMemory::Seen::answered:
        if (const Buffer* answer = memory_.answer_of(f.call_id)) transmit(answer->bytes());
        return;
      case CallMemory::Seen::forgotten:
      case CallMemory::Seen::unkept: {
        const bool forgotten = seen == CallMemory::Seen::forgotten;
        const std::uint64_t floor = memory_.floor();
        lk.unlock();
        if (f.kind != detail::FrameKind::request) return;
        const std::string id = std::to_string(f.call_id);
        const Buffer error = wire::error_frame(
            f.call_id,
            {StatusCode::unavailable,
             forgotten ? "call " + id +
                             " arrived again after the server stopped remembering its calls up "
                             "to " +
                             std::to_string(floor) +
                             " (call_memory_ms): it may have run, and is not run again"
                       : "call " + id +
                             " ran, but its answer was not kept for copies of the request (the "
                             "server's memory for answers was full) and is lost"},
            endpoint->limits().max_frame_size);
        transmit(error.bytes());
        return;
      }
      case CallMemory::Seen::running:
      case CallMemory::Seen::finished:
        return;  // a copy: the answer is on its way, or there is none
    }
  } else if (f.kind == detail::FrameKind::cancel) {
    std::lock_guard lk(mu_);
    memory_.cancel(f.call_id, now);
  }
  sink_->on_frame(f);
}

void Peer::transmit(std::span<const std::byte> frame) {
  if (auto endpoint = endpoint_.lock()) {
    endpoint->send_to(address_, Type::reply_frame, session_, frame);
  }
}

SendStatus Peer::send(Buffer&& frame, Deadline, WhenFull) {
  if (closing_.load()) return SendStatus::closed;
  const auto kind = detail::frame_kind(frame.bytes());
  const std::uint64_t id = detail::frame_call_id(frame.bytes());
  if (frame.size() > kMaxFrame) {
    // Never cut into pieces: the caller is told why instead.
    frame = wire::error_frame(
        id,
        {StatusCode::resource_exhausted, "the reply of " + std::to_string(frame.size() - 4) +
                                             " bytes exceeds the datagram limit of " +
                                             std::to_string(kMaxFrameLength) +
                                             " bytes (brine does not split frames over datagrams)"},
        kMaxFrameLength);
  }
  const bool answer =
      id != 0 && (kind == detail::FrameKind::reply || kind == detail::FrameKind::error);
  if (answer) {
    auto endpoint = endpoint_.lock();
    if (!endpoint) return SendStatus::closed;
    std::lock_guard lk(mu_);
    const Buffer* kept = nullptr;
    const auto now = Clock::now();
    if (memory_.answer(id, std::move(frame), now, &kept)) {
      transmit(kept->bytes());
      memory_.trim(now, endpoint->limits());
      return SendStatus::sent;
    }
  }
  transmit(frame.bytes());
  return SendStatus::sent;
}

void Peer::close(const Status& why, Deadline) {
  if (closing_.exchange(true)) return;
  if (auto endpoint = endpoint_.lock()) endpoint->close_peer(shared_from_this(), why);
}

}  // namespace brine::transport::datagram
