#include "client/client_stream.hpp"

#include "client/connection.hpp"
#include "wire/control.hpp"

namespace brine::detail {

ClientStream::ClientStream(std::uint64_t call_id, CodecId codec, const ClientOptions& options,
                           Deadline deadline)
    : FlowStream(call_id, codec, options.decode_limits, options.max_frame_size,
                 std::uint32_t(std::min<std::size_t>(options.stream_window, 0x40000000)),
                 deadline) {}

bool ClientStream::send_frame(Buffer&& frame) {
  auto conn = conn_.lock();
  if (!conn || conn->dead()) return false;
  // Queued, never waiting: the window bounds what one stream can queue, and a frame may be
  // sent from the I/O thread (a resumed coroutine), which must not wait for itself.
  conn->send_control(std::move(frame));
  return true;
}

void ClientStream::on_end(const Status& status, std::span<const std::byte> payload) {
  std::coroutine_handle<> waiter;
  {
    std::lock_guard lk(end_mu_);
    if (ended_) return;
    ended_ = true;
    end_ = status;
    end_payload_.append(payload.data(), payload.size());
    waiter = std::exchange(end_waiter_, {});
  }
  (void)end(status);  // items: reads return what is here, then end; writes fail
  if (auto conn = conn_.lock()) conn->forget_stream(call_id(), this);
  ended_signal_.set();
  if (waiter) waiter.resume();
}

void ClientStream::close_write() {
  {
    std::lock_guard lk(end_mu_);
    if (write_closed_ || ended_) return;
    write_closed_ = true;
  }
  FlowStream::close_write();
  (void)send_frame(wire::end_frame(call_id()));
}

void ClientStream::cancel() noexcept {
  if (auto conn = conn_.lock()) {
    conn->cancel(call_id());  // completes the call with CANCELLED (on_end) and tells the server
  } else {
    on_end({StatusCode::cancelled, "cancelled by the caller"}, {});
  }
}

Status ClientStream::wait_end(Buffer& payload) {
  // The call's deadline timer ends it; a little past that is only this wait's own bound.
  if (!ended_signal_.sleep_until(deadline() + std::chrono::seconds(1))) {
    cancel();
    ended_signal_.sleep();
  }
  return end_status(payload);
}

bool ClientStream::park_end(std::coroutine_handle<> h) {
  std::lock_guard lk(end_mu_);
  if (ended_) return false;
  end_waiter_ = h;
  return true;
}

Status ClientStream::end_status(Buffer& payload) const {
  std::lock_guard lk(end_mu_);
  payload.clear();
  payload.append(end_payload_.data(), end_payload_.size());
  return end_;
}

}  // namespace brine::detail
