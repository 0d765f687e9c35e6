#include "stream/stream_core.hpp"

#include "wire/control.hpp"

namespace brine::detail {

void fail_stream(StreamCore& core, const Status& why) noexcept {
  // Every StreamCore brine makes is a FlowStream.
  if (auto* flow = dynamic_cast<FlowStream*>(&core)) (void)flow->end(why);
}

FlowStream::FlowStream(std::uint64_t call_id, CodecId codec, const DecodeLimits& limits,
                       std::size_t max_frame_size, std::uint32_t window, Deadline deadline) noexcept
    : call_id_(call_id),
      codec_(codec),
      limits_(limits),
      max_frame_size_(max_frame_size),
      window_(std::max(window, kInitialStreamWindow)),
      deadline_(deadline),
      allowed_in_(kInitialStreamWindow),
      allowed_out_(kInitialStreamWindow) {}

void FlowStream::grant_initial() {
  std::uint32_t extra = 0;
  {
    std::lock_guard lk(mu_);
    if (window_ > kInitialStreamWindow && !read_closed_ && !ended_) {
      extra = window_ - kInitialStreamWindow;
      allowed_in_ += extra;
    }
  }
  if (extra != 0) (void)send_frame(wire::credit_frame(call_id_, extra));
}

Buffer FlowStream::take(Buffer& payload) {
  Buffer front = std::move(items_.front());
  items_.pop_front();
  unacked_ += kHeaderSize + front.size();
  payload = std::move(front);
  // Credit what was read, in steps of half the window, while more may come.
  if (read_closed_ || ended_ || unacked_ < window_ / 2) return {};
  const auto grant = std::uint32_t(unacked_);
  allowed_in_ += grant;
  unacked_ = 0;
  return wire::credit_frame(call_id_, grant);
}

StreamCore::Io FlowStream::read(Buffer& payload, bool wait) {
  Buffer credit;
  {
    Lock lk(mu_);
    while (items_.empty() && !read_closed_ && !ended_) {
      if (!wait) return Io::would_block;
      if (cv_.wait_until(lk, deadline_) == std::cv_status::timeout && items_.empty() &&
          !read_closed_ && !ended_) {
        // The stream's own timer ends it at the deadline; this is only the wait's bound.
        lk.unlock();
        (void)end({StatusCode::deadline_exceeded, "the stream's deadline passed"});
        return Io::ended;
      }
    }
    if (items_.empty()) return Io::ended;
    credit = take(payload);
  }
  if (!credit.empty()) (void)send_frame(std::move(credit));
  return Io::done;
}

StreamCore::Io FlowStream::send_item(Buffer& frame) {
  return send_frame(std::move(frame)) ? Io::done : Io::ended;
}

StreamCore::Io FlowStream::write(Buffer& frame, bool wait) {
  if (!finish_frame(frame, max_frame_size_)) return Io::too_large;
  if (items_sealed_) {
    wire::seal_encoding(frame, item_encoding_, item_policy_, item_accepts_, max_frame_size_);
  }
  {
    Lock lk(mu_);
    while (!write_closed() && !can_write()) {
      if (!wait) return Io::would_block;
      if (cv_.wait_until(lk, deadline_) == std::cv_status::timeout && !write_closed() &&
          !can_write()) {
        lk.unlock();
        (void)end({StatusCode::deadline_exceeded, "the stream's deadline passed"});
        return Io::ended;
      }
    }
    if (write_closed()) return Io::ended;
    sent_ += cost(frame.bytes());
  }
  return send_item(frame);
}

bool FlowStream::park_write(std::coroutine_handle<> h, Buffer& frame, Io& io) {
  {
    Lock lk(mu_);
    if (!write_closed() && !can_write()) {
      parked_writer_ = h;
      parked_frame_ = &frame;
      parked_write_io_ = &io;
      return true;
    }
    if (write_closed()) {
      io = Io::ended;
      return false;
    }
    sent_ += cost(frame.bytes());
  }
  io = send_item(frame);
  return false;
}

bool FlowStream::park_read(std::coroutine_handle<> h, Buffer& payload, Io& io) {
  Buffer credit;
  {
    Lock lk(mu_);
    if (items_.empty() && !read_closed_ && !ended_) {
      parked_reader_ = h;
      parked_payload_ = &payload;
      parked_read_io_ = &io;
      return true;
    }
    if (items_.empty()) {
      io = Io::ended;
      return false;
    }
    credit = take(payload);
  }
  io = Io::done;
  if (!credit.empty()) (void)send_frame(std::move(credit));
  return false;
}

std::uint64_t FlowStream::cost(std::span<const std::byte> frame) noexcept {
  if (!has_encoding(frame)) return frame.size() - kPrefixSize;
  // An item has no method and no other field: the encoding field follows the header.
  if (frame[kFixedSize] == std::byte{0}) return frame.size() - kPrefixSize - 2;
  return kHeaderSize + load_be32(frame.data() + kFixedSize + 2);
}

bool FlowStream::deliver_item(const FrameView& f, wire::EncodingSet accepted) {
  std::coroutine_handle<> reader;
  Buffer credit;
  {
    std::lock_guard lk(mu_);
    if (received_ >= allowed_in_) return false;  // sent beyond its window
    // As its sender counted it: the payload decompressed (take() credits the same).
    received_ += kHeaderSize + (f.encoding != 0 ? f.decoded_size : f.payload.size());
    if (read_closed_ || ended_) return true;  // nobody reads any more: dropped
  }
  Buffer item;
  if (f.encoding != 0) {
    if (!wire::inflate(f, accepted, max_frame_size_, item).ok()) return false;
  } else {
    item.reserve(f.payload.size());
    item.append(f.payload.data(), f.payload.size());
  }
  {
    std::lock_guard lk(mu_);
    if (read_closed_ || ended_) return true;
    items_.push_back(std::move(item));
    if (parked_reader_) {
      reader = std::exchange(parked_reader_, {});
      credit = take(*parked_payload_);
      *parked_read_io_ = Io::done;
    }
  }
  cv_.notify_all();
  if (!credit.empty()) (void)send_frame(std::move(credit));
  if (reader) resume(reader);
  return true;
}

bool FlowStream::deliver_credit(std::uint32_t bytes) {
  std::coroutine_handle<> writer;
  Buffer* frame = nullptr;
  Io* io = nullptr;
  {
    std::lock_guard lk(mu_);
    // A window past 2^31 bytes over what was sent is no window at all: a broken peer. (What was
    // sent may exceed the window by one item, so the difference is not computed unsigned.)
    if (allowed_out_ + bytes > sent_ + 0x80000000u) return false;
    allowed_out_ += bytes;
    if (parked_writer_ && can_write() && !write_closed()) {
      writer = std::exchange(parked_writer_, {});
      frame = parked_frame_;
      io = parked_write_io_;
      sent_ += cost(frame->bytes());
    }
  }
  cv_.notify_all();
  if (writer) {
    *io = send_item(*frame);
    resume(writer);
  }
  return true;
}

void FlowStream::deliver_end() {
  std::coroutine_handle<> reader;
  {
    std::lock_guard lk(mu_);
    read_closed_ = true;
    if (parked_reader_ && items_.empty()) {
      reader = std::exchange(parked_reader_, {});
      *parked_read_io_ = Io::ended;
    }
  }
  cv_.notify_all();
  if (reader) resume(reader);
}

void FlowStream::close_write() {
  std::lock_guard lk(mu_);
  write_closed_ = true;
}

bool FlowStream::end(const Status& why) {
  std::coroutine_handle<> reader;
  std::coroutine_handle<> writer;
  {
    std::lock_guard lk(mu_);
    if (ended_) return false;
    ended_ = true;
    status_ = why;
    if (parked_reader_ && items_.empty()) {
      reader = std::exchange(parked_reader_, {});
      *parked_read_io_ = Io::ended;
    }
    if (parked_writer_) {
      writer = std::exchange(parked_writer_, {});
      *parked_write_io_ = Io::ended;
    }
  }
  cv_.notify_all();
  if (reader) resume(reader);
  if (writer) resume(writer);
  return true;
}

Status FlowStream::status() const {
  std::lock_guard lk(mu_);
  return status_;
}

bool FlowStream::finished() const noexcept {
  std::lock_guard lk(mu_);
  return ended_;
}

}  // namespace brine::detail
