// The CallerReads side of StreamChannel: a thread waiting for a frame reads the socket itself
// (plain sockets of a client), and the loop reads only while frames are awaited that no caller
// reads. The reading role (an atomic flag) says who may use the parser; the hand-over between a
// caller and the loop is the subject of docs/design.md, "A blocking caller reads its own reply".
#include <poll.h>

#include <cerrno>

#include "transport/stream/stream_channel.hpp"

namespace brine::transport {
namespace {
constexpr Clock::duration kFresh = std::chrono::milliseconds(1);
Clock::rep rep(Clock::time_point t) {
  return t.time_since_epoch().count();
}
}  // namespace

void StreamChannel::read_available() {
  for (;;) {
    if (closing_.load() || broken_) return;
    const Took t = read_once();
    if (t == Took::more) continue;
    if (t == Took::ended) finish_close();  // the role is held: we may deliver the end
    return;
  }
}

void StreamChannel::read_as_caller(event::Completion& done, Deadline deadline,
                                   std::chrono::microseconds spin) {
  // Not spinning, the reply is rarely in yet: sleep in poll() before the first recv().
  bool wait_first = spin.count() <= 0;
  const auto spin_until = wait_first ? Clock::time_point{} : Clock::now() + spin;
  while (!done.is_set()) {
    if (closing_.load() || broken_) return;
    if (wait_first) {
      wait_first = false;
      if (!sleep_until_readable(deadline)) return;
      continue;
    }
    const Took t = read_once();
    if (t == Took::more) continue;
    if (t == Took::ended) {
      finish_close();
      return;
    }
    if (done.is_set()) return;
    if (Clock::now() < spin_until) continue;
    if (!sleep_until_readable(deadline)) return;
  }
}

bool StreamChannel::sleep_until_readable(Deadline deadline) {
  const auto now = Clock::now();
  if (now >= deadline) return false;
  pollfd fds[2] = {{stream_->fd(), POLLIN, 0}, {wake_fd_.get(), POLLIN, 0}};
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
  (void)::poll(fds, 2, int(std::min<std::int64_t>(ms, 60000)));
  if ((fds[1].revents & POLLIN) != 0) {
    std::uint64_t count = 0;
    (void)!::read(wake_fd_.get(), &count, sizeof count);
  }
  return true;
}

void StreamChannel::release_reading() {
  // Sequentially consistent on both sides of the hand-over with the loop (on_ready clears
  // `watching_` before it tries the role; this drops the role before it looks at `watching_`),
  // so a frame that is awaited is never left unread.
  reading_.store(false, std::memory_order_seq_cst);
  if (closing_.load(std::memory_order_seq_cst)) {
    if (!closed_.load() && take_reading()) finish_close();  // the role is kept: nobody reads
    return;
  }
  if (!watching_.load(std::memory_order_seq_cst)) {
    const auto sink = sink_copy();
    if (sink && sink->awaiting_frames()) expect();
  }
}

bool StreamChannel::read_until(event::Completion& done, Deadline deadline,
                               std::chrono::microseconds spin) {
  for (;;) {
    if (done.settled()) return true;
    if (closing_.load()) return done.sleep_until(deadline);  // the sink is failing its calls
    if (!take_reading()) return done.sleep_until(deadline);  // the reader completes it
    read_as_caller(done, deadline, spin);
    release_reading();
    if (done.settled()) return true;
    if (Clock::now() >= deadline) return false;
    // Not done: being completed by another thread (a cancel), or the channel is closing.
  }
}

void StreamChannel::refresh() {
  const auto since = rep(Clock::now()) - last_frame_.load(std::memory_order_relaxed);
  if (since <= kFresh.count() || watching_.load(std::memory_order_relaxed)) return;
  if (!take_reading()) return;
  read_available();
  release_reading();
}

void StreamChannel::expect() {
  if (reader_ != Reader::caller) return;
  if (watching_.exchange(true, std::memory_order_seq_cst)) return;
  if (loop_.on_loop_thread()) {
    arm();
  } else {
    loop_.post([self = shared_from_this()] { self->arm(); });
  }
}

void StreamChannel::wake_reader() {
  if (!wake_fd_) return;
  const std::uint64_t one = 1;
  (void)!::write(wake_fd_.get(), &one, sizeof one);
}

}  // namespace brine::transport
