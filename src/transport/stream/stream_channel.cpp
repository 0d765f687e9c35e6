#include "transport/stream/stream_channel.hpp"

#include <poll.h>
#include <sys/eventfd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "transport/stream/socket.hpp"

namespace brine::transport {
namespace {

constexpr std::size_t kMaxParts = 64;  // buffers per gather write
constexpr int kReadBudget = 16;        // reads per readiness event before others get a turn
// A sender that may wait does, while this much is queued for the loop to write (about what a
// socket buffer holds).
constexpr std::size_t kWaitingRoom = 1024 * 1024;

Clock::rep rep(Clock::time_point t) {
  return t.time_since_epoch().count();
}

}  // namespace

StreamChannel::StreamChannel(event::EventLoop& loop, std::unique_ptr<ByteStream> stream,
                             PeerInfo peer, std::size_t max_frame_size, Reader reader)
    : loop_(loop),
      stream_(std::move(stream)),
      peer_(std::move(peer)),
      reader_(reader),
      any_thread_(stream_->any_thread()),
      parser_(max_frame_size) {
  if (reader_ == Reader::caller) {
    if (!any_thread_) throw std::logic_error("a stream that callers read must allow any thread");
    wake_fd_.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!wake_fd_) throw std::system_error(errno, std::generic_category(), "eventfd");
  }
  last_frame_.store(rep(Clock::now()), std::memory_order_relaxed);
}

StreamChannel::~StreamChannel() = default;

void StreamChannel::start(std::shared_ptr<ChannelSink> sink) {
  {
    std::lock_guard lk(state_mu_);
    sink_ = std::move(sink);
  }
  if (reader_ == Reader::loop) {
    loop_.post([self = shared_from_this()] {
      self->arm();
      self->read_on_loop();  // what arrived before the registration
    });
  }
}

std::shared_ptr<ChannelSink> StreamChannel::sink_copy() const {
  std::lock_guard lk(state_mu_);
  return sink_;
}

// --- reading -----------------------------------------------------------------------------------

StreamChannel::Took StreamChannel::read_once() {
  // The loop reads into its scratch buffer while no frame is partly here (frames are parsed in
  // place); a caller reads into the channel's own buffer.
  const bool was_partial = parser_.buffered() > 0;
  const bool in_place = reader_ == Reader::loop && !was_partial;
  const auto space = in_place                  ? loop_.scratch()
                     : reader_ == Reader::loop ? parser_.prepare_rest()
                                               : parser_.prepare();
  IoResult r = stream_->read(space);
  switch (r.kind) {
    case IoResult::done: {
      if (in_place) {
        parser_.feed(space.first(r.bytes));
      } else {
        parser_.commit(r.bytes);
      }
      const auto now = Clock::now();
      last_frame_.store(rep(now), std::memory_order_relaxed);
      const std::size_t before = parser_.buffered();
      deliver_frames();
      const bool completed = parser_.buffered() < before;
      // The deadline of a partial frame runs from its first byte.
      if (parser_.buffered() == 0) {
        partial_since_.store(0, std::memory_order_relaxed);
      } else if (completed || !was_partial) {
        partial_since_.store(rep(now), std::memory_order_relaxed);
      }
      if (broken_) return Took::blocked;
      // A short read drained the socket, unless the peer's close was reported with the event:
      // its EOF comes only with the next read, and no new edge announces it.
      return r.drained && !peer_closed_.load(std::memory_order_relaxed) ? Took::drained
                                                                        : Took::more;
    }
    case IoResult::would_block:
      if (reader_ == Reader::loop) read_wants_write_ = r.wants_write;  // (TLS; loop thread)
      return Took::blocked;
    case IoResult::closed:
      begin_close({StatusCode::unavailable,
                   "connection closed by the peer (" +
                       (peer_.address.empty() ? peer_.transport : peer_.address) + ")"});
      return Took::ended;
    case IoResult::failed:
      begin_close({StatusCode::unavailable, "connection lost: " + r.error});
      return Took::ended;
  }
  return Took::ended;
}

void StreamChannel::deliver_frames() {
  detail::FrameView f{};
  for (;;) {
    if (closing_.load(std::memory_order_relaxed)) return;
    switch (parser_.next(&f)) {
      case detail::FrameParser::Next::need_more:
        return;
      case detail::FrameParser::Next::error:
        broken_ = true;  // the next frame cannot be found: read no more
        sink_->on_bad_frame(parser_.error(), false);
        return;
      case detail::FrameParser::Next::frame:
        sink_->on_frame(f);
        break;
    }
  }
}

void StreamChannel::read_on_loop() {
  if (paused_.load(std::memory_order_relaxed) || closing_.load() || broken_) return;
  {
    std::lock_guard lk(out_mu_);
    corked_ = true;
  }
  Took t = Took::more;
  int reads = 0;
  while (t == Took::more && reads++ < kReadBudget) {
    t = read_once();
    if (paused_.load(std::memory_order_relaxed) || closing_.load() || broken_) break;
  }
  {
    std::lock_guard lk(out_mu_);
    corked_ = false;
  }
  flush_on_loop();  // what the batch produced leaves in one write
  if (t == Took::ended) {
    end();
  } else if (t == Took::more && !paused_.load() && !closing_.load() && !broken_) {
    // Budget used up with more to read: other connections get a turn first.
    loop_.post([self = shared_from_this()] { self->read_on_loop(); });
  } else if (read_wants_write_) {
    arm();
  }
}

void StreamChannel::pause_reading(bool paused) {
  const bool was = paused_.exchange(paused);
  if (was && !paused && reader_ == Reader::loop) {
    loop_.post([self = shared_from_this()] { self->read_on_loop(); });
  }
}

// --- the loop's registration ---------------------------------------------------------------

void StreamChannel::arm() {
  if (closed_.load() || in_on_ready_) return;
  bool out;
  {
    std::lock_guard lk(out_mu_);
    out = write_blocked_;
  }
  out = out || (reader_ == Reader::loop && read_wants_write_);
  std::uint32_t events;
  if (reader_ == Reader::loop) {
    events = EPOLLIN | EPOLLRDHUP | EPOLLET | (out ? EPOLLOUT : 0u);
    if (registration_ && events == armed_) return;
  } else {
    // One-shot: each event disarms it, and re-arming looks at the socket's state then, so a
    // frame that arrived while nobody watched is reported at once.
    const bool in = watching_.load(std::memory_order_seq_cst);
    if (!in && !out) return;
    events = (in ? EPOLLIN | EPOLLRDHUP : 0u) | (out ? EPOLLOUT : 0u) | EPOLLONESHOT;
  }
  try {
    if (!registration_) {
      registration_ = loop_.watch(stream_->fd(), events, shared_from_this());
    } else if (!loop_.rearm(registration_, stream_->fd(), events)) {
      throw std::system_error(errno, std::generic_category(), "epoll_ctl");
    }
    armed_ = events;
  } catch (const std::system_error& e) {
    begin_close({StatusCode::unavailable, std::string("cannot watch the connection: ") + e.what()});
    end();
  }
}

void StreamChannel::on_ready(std::uint32_t events) {
  if (closed_.load()) return;
  const bool error = (events & (EPOLLERR | EPOLLHUP)) != 0;
  const bool in = (events & (EPOLLIN | EPOLLRDHUP)) != 0 || error;
  const bool out = (events & EPOLLOUT) != 0 || error;
  in_on_ready_ = true;
  if ((events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0)
    peer_closed_.store(true, std::memory_order_relaxed);
  if (out) {
    {
      std::lock_guard lk(out_mu_);
      write_blocked_ = false;
    }
    flush_on_loop();
  }
  if (reader_ == Reader::loop) {
    if (in || (out && read_wants_write_)) {
      read_wants_write_ = false;
      read_on_loop();
    }
  } else if (in) {
    // Cleared before trying the role: a caller holding it sees this when it lets go, and asks
    // again (see release_reading).
    watching_.store(false, std::memory_order_seq_cst);
    if (take_reading()) {
      read_available();
      release_reading();
    }
  }
  in_on_ready_ = false;
  arm();  // EPOLLOUT on or off; a reader's request made meanwhile
}

// --- writing -----------------------------------------------------------------------------------

void StreamChannel::enqueue_locked(Buffer&& frame, std::size_t already_written, bool at_front) {
  if (queue_.empty()) last_progress_ = Clock::now();
  queued_ += frame.size() - already_written;
  if (at_front) {
    queue_.push_front(std::move(frame));
    head_written_ = already_written;
  } else {
    if (queue_.empty()) head_written_ = already_written;
    queue_.push_back(std::move(frame));
  }
}

void StreamChannel::consume_locked(std::size_t bytes) {
  queued_ -= bytes;
  while (bytes > 0) {
    const std::size_t in_head = queue_.front().size() - head_written_;
    if (bytes < in_head) {
      head_written_ += bytes;
      return;
    }
    bytes -= in_head;
    queue_.pop_front();
    head_written_ = 0;
  }
}

IoResult StreamChannel::write_queue_locked() {
  while (!queue_.empty()) {
    iovec parts[kMaxParts];
    std::size_t n = 0;
    for (auto it = queue_.begin(); it != queue_.end() && n < kMaxParts; ++it, ++n) {
      const std::size_t skip = n == 0 ? head_written_ : 0;
      parts[n] = {it->data() + skip, it->size() - skip};
    }
    IoResult r = stream_->write({parts, n});
    if (r.kind != IoResult::done) return r;
    consume_locked(r.bytes);
    last_progress_ = Clock::now();
  }
  return IoResult::moved(0);
}

void StreamChannel::request_flush_locked() {
  if (flush_posted_ || write_blocked_) return;  // a flush is coming, or EPOLLOUT will say when
  flush_posted_ = true;
  loop_.post([self = shared_from_this()] { self->flush_on_loop(); });
}

void StreamChannel::flush_on_loop() {
  std::size_t left = 0;
  bool lingered_out = false;  // closing and all written: the close may finish
  bool progressed = false;
  std::string failure;
  {
    std::lock_guard lk(out_mu_);
    flush_posted_ = false;
    if (!writer_ && !corked_ && !queue_.empty() && !write_broken_) {
      const std::size_t before = queued_;
      const IoResult r = write_queue_locked();
      progressed = queued_ < before;
      if (r.kind == IoResult::failed) {
        failure = r.error.empty() ? "write failed" : r.error;
        write_broken_ = true;
      }
      write_blocked_ = !queue_.empty() && r.kind == IoResult::would_block && r.wants_write;
    }
    left = queued_;
    // Looked at together, under the lock senders take: a reply queued after `left` was read
    // and before closing began must not be dropped by an end that `left == 0` would allow.
    lingered_out = left == 0 && closing_.load();
  }
  if (progressed) writable_cv_.notify_all();  // senders waiting for room
  if (!failure.empty()) {
    lost_while_sending(failure);
    return;
  }
  if (reader_ == Reader::loop || left > 0) arm();
  if (progressed) {
    if (const auto sink = sink_copy()) sink->on_sent(left);
  }
  if (lingered_out && !closed_.load()) end();  // a lingering close is done
}

SendStatus StreamChannel::send(Buffer&& frame, Deadline deadline, WhenFull when_full) {
  std::unique_lock lk(out_mu_);
  for (;;) {
    if (closing_.load(std::memory_order_relaxed) || write_broken_) return SendStatus::closed;
    const bool may_write = any_thread_ || loop_.on_loop_thread();
    if (!writer_ && !corked_ && queue_.empty() && may_write) break;  // idle: write now
    if (!may_write && when_full == WhenFull::wait && queued_ >= kWaitingRoom) {
      // Written by the loop only (TLS): a sender that may wait is held back while much waits.
      const bool room = writable_cv_.wait_until(
          lk, deadline, [&] { return closing_.load() || write_broken_ || queued_ < kWaitingRoom; });
      if (!room) return SendStatus::timed_out;
      continue;
    }
    if (when_full == WhenFull::queue || corked_ || !may_write) {
      enqueue_locked(std::move(frame), 0, false);
      if (!writer_ && !corked_) request_flush_locked();
      return SendStatus::sent;
    }
    const bool turn = writable_cv_.wait_until(
        lk, deadline, [&] { return closing_.load() || (!writer_ && !corked_ && queue_.empty()); });
    if (!turn) return SendStatus::timed_out;
  }
  std::size_t written = 0;
  while (written < frame.size()) {
    const iovec part{frame.data() + written, frame.size() - written};
    const IoResult r = stream_->write({&part, 1});
    if (r.kind == IoResult::done) {
      written += r.bytes;
      continue;
    }
    if (r.kind == IoResult::would_block) {
      if (when_full == WhenFull::wait) {
        return write_as_waiting_caller(lk, std::move(frame), written, deadline);
      }
      enqueue_locked(std::move(frame), written, false);
      write_blocked_ = r.wants_write;
      lk.unlock();
      if (loop_.on_loop_thread()) {
        arm();
      } else {
        loop_.post([self = shared_from_this()] { self->arm(); });
      }
      return SendStatus::sent;
    }
    write_broken_ = true;
    lk.unlock();
    lost_while_sending(r.error);
    return SendStatus::closed;
  }
  return SendStatus::sent;
}

SendStatus StreamChannel::write_as_waiting_caller(std::unique_lock<std::mutex>& lk, Buffer&& frame,
                                                  std::size_t written, Deadline deadline) {
  writer_ = true;
  lk.unlock();
  IoResult r = IoResult::blocked(true);
  while (written < frame.size()) {
    if (r.kind == IoResult::would_block) {
      pollfd p{stream_->fd(), POLLOUT, 0};
      const int n = ::poll(&p, 1, millis_left(deadline));
      if (n == 0) break;  // the deadline
      if (n < 0 && errno != EINTR) {
        r = IoResult::broken(std::strerror(errno));
        break;
      }
    }
    const iovec part{frame.data() + written, frame.size() - written};
    r = stream_->write({&part, 1});
    if (r.kind == IoResult::done) {
      written += r.bytes;
    } else if (r.kind != IoResult::would_block) {
      break;
    }
  }
  lk.lock();
  writer_ = false;
  SendStatus status = SendStatus::sent;
  const bool broke = r.kind == IoResult::failed || r.kind == IoResult::closed;
  if (broke) write_broken_ = true;
  if (broke) {
    status = SendStatus::closed;
  } else if (written == 0) {
    status = SendStatus::timed_out;
  } else if (written < frame.size()) {
    // Part of it left: the rest must follow, or the stream would be cut inside a frame.
    enqueue_locked(std::move(frame), written, true);
  }
  if (!queue_.empty() && !corked_) request_flush_locked();
  writable_cv_.notify_all();
  lk.unlock();
  if (broke) lost_while_sending(r.error.empty() ? "closed" : r.error);
  return status;
}

std::size_t StreamChannel::queued_bytes() const {
  std::lock_guard lk(out_mu_);
  return queued_;
}

ChannelProgress StreamChannel::progress() const {
  ChannelProgress p;
  if (const auto r = partial_since_.load(std::memory_order_relaxed); r != 0) {
    p.partial_since = Clock::time_point(Clock::duration(r));
  }
  std::lock_guard lk(out_mu_);
  if (!queue_.empty() || writer_) p.stalled_since = last_progress_;
  return p;
}

// --- the end -----------------------------------------------------------------------------------

void StreamChannel::lost_while_sending(const std::string& error) {
  // The peer may have said why before it went (an error frame, then the close that broke our
  // write): read what it sent first, so that its reason is what the sink learns.
  auto read_then_end = [error](StreamChannel& c) {
    const Status why{StatusCode::unavailable, "connection lost while sending: " + error};
    if (c.reader_ == Reader::loop) {
      c.read_on_loop();
      if (c.begin_close(why)) c.end();
      return;
    }
    if (c.take_reading()) {
      c.read_available();
      if (c.begin_close(why)) c.stream_->shutdown();
      c.finish_close();  // the role is held (and kept)
      return;
    }
    if (c.begin_close(why)) c.end();  // the reader meets the end and finishes
  };
  if (reader_ == Reader::loop) {
    loop_.post([self = shared_from_this(), read_then_end] { read_then_end(*self); });
  } else {
    read_then_end(*this);
  }
}

bool StreamChannel::begin_close(const Status& why) {
  {
    std::lock_guard lk(state_mu_);
    if (closing_.load()) return false;
    close_why_ = why;
    closing_.store(true, std::memory_order_seq_cst);
  }
  std::lock_guard lk(out_mu_);
  writable_cv_.notify_all();  // waiting senders give up
  return true;
}

void StreamChannel::close(const Status& why, Deadline linger_until) {
  if (!begin_close(why)) return;
  if (reader_ == Reader::caller) {
    end();  // a channel that callers read closes at once: what is queued is dropped
    return;
  }
  // Never on_close() from inside a delivery: the loop does it after the current event.
  loop_.post([self = shared_from_this(), linger_until] { self->close_on_loop(linger_until); });
}

void StreamChannel::close_on_loop(Deadline linger_until) {
  if (closed_.load()) return;
  bool pending;
  {
    std::lock_guard lk(out_mu_);
    pending = queued_ > 0;
  }
  if (pending && Clock::now() < linger_until) {
    linger_timer_ = loop_.at(linger_until, [self = shared_from_this()] { self->end(); });
    flush_on_loop();  // ends it once the queue is empty
    return;
  }
  end();
}

void StreamChannel::end() {
  stream_->shutdown();  // wakes a caller in poll(), fails a writer
  if (reader_ == Reader::caller) {
    if (take_reading()) finish_close();  // else the reader sees the end and finishes
    return;
  }
  finish_close();  // loop mode: on the loop thread
}

void StreamChannel::finish_close() {
  if (closed_.exchange(true)) return;
  closing_.store(true);
  stream_->shutdown();
  Status why;
  std::shared_ptr<ChannelSink> sink;
  {
    std::lock_guard lk(state_mu_);
    why = close_why_;
    sink = std::move(sink_);
  }
  {
    std::lock_guard lk(out_mu_);
    queue_.clear();
    queued_ = 0;
    head_written_ = 0;
    writable_cv_.notify_all();
  }
  auto unregister = [](StreamChannel& c) {
    c.loop_.cancel(c.linger_timer_);
    c.loop_.unwatch(c.registration_, c.stream_->fd());
  };
  if (loop_.on_loop_thread()) {
    unregister(*this);
  } else {
    loop_.post([self = shared_from_this(), unregister] { unregister(*self); });
  }
  if (sink) sink->on_close(why);
}

}  // namespace brine::transport
