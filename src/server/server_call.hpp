// ServerCall: a call the server finishes later (internal): an asynchronous handler's (a
// Responder or a Task) or a stream's. The dispatcher makes one when it admits such a call; the
// connection keeps it (by call id) while it runs, to deliver the stream's items, credits and
// end and the caller's cancel, and to end it with the connection.
//
// It finishes exactly once, by whichever comes first: the handler's reply or failure, its
// deadline (a timer answers DEADLINE_EXCEEDED), the caller's cancel (nothing is sent), or the
// connection's end. Finishing gives back what admission counted (the connection's in-flight
// slot, the dispatcher's live call) and ends the stream, so a writer or reader that waits wakes.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>

#include "brine/server.hpp"
#include "server/session.hpp"
#include "stream/stream_core.hpp"

namespace brine::detail {

class Dispatcher;
class ServerConnection;

class ServerCall final : public CallHandle, public std::enable_shared_from_this<ServerCall> {
 public:
  ServerCall(Dispatcher& dispatcher, const std::shared_ptr<ServerConnection>& conn,
             const FrameView& f, std::chrono::steady_clock::time_point deadline, bool stream,
             const ServerOptions& options, CallExtras&& extras);
  ~ServerCall() override;

  // Registers the call with its connection (cancel, items) and arms its deadline. Once, before
  // the handler starts; false if the connection is gone (the call is finished then).
  bool open();
  // The connection, while it lasts.
  std::shared_ptr<ServerConnection> connection() const noexcept { return conn_.lock(); }

  // CallHandle
  CodecId codec() const noexcept override { return codec_; }
  const DecodeLimits& limits() const noexcept override { return options_.decode_limits; }
  Buffer begin_reply() const override;
  bool reply(Buffer&& frame) override;
  bool fail(const Status& why) override;
  bool finished() const noexcept override { return finished_.load(std::memory_order_acquire); }
  bool cancelled() const noexcept override;
  std::chrono::steady_clock::time_point deadline() const noexcept override {
    return state_.deadline;
  }
  StreamCore* stream() noexcept override { return flow_.get(); }

  // --- from the connection ---
  // An item, end or credit frame for this call's stream. False: a protocol error (the frame
  // broke the flow-control rule, or the call is not a stream).
  [[nodiscard]] bool on_stream_frame(const FrameView& f);
  // The caller cancelled, or the connection ended: finish without sending anything.
  void abandon(const Status& why);

  std::uint64_t id() const noexcept { return state_.call_id; }
  const CallState& state() const noexcept { return state_; }

 private:
  class Flow;
  // Finishes the call: `frame` (a reply or an error frame) is sent unless null.
  bool finish(Buffer* frame, const Status& why);

  Dispatcher& dispatcher_;
  const std::weak_ptr<ServerConnection> conn_;
  const ServerOptions& options_;
  const CodecId codec_;
  CallState state_;
  bool registered_ = false;  // in the connection's CallRegistry
  std::unique_ptr<FlowStream> flow_;
  const Peer peer_;             // a copy: the call may outlive its connection (a Responder kept)
  std::recursive_mutex guard_;  // state_.guard: the reply metadata and the interceptors' after()
  std::atomic<std::uint64_t> timer_{0};
  std::atomic<bool> finished_{false};
};

}  // namespace brine::detail
