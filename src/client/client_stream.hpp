// ClientStream: a stream call on the client (internal). Its items and windows are a
// FlowStream; its end is the call's completion (the CallTable's exactly-once rule), which the
// server's last reply or error, the deadline, a cancel or the connection's end brings.
#pragma once

#include <memory>

#include "brine/client.hpp"
#include "event/completion.hpp"
#include "stream/stream_core.hpp"

namespace brine::detail {

class ClientConnection;

class ClientStream final : public FlowStream,
                           public ClientStreamCore,
                           public std::enable_shared_from_this<ClientStream> {
 public:
  ClientStream(std::uint64_t call_id, CodecId codec, const ClientOptions& options,
               Deadline deadline);

  // The connection it runs on (before the request is sent).
  void attach(const std::shared_ptr<ClientConnection>& conn) { conn_ = conn; }
  // The call ended with `status` (`payload`: the last reply's). Once.
  void on_end(const Status& status, std::span<const std::byte> payload);

  // ClientStreamCore
  StreamCore& items() noexcept override { return *this; }
  void close_write() override;
  void cancel() noexcept override;
  Status wait_end(Buffer& payload) override;
  bool park_end(std::coroutine_handle<> h) override;
  Status end_status(Buffer& payload) const override;

 private:
  bool send_frame(Buffer&& frame) override;
  // A parked coroutine resumes on the thread that delivers: the client's I/O thread (or the one
  // that ended the stream).
  void resume(std::coroutine_handle<> h) override { h.resume(); }

  std::weak_ptr<ClientConnection> conn_;
  mutable std::mutex end_mu_;
  bool ended_ = false;                    // (end_mu_)
  bool write_closed_ = false;             // (end_mu_)
  Status end_;                            // (end_mu_)
  Buffer end_payload_;                    // (end_mu_)
  std::coroutine_handle<> end_waiter_{};  // (end_mu_)
  event::Completion ended_signal_;
};

// The call-table entry of a stream: its completion ends the stream. A refusal of the stream's
// codec (the server serves the method in others) is learnt for the next stream, as for calls.
class StreamCompletion final : public PendingCall {
 public:
  StreamCompletion(std::shared_ptr<ClientStream> stream, ClientCore& core, std::string_view object,
                   std::string_view method, const Contract& contract)
      : stream_(std::move(stream)),
        core_(core),
        object_(object),
        method_(method),
        contract_(contract) {}
  void complete(Status status, std::span<const std::byte> payload) noexcept override {
    if (!status.ok()) {
      try {
        (void)core_learn_codecs(core_, object_, method_, contract_, stream_->codec(), status);
      } catch (...) {
        // Out of memory: the next stream is refused the same way and tries again.
      }
    }
    stream_->on_end(status, payload);
  }

 private:
  std::shared_ptr<ClientStream> stream_;
  ClientCore& core_;  // outlives its calls' completions
  std::string object_;
  std::string method_;
  const Contract& contract_;
};

}  // namespace brine::detail
