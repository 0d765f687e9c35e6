#include "server/server_call.hpp"

#include "server/connection.hpp"
#include "server/dispatcher.hpp"
#include "wire/control.hpp"

namespace brine::detail {

class ServerCall::Flow final : public FlowStream {
 public:
  Flow(ServerCall& call, const FrameView& f, const ServerOptions& options)
      : FlowStream(f.call_id, CodecId(f.codec), options.decode_limits, options.max_frame_size,
                   std::uint32_t(std::min<std::size_t>(options.stream_window, 0x40000000)),
                   call.state_.deadline),
        call_(call) {}

 private:
  bool send_frame(Buffer&& frame) override {
    auto conn = call_.conn_.lock();
    if (!conn || call_.finished()) return false;
    conn->send(std::move(frame));
    return true;
  }
  void resume(std::coroutine_handle<> h) override {
    call_.dispatcher_.resume(h, call_.shared_from_this());
  }

  ServerCall& call_;
};

ServerCall::ServerCall(Dispatcher& dispatcher, const std::shared_ptr<ServerConnection>& conn,
                       const FrameView& f, std::chrono::steady_clock::time_point deadline,
                       bool stream, const ServerOptions& options, CallExtras&& extras)
    : dispatcher_(dispatcher),
      conn_(conn),
      options_(options),
      codec_(CodecId(f.codec)),
      peer_(conn->peer()) {
  state_.deadline = deadline;
  state_.call_id = f.call_id;
  state_.codec = codec_;
  state_.peer = &peer_;
  state_.extras = std::move(extras);
  state_.guard = &guard_;
  if (stream) {
    flow_ = std::make_unique<Flow>(*this, f, options);
    if (state_.extras.has_encoding) {
      const wire::Compression& c = dispatcher.compression();
      flow_->compress_items(c.pick(state_.extras.accepts), c, c.set);
    }
  }
}

ServerCall::~ServerCall() {
  // Only a call that never opened can get here unfinished: its admission is given back.
  if (!finished()) (void)finish(nullptr, {StatusCode::cancelled, "the call was dropped"});
}

bool ServerCall::open() {
  auto conn = conn_.lock();
  if (!conn) return finish(nullptr, {StatusCode::unavailable, "the connection closed"}), false;
  registered_ = conn->calls().add(state_);
  if (!conn->keep_call(shared_from_this())) {
    (void)finish(nullptr, {StatusCode::unavailable, "the connection closed"});
    return false;
  }
  if (flow_) flow_->grant_initial();
  if (state_.deadline != std::chrono::steady_clock::time_point::max()) {
    timer_.store(conn->timers().at(state_.deadline, [weak = weak_from_this()] {
      if (auto call = weak.lock()) {
        (void)call->fail({StatusCode::deadline_exceeded,
                          "the caller's deadline passed before the call finished"});
      }
    }));
    if (finished()) conn->timers().cancel(timer_.exchange(0));
  }
  return true;
}

Buffer ServerCall::begin_reply() const {
  Buffer frame;
  begin_frame(frame, FrameKind::reply, std::uint8_t(codec_), {});
  set_call_id(frame, state_.call_id);
  return frame;
}

bool ServerCall::reply(Buffer&& frame) {
  if (finished()) return false;
  if (!written_as_promised(codec_, frame.bytes().subspan(kFixedSize), options_.decode_limits)) {
    return fail({StatusCode::internal,
                 "the reply holds NaN or Infinity, which strict JSON (json_strict) cannot carry"});
  }
  if (!finish_frame(frame, options_.max_frame_size)) {
    return fail({StatusCode::resource_exhausted,
                 "reply of " + std::to_string(frame.size() - kPrefixSize) +
                     " bytes exceeds the limit of " + std::to_string(options_.max_frame_size),
                 Retry::never});
  }
  return finish(&frame, {});
}

bool ServerCall::fail(const Status& why) {
  if (finished()) return false;
  Buffer frame;  // made by finish(), with the reply metadata
  return finish(&frame, why);
}

void ServerCall::abandon(const Status& why) {
  state_.cancel();
  (void)finish(nullptr, why);
}

bool ServerCall::cancelled() const noexcept {
  return finished() || state_.cancelled.load(std::memory_order_relaxed) ||
         std::chrono::steady_clock::now() >= state_.deadline;
}

bool ServerCall::finish(Buffer* frame, const Status& why) {
  if (finished_.exchange(true, std::memory_order_acq_rel)) return false;
  {
    std::lock_guard lk(guard_);  // the handler may still be adding reply metadata
    dispatcher_.conclude(state_, why);
    if (frame != nullptr) dispatcher_.seal_answer(state_, *frame, why.ok(), why);
  }
  auto conn = conn_.lock();
  if (const auto timer = timer_.exchange(0); timer != 0 && conn) conn->timers().cancel(timer);
  if (flow_) (void)flow_->end(why);
  if (conn) {
    if (registered_) conn->calls().remove(state_);
    conn->forget_call(state_.call_id, this);
    if (frame != nullptr) conn->send(std::move(*frame));
    conn->release();
  }
  dispatcher_.call_done();
  return true;
}

bool ServerCall::on_stream_frame(const FrameView& f) {
  if (!flow_) return false;
  switch (f.kind) {
    case FrameKind::item:
      return f.codec == std::uint8_t(codec_) &&
             flow_->deliver_item(f, dispatcher_.compression().set);
    case FrameKind::end:
      flow_->deliver_end();
      return true;
    case FrameKind::credit:
      return flow_->deliver_credit(wire::credit_of(f));
    default:
      return false;
  }
}

}  // namespace brine::detail
