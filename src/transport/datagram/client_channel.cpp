#include "transport/datagram/client_channel.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>

#include "transport/stream/stream_scheme.hpp"

namespace brine::transport::datagram {
namespace {

constexpr int kReceiveBudget = 256;  // datagrams per turn before other work of the loop
constexpr auto kMaxInterval = std::chrono::milliseconds(1000);

bool transient(int err) {
  return err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS || err == EINTR;
}

std::string describe_failure(const std::string& uri, int err) {
  if (err == ECONNREFUSED) return "nothing listens at " + uri + " (connection refused)";
  return uri + ": " + std::strerror(err);
}

}  // namespace

// --- dialing ---------------------------------------------------------------------------------

DatagramDialer::DatagramDialer(const Family& family, std::string_view uri, const ClientSide& client)
    : family_(family),
      uri_(uri),
      rest_(uri_rest(uri, family.scheme)),
      options_(client.options),
      loop_(client.loop) {
  check(family_, rest_);
}

std::shared_ptr<Channel> DatagramDialer::dial(Deadline deadline, std::string& error) {
  SocketAddress to;
  try {
    to = resolve(family_, rest_);
  } catch (const std::exception& e) {
    error = e.what();
    return nullptr;
  }
  event::Fd fd = connect_socket(family_, to, error);
  if (!fd) {
    error = "cannot reach " + uri_ + ": " + error;
    return nullptr;
  }
  set_buffers(fd.get());
  // The handshake: hellos, with backoff, until the server's cookie comes back.
  const std::uint64_t session = new_session();
  std::byte hello[kClientHeader];
  put_client_header(hello, Type::hello, session, Cookie{});
  auto interval = options_.retransmit_interval;
  auto next = Clock::now();
  for (;;) {
    const auto now = Clock::now();
    if (now >= deadline) {
      error = "no answer from " + uri_ + " (its hello went unanswered)";
      return nullptr;
    }
    if (now >= next) {
      if (::send(fd.get(), hello, sizeof hello, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 &&
          !transient(errno)) {
        error = describe_failure(uri_, errno);
        return nullptr;
      }
      next = now + interval;
      interval = std::min(interval * 2, kMaxInterval);
    }
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, millis_left(std::min(next, deadline))) <= 0) continue;
    std::byte answer[kServerHeader + sizeof(Cookie)];
    const ssize_t n = ::recv(fd.get(), answer, sizeof answer, MSG_DONTWAIT);
    if (n < 0) {
      if (transient(errno)) continue;
      error = describe_failure(uri_, errno);
      return nullptr;
    }
    const auto h = parse_server_datagram({answer, std::size_t(n)});
    if (!h || h->session != session || h->type != Type::cookie) continue;
    PeerInfo peer(std::string(family_.scheme), family_.addresses.describe(to));
    peer.silent_departure = true;
    return std::make_shared<ClientChannel>(loop_, std::move(fd), session, h->cookie,
                                           std::move(peer), options_);
  }
}

// --- the channel -----------------------------------------------------------------------------

ClientChannel::ClientChannel(event::EventLoop& loop, event::Fd fd, std::uint64_t session,
                             const Cookie& cookie, PeerInfo peer, const ClientOptions& options)
    : loop_(loop),
      fd_(std::move(fd)),
      session_(session),
      cookie_(cookie),
      peer_(std::move(peer)),
      max_frame_size_(options.max_frame_size),
      first_interval_(options.retransmit_interval),
      heartbeat_interval_(options.heartbeat_interval) {}

ClientChannel::~ClientChannel() = default;

void ClientChannel::start(std::shared_ptr<ChannelSink> sink) {
  sink_ = std::move(sink);
  loop_.post([self = shared_from_this()] {
    if (self->ended_) return;
    try {
      self->registration_ = self->loop_.watch(self->fd_.get(), EPOLLIN, self);
    } catch (const std::exception& e) {
      self->end({StatusCode::unavailable, std::string("cannot watch the socket: ") + e.what()});
      return;
    }
    self->receive();
  });
}

int ClientChannel::transmit(std::span<const std::byte> frame) {
  std::byte header[kClientHeader];
  put_client_header(header, Type::frame, session_, cookie_);
  iovec iov[2] = {{header, sizeof header}, {const_cast<std::byte*>(frame.data()), frame.size()}};
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = 2;
  return ::sendmsg(fd_.get(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0 ? 0 : errno;
}

SendStatus ClientChannel::send(Buffer&& frame, Deadline deadline, WhenFull when_full) {
  if (closing_.load() || frame.size() > kMaxFrame) return SendStatus::closed;
  const auto kind = detail::frame_kind(frame.bytes());
  const std::uint64_t id = detail::frame_call_id(frame.bytes());
  for (bool first = true;; first = false) {
    int err = 0;
    bool left = false;  // a copy of this request went out before: the server may run it
    {
      std::lock_guard lk(mu_);
      const auto now = Clock::now();
      if (kind == detail::FrameKind::request) {
        // Kept before it leaves, so that an answer arriving at once finds it.
        auto [it, fresh] = outstanding_.try_emplace(id);
        if (fresh && !first) {  // answered (or ended) while this thread waited for room
          outstanding_.erase(it);
          return SendStatus::sent;
        }
        if (fresh) it->second = {std::move(frame), deadline, now, first_interval_, false};
        Outstanding& o = it->second;
        err = transmit(o.frame.bytes());
        o.left = o.left || err == 0;
        left = o.left;
        o.next = now + o.interval;
        arm(o.next);
        if (err != 0 && !transient(err) && !o.left) {
          frame = std::move(o.frame);  // nothing left: the caller may send it elsewhere
          outstanding_.erase(it);
        }
      } else if (kind == detail::FrameKind::heartbeat) {
        heartbeat_ = Outstanding{std::move(frame), now + heartbeat_interval_, now + first_interval_,
                                 first_interval_, false};
        err = transmit(heartbeat_->frame.bytes());
        arm(heartbeat_->next);
        if (err != 0 && !transient(err)) {
          frame = std::move(heartbeat_->frame);
          heartbeat_.reset();
        }
      } else {
        if (kind == detail::FrameKind::cancel) outstanding_.erase(id);
        err = transmit(frame.bytes());
      }
    }
    if (err == 0) return SendStatus::sent;
    if (!transient(err)) {
      loop_.post([self = shared_from_this(),
                  why = Status{StatusCode::unavailable, describe_failure(peer_.address, err)}] {
        self->end(why);
      });
      // A request a copy of which left may run: it stays, and the channel's end fails its call
      // (UNAVAILABLE), rather than being handed back to be sent again elsewhere.
      return left ? SendStatus::sent : SendStatus::closed;
    }
    // No room: the server's queue is full (unixgram: a unix datagram socket queues only
    // net.unix.max_dgram_qlen datagrams, 10 by default). A sender that may wait does, until
    // the socket says there is room; a request that cannot wait is sent again by its timer. Not
    // the loop's thread (an asynchronous call made from a completion), which others need; not
    // for ENOBUFS, which poll() does not wait out.
    if (kind == detail::FrameKind::heartbeat || when_full != WhenFull::wait ||
        loop_.on_loop_thread() || err == ENOBUFS) {
      return SendStatus::sent;
    }
    const auto now = Clock::now();
    if (now >= deadline) {
      if (kind != detail::FrameKind::request) return SendStatus::timed_out;
      return SendStatus::sent;  // kept: it ends with its call, which ends now
    }
    pollfd p{fd_.get(), POLLOUT, 0};
    (void)::poll(&p, 1, millis_left(std::min(deadline, now + kMaxInterval)));
  }
}

void ClientChannel::arm(Clock::time_point when) {
  if (timer_ != 0 && timer_at_ <= when) return;
  if (timer_ != 0) loop_.cancel(timer_);
  timer_at_ = when;
  timer_ = loop_.at(when, [weak = weak_from_this()] {
    if (auto self = weak.lock()) self->retransmit();
  });
}

void ClientChannel::retransmit() {
  int failure = 0;
  {
    std::lock_guard lk(mu_);
    timer_ = 0;
    timer_at_ = Clock::time_point::max();
    if (ended_) return;
    const auto now = Clock::now();
    auto earliest = Clock::time_point::max();
    auto again = [&](Outstanding& o) {
      if (o.next <= now) {
        const int err = transmit(o.frame.bytes());
        o.left = o.left || err == 0;
        if (err != 0 && !transient(err)) failure = err;
        o.interval = std::min(o.interval * 2, kMaxInterval);
        o.next = now + o.interval;
      }
      earliest = std::min(earliest, o.next);
    };
    for (auto it = outstanding_.begin(); it != outstanding_.end();) {
      if (now >= it->second.give_up) {
        it = outstanding_.erase(it);  // the call has ended by its deadline
        continue;
      }
      again(it->second);
      ++it;
    }
    if (heartbeat_ && now >= heartbeat_->give_up) heartbeat_.reset();
    if (heartbeat_) again(*heartbeat_);
    if (earliest != Clock::time_point::max()) arm(earliest);
  }
  if (failure != 0) end({StatusCode::unavailable, describe_failure(peer_.address, failure)});
}

void ClientChannel::on_ready(std::uint32_t) {
  receive();
}

void ClientChannel::receive() {
  for (int budget = 0; budget < kReceiveBudget; ++budget) {
    if (ended_ || closing_.load()) return;
    const std::span<std::byte> buf = loop_.scratch();
    const ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      end({StatusCode::unavailable, describe_failure(peer_.address, errno)});
      return;
    }
    if (std::size_t(n) > buf.size()) continue;  // oversized: not from a brine server
    const auto h = parse_server_datagram(buf.first(std::size_t(n)));
    if (!h || h->session != session_) continue;
    {
      std::lock_guard lk(mu_);
      heartbeat_.reset();  // anything from the server answers a heartbeat
    }
    if (h->type == Type::session_unknown) {
      end({StatusCode::unavailable,
           "the server at " + peer_.transport + "://" + peer_.address +
               " does not know this client's session: it restarted, closed the endpoint, or "
               "heard nothing from this client for its heartbeat_timeout"});
      return;
    }
    if (h->type != Type::reply_frame || paused_.load(std::memory_order_relaxed)) continue;
    detail::FrameView f{};
    if (Status s = detail::frame_from_message(h->rest, max_frame_size_, &f); !s.ok()) {
      sink_->on_bad_frame(s, true);
      continue;
    }
    if ((f.kind == detail::FrameKind::reply || f.kind == detail::FrameKind::error) &&
        f.call_id != 0) {
      std::lock_guard lk(mu_);
      outstanding_.erase(f.call_id);
    }
    sink_->on_frame(f);
  }
  // The budget ran out: the socket is level-triggered, so what is left is reported again.
}

void ClientChannel::close(const Status& why, Deadline) {
  if (closing_.exchange(true)) return;
  loop_.post([self = shared_from_this(), why] {
    if (self->ended_) return;
    // The server may free the session now rather than after heartbeat_timeout of silence. (Lost
    // or not, nothing depends on it.)
    std::byte bye[kClientHeader];
    put_client_header(bye, Type::bye, self->session_, self->cookie_);
    (void)::send(self->fd_.get(), bye, sizeof bye, MSG_DONTWAIT | MSG_NOSIGNAL);
    self->end(why);
  });
}

void ClientChannel::end(const Status& why) {
  if (ended_) return;
  ended_ = true;
  closing_.store(true);
  if (registration_) loop_.unwatch(registration_, fd_.get());
  {
    std::lock_guard lk(mu_);
    outstanding_.clear();
    heartbeat_.reset();
    if (timer_ != 0) loop_.cancel(timer_);
    timer_ = 0;
  }
  // The socket stays open until the channel goes: another thread may be sending on it.
  if (auto sink = std::move(sink_)) sink->on_close(why);
}

}  // namespace brine::transport::datagram
