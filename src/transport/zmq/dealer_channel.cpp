#include "transport/zmq/dealer_channel.hpp"

namespace brine::transport::zmq_transport {
namespace {
constexpr int kReceiveBudget = 256;  // messages per turn before other work of the loop
// A sender that may wait does, while this much waits to be handed to libzmq.
constexpr std::size_t kWaitingRoom = 1024 * 1024;
}  // namespace

DealerChannel::DealerChannel(event::EventLoop& loop, std::string uri, const ClientOptions& options)
    : loop_(loop),
      uri_(std::move(uri)),
      max_frame_size_(options.max_frame_size),
      socket_(context(), zmq::socket_type::dealer) {
  const auto sep = uri_.find("://");
  peer_.transport = uri_.substr(0, sep);
  peer_.address = sep == std::string::npos ? uri_ : uri_.substr(sep + 3);
  set_common_options(socket_, max_frame_size_, options.heartbeat_interval,
                     options.heartbeat_timeout);
  // Queue nothing on a pipe that is not connected: frames wait in queue_ instead, where one
  // whose call has ended can still be dropped.
  socket_.set(zmq::sockopt::immediate, 1);
  monitor_ = std::make_unique<Monitor>(socket_);
  socket_.connect(endpoint_of(uri_));
}

DealerChannel::~DealerChannel() {
  monitor_.reset();
  socket_.close();
}

void DealerChannel::start(std::shared_ptr<ChannelSink> sink) {
  sink_ = std::move(sink);
  loop_.post([self = shared_from_this()] {
    try {
      self->socket_watch_.watch(self->loop_, self->socket_, self);
      self->monitor_watch_.watch(self->loop_, self->monitor_->socket(), self);
    } catch (const std::exception& e) {
      self->end({StatusCode::unavailable, std::string("cannot watch the socket: ") + e.what()});
      return;
    }
    self->process();
  });
}

void DealerChannel::on_ready(std::uint32_t) {
  process();
}

void DealerChannel::process() {
  for (int pass = 0; pass < 8; ++pass) {
    if (ended_) return;
    handle_monitor();
    if (ended_) return;
    const bool exhausted = !receive();
    if (ended_) return;
    flush();
    if (exhausted) {
      loop_.post([self = shared_from_this()] { self->process(); });  // others get a turn
      return;
    }
    // A send or receive may have taken the socket's signal: look before sleeping again.
    const int events = socket_.get(zmq::sockopt::events);
    bool backlog;
    {
      std::lock_guard lk(out_mu_);
      backlog = !queue_.empty();
    }
    if ((events & ZMQ_POLLIN) == 0 && !((events & ZMQ_POLLOUT) != 0 && backlog)) return;
  }
  loop_.post([self = shared_from_this()] { self->process(); });
}

void DealerChannel::handle_monitor() {
  while (const int event = monitor_->next_event()) {
    if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
      connected_ = true;
    } else if (event == ZMQ_EVENT_CONNECT_RETRIED && !connected_) {
      end({StatusCode::unavailable, "cannot connect to " + uri_});
    } else if (event == ZMQ_EVENT_DISCONNECTED) {
      receive();  // replies that arrived before the server left still count
      end({StatusCode::unavailable, "connection to " + uri_ + " lost"});
    }
    if (ended_) return;
  }
}

bool DealerChannel::receive() {
  for (int budget = 0; budget < kReceiveBudget; ++budget) {
    if (ended_ || closing_.load()) return true;
    zmq::message_t m;
    if (!socket_.recv(m, zmq::recv_flags::dontwait)) return true;
    if (m.more()) {
      while (m.more() && socket_.recv(m, zmq::recv_flags::dontwait)) {
      }
      sink_->on_bad_frame({StatusCode::invalid_argument, "a multipart message"}, true);
      continue;
    }
    detail::FrameView f{};
    if (Status s = detail::frame_from_message(bytes_of(m), max_frame_size_, &f); !s.ok()) {
      sink_->on_bad_frame(s, true);
      continue;
    }
    if (paused_.load(std::memory_order_relaxed)) continue;
    sink_->on_frame(f);
  }
  return false;
}

void DealerChannel::flush() {
  std::lock_guard lk(out_mu_);
  flush_posted_ = false;
  const auto now = Clock::now();
  while (!queue_.empty() && !ended_) {
    Outgoing& o = queue_.front();
    if (o.drop_at <= now) {  // its caller stopped waiting before it could leave
      queued_ -= o.frame.size();
      queue_.pop_front();
      continue;
    }
    const std::size_t size = o.frame.size();
    zmq::message_t m = message_of(std::move(o.frame));
    if (!socket_.send(m, zmq::send_flags::dontwait)) {
      // Not connected (yet) or the pipe is full: keep it. The message took the bytes: take them
      // back (rare, so a copy).
      Buffer back;
      back.append(m.data(), m.size());
      o.frame = std::move(back);
      return;
    }
    queued_ -= size;
    last_progress_ = now;
    queue_.pop_front();
    room_.notify_all();
  }
}

SendStatus DealerChannel::send(Buffer&& frame, Deadline deadline, WhenFull when_full) {
  std::unique_lock lk(out_mu_);
  if (closing_.load()) return SendStatus::closed;
  if (when_full == WhenFull::wait && queued_ >= kWaitingRoom) {
    // Not connected, or the server does not read: a sender that may wait is held back.
    if (!room_.wait_until(lk, deadline,
                          [&] { return closing_.load() || queued_ < kWaitingRoom; })) {
      return SendStatus::timed_out;
    }
    if (closing_.load()) return SendStatus::closed;
  }
  if (queue_.empty()) last_progress_ = Clock::now();
  queued_ += frame.size();
  queue_.push_back({std::move(frame), when_full == WhenFull::wait ? deadline : Deadline::max()});
  if (!flush_posted_) {
    flush_posted_ = true;
    loop_.post([self = shared_from_this()] {
      if (self->ended_) return;
      self->flush();
      self->process();
    });
  }
  return SendStatus::sent;
}

void DealerChannel::close(const Status& why, Deadline) {
  {
    std::lock_guard lk(out_mu_);
    if (closing_.exchange(true)) return;
    close_why_ = why;
    room_.notify_all();
  }
  loop_.post([self = shared_from_this()] {
    Status why_now;
    {
      std::lock_guard lk(self->out_mu_);
      why_now = self->close_why_;
    }
    self->end(why_now);
  });
}

void DealerChannel::end(const Status& why) {
  if (ended_) return;
  ended_ = true;
  closing_.store(true);
  socket_watch_.unwatch(loop_);
  monitor_watch_.unwatch(loop_);
  monitor_.reset();
  socket_.close();
  {
    std::lock_guard lk(out_mu_);
    queue_.clear();
    queued_ = 0;
    room_.notify_all();
  }
  if (auto sink = std::move(sink_)) sink->on_close(why);
}

std::size_t DealerChannel::queued_bytes() const {
  std::lock_guard lk(out_mu_);
  return queued_;
}

ChannelProgress DealerChannel::progress() const {
  ChannelProgress p;
  std::lock_guard lk(out_mu_);
  if (!queue_.empty()) p.stalled_since = last_progress_;
  return p;
}

}  // namespace brine::transport::zmq_transport
