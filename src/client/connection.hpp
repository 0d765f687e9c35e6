// ClientConnection: the client's connection policy over one channel, whatever the transport
// (internal).
//
// It owns the calls pending on the channel (CallTable) and completes each exactly once: by its
// reply or error frame, its deadline (a blocking caller times out by itself; asynchronous calls
// get a loop timer), its cancel (a cancel frame tells the server), or the end of the channel. It
// sends a heartbeat whenever it has sent nothing for heartbeat_interval and declares the channel
// dead when nothing arrived for heartbeat_timeout. Frames of kinds a server never sends, and
// malformed ones, end it.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "brine/client.hpp"
#include "client/call_table.hpp"
#include "event/completion.hpp"
#include "event/loop.hpp"
#include "transport/channel.hpp"
#include "wire/names.hpp"

namespace brine::detail {

using transport::Deadline;

// A blocking caller's slot: wraps the typed one, and says when it is filled.
struct Waiter final : PendingCall {
  explicit Waiter(PendingCall& wrapped) : inner(wrapped) {
    reply_metadata = wrapped.reply_metadata;
  }
  void complete(Status status, std::span<const std::byte> payload) noexcept override {
    inner.complete(std::move(status), payload);
    done.set();
  }
  PendingCall& inner;
  event::Completion done;
};

class ClientStream;
class ReverseChannel;
class ServerConnection;
struct CallbackHost;
struct InterfaceTable;

class ClientConnection final : public transport::ChannelSink,
                               public std::enable_shared_from_this<ClientConnection> {
 public:
  ClientConnection(std::shared_ptr<transport::Channel> channel, event::EventLoop& loop,
                   const ClientOptions& options);
  // Starts the channel and the heartbeats.
  void start();

  // --- calls ---
  // Registers a call (owned: an asynchronous call's). False if the connection is dead.
  bool add(std::uint64_t id, PendingCall* call, std::unique_ptr<PendingCall>& owned);
  // Cancels call `id` when `token` is stopped (at once if it already is). After add().
  void watch_cancel(std::uint64_t id, const std::stop_token& token);
  // Arms the deadline timer of an asynchronous call. After add(). `tell_server`: a cancel
  // frame goes to the server when it fires (a stream, which the server would otherwise keep
  // running until its own timer).
  void arm_deadline(std::uint64_t id, Deadline deadline, bool tell_server = false);
  // The streams on this connection, by call id, to which item and credit frames go. add_stream
  // after add(); a stream forgets itself when it ends.
  void add_stream(std::uint64_t id, std::shared_ptr<ClientStream> stream);
  void forget_stream(std::uint64_t id, const ClientStream* stream);
  bool carries_streams() const { return channel_->carries_streams(); }
  std::string why_no_streams() const { return channel_->why_no_streams(); }
  TakenCall take(std::uint64_t id) { return calls_.take(id); }
  // Completes call `id` (if still pending) with `status`.
  void complete(std::uint64_t id, const Status& status);
  // Completes call `id` with CANCELLED, if still pending, and tells the server.
  void cancel(std::uint64_t id);

  transport::SendStatus send(Buffer&& frame, Deadline deadline, transport::WhenFull when_full);
  // A small frame no caller waits for (cancel, release): queued, never waits.
  void send_control(Buffer&& frame);
  // Waits until `w` is completed or `deadline` passes (false): reading the channel itself where
  // the channel allows it, else spinning for `spin` and then sleeping.
  bool wait_for(Waiter& w, Deadline deadline, std::chrono::microseconds spin);
  // An asynchronous call was sent: make sure someone reads its reply.
  void expect_reply();
  // Before a new call: takes in what arrived while nobody read (the server's close). False if
  // the connection is dead.
  bool refresh();

  // Marks the connection dead, fails every pending call with `status` and closes the channel.
  void fail(const Status& status);
  bool dead() const { return dead_.load(std::memory_order_acquire); }
  Status death() const;
  std::size_t pending_count() const { return calls_.size(); }
  const transport::PeerInfo& peer() const { return channel_->peer(); }
  // The largest frame length the channel's transport carries (transport::Channel).
  std::size_t max_frame_length() const { return channel_->max_frame_length(); }
  // Whether a frame of `method` carrying its contract was sent on this connection (later calls
  // of it go without), and recording that one was.
  // Kept per codec (a request in another codec may reach another handler: one per type family)
  // with the fingerprint sent: a call of the method with other types carries its own.
  bool contract_sent(std::string_view method, std::uint8_t codec, std::uint64_t fingerprint) const;
  void mark_contract_sent(std::string_view method, std::uint8_t codec, std::uint64_t fingerprint);
  // The server refused a call of `method` before checking its contract: send it again.
  void forget_contract(std::string_view method, std::uint8_t codec);
  // The compression algorithms the server has said it accepts (the encoding field of its last
  // reply on this connection); none until then.
  std::uint8_t server_accepts() const noexcept {
    return server_accepts_.load(std::memory_order_relaxed);
  }
  // Waits (bounded) until the channel has delivered its end.
  void wait_closed(std::chrono::milliseconds timeout);

  // This connection's number among its client's (from 1; Connector sets it before start()).
  std::uint64_t serial() const { return serial_; }
  void set_serial(std::uint64_t serial) { serial_ = serial; }
  // Keeps `object` for the server to call back over this connection, served by `host`, and
  // returns its name. Throws RpcError: the connection is dead, or its transport cannot carry
  // calls both ways (datagrams).
  std::string export_object(std::shared_ptr<void> object, const InterfaceTable& table,
                            CallbackHost& host);
  // Frees an object export_object() kept (the call that passed it was not run).
  void unexport(const std::string& name);

  // transport::ChannelSink
  void on_frame(const FrameView& f) override;
  void on_bad_frame(const Status& why, bool recoverable) override;
  void on_close(const Status& why) override;
  bool awaiting_frames() const override {
    return calls_.size() > 0 || serving_.load(std::memory_order_relaxed);
  }

 private:
  using Clock = std::chrono::steady_clock;
  void complete(TakenCall taken, const Status& status, std::span<const std::byte> payload);
  void arm_heartbeat();
  void beat();
  void on_stream_frame(const FrameView& f);

  const std::shared_ptr<transport::Channel> channel_;
  event::EventLoop& loop_;
  const std::chrono::milliseconds heartbeat_interval_;
  const std::chrono::milliseconds heartbeat_timeout_;
  const MetadataLimits metadata_limits_;
  const std::uint8_t accepts_;        // compression algorithms this client takes in answers
  const std::size_t max_frame_size_;  // bounds a decompressed payload
  std::atomic<std::uint8_t> server_accepts_{0};
  CallTable calls_;
  std::atomic<bool> dead_{false};
  mutable std::mutex death_mu_;
  Status death_;
  std::atomic<Clock::rep> last_received_{0};
  std::atomic<Clock::rep> last_sent_{0};
  event::EventLoop::TimerId heartbeat_ = 0;  // (death_mu_)
  mutable std::mutex contracts_mu_;
  std::array<std::unordered_map<std::string, std::uint64_t, NameHash, std::equal_to<>>,
             kCodecSlots>
      contracts_sent_;  // by codec id, method -> fingerprint (contracts_mu_)
  mutable std::mutex streams_mu_;
  std::unordered_map<std::uint64_t, std::shared_ptr<ClientStream>> streams_;  // (streams_mu_)
  std::mutex closed_mu_;
  std::condition_variable closed_cv_;
  bool closed_ = false;  // the channel delivered on_close (closed_mu_)
  std::uint64_t serial_ = 0;
  // The objects this client passed over the connection, served to the server (export_object).
  mutable std::mutex back_mu_;
  std::shared_ptr<ReverseChannel> back_channel_;   // (back_mu_)
  std::shared_ptr<ServerConnection> back_server_;  // (back_mu_)
  std::atomic<bool> serving_{false};
  void end_serving(const Status& why);
};

}  // namespace brine::detail
