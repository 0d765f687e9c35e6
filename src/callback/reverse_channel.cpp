#include "callback/reverse_channel.hpp"

namespace brine::detail {

ReverseChannel::ReverseChannel(const std::shared_ptr<transport::Channel>& carrier,
                               event::EventLoop& loop, std::shared_ptr<event::EventLoop> keep)
    : carrier_(carrier),
      peer_([&] {
        transport::PeerInfo peer = carrier->peer();
        peer.silent_departure = false;  // the carrier's policy hears its departure
        return peer;
      }()),
      max_frame_length_(carrier->max_frame_length()),
      loop_(loop),
      keep_(std::move(keep)) {}

void ReverseChannel::deliver(const FrameView& frame) {
  if (closed_.load(std::memory_order_acquire)) return;
  std::lock_guard lk(mu_);
  if (!sink_ || finished_) return;
  delivering_.store(std::this_thread::get_id(), std::memory_order_relaxed);
  sink_->on_frame(frame);
  delivering_.store(std::thread::id{}, std::memory_order_relaxed);
}

void ReverseChannel::start(std::shared_ptr<transport::ChannelSink> sink) {
  bool closed = false;
  {
    std::lock_guard lk(mu_);
    sink_ = std::move(sink);
    started_ = true;
    closed = closed_.load();
  }
  if (closed) finish();  // closed before it started: the sink still gets its one close
}

transport::SendStatus ReverseChannel::send(Buffer&& frame, transport::Deadline deadline,
                                           transport::WhenFull when_full) {
  if (closed_.load(std::memory_order_acquire)) return transport::SendStatus::closed;
  const auto carrier = carrier_.lock();
  if (!carrier) return transport::SendStatus::closed;
  return carrier->send(std::move(frame), deadline, when_full);
}

void ReverseChannel::close(const Status& why, transport::Deadline) {
  if (delivering_.load(std::memory_order_relaxed) == std::this_thread::get_id()) {
    // Its sink asked, from inside a delivery (this thread holds mu_): it hears of it after
    // returning.
    if (closed_.exchange(true)) return;
    why_ = why;
    loop_.post([self = shared_from_this()] { self->finish(); });
    return;
  }
  {
    std::lock_guard lk(mu_);  // after a delivery in progress: why_ is set before closed_ is seen
    if (closed_.exchange(true)) return;
    why_ = why;
  }
  finish();
}

void ReverseChannel::finish() {
  std::shared_ptr<transport::ChannelSink> sink;
  Status why;
  {
    std::lock_guard lk(mu_);  // after any delivery in progress
    if (finished_ || !started_) return;
    finished_ = true;
    sink = std::move(sink_);
    why = why_;
  }
  if (sink) sink->on_close(why);
}

std::size_t ReverseChannel::queued_bytes() const {
  const auto carrier = carrier_.lock();
  return carrier ? carrier->queued_bytes() : 0;
}

std::size_t ReverseChannel::max_frame_length() const {
  return max_frame_length_;
}

namespace {
std::shared_ptr<ReverseChannel> read(std::mutex& mu,
                                     const std::shared_ptr<ReverseChannel>& channel) {
  std::lock_guard lk(mu);
  return channel;
}
}  // namespace

bool deliver_reverse(std::mutex& mu, const std::shared_ptr<ReverseChannel>& channel,
                     const FrameView& frame) {
  const auto to = read(mu, channel);
  if (to) to->deliver(frame);
  return to != nullptr;
}

void close_reverse(std::mutex& mu, const std::shared_ptr<ReverseChannel>& channel,
                   const Status& why) {
  if (const auto to = read(mu, channel)) to->close(why, transport::Clock::now());
}

std::shared_ptr<transport::Channel> ReverseDialer::dial(transport::Deadline, std::string& error) {
  std::lock_guard lk(mu_);
  if (!channel_) {
    error = "the client's connection, which its objects came over, has ended";
    return nullptr;
  }
  return std::exchange(channel_, nullptr);
}

}  // namespace brine::detail
