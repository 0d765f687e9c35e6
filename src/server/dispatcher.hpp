// The dispatcher (internal): runs the calls that connections hand it, inline or on the worker
// pool, within the server's limits, and sends each reply back to the connection it came from.
//
// It knows nothing of transports: a connection (connection.hpp) gives it frames and takes
// replies. The call's path: ServerConnection::on_frame -> dispatch -> (pool) -> execute ->
// handler -> ServerConnection::send.
#pragma once

#include <atomic>
#include <condition_variable>
#include <coroutine>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "brine/detail/frame.hpp"
#include "brine/server.hpp"
#include "brine_asio.hpp"
#include "server/metrics.hpp"
#include "server/registry.hpp"
#include "server/session.hpp"
#include "wire/compression.hpp"

namespace brine::detail {

class ServerConnection;
class ServerCall;

// Figures shared by the server's parts (ServerStats).
struct Counters {
  std::atomic<std::size_t> objects_live{0};
  std::atomic<std::uint64_t> next_object{1};
  std::atomic<std::uint64_t> skipped{0};
  std::atomic<std::uint64_t> refused{0};
  std::atomic<std::uint64_t> timed_out{0};
  std::atomic<std::uint64_t> tls_failed{0};
  // For ServerMetrics:
  std::atomic<std::uint64_t> calls_refused{0};  // answered unrun
  std::atomic<std::uint64_t> connections_total{0};
  std::atomic<std::uint64_t> bytes_in{0};
  std::atomic<std::uint64_t> bytes_out{0};
  std::atomic<std::uint64_t> streams_open{0};
  std::atomic<std::uint64_t> streams_total{0};
  std::atomic<std::uint64_t> inline_calls{0};      // adaptive inline: calls run on I/O threads
  std::atomic<std::uint64_t> inline_demotions{0};  // methods sent back to the workers
};

class Dispatcher {
 public:
  Dispatcher(const ServerOptions& options, const Registry& registry, Counters& counters,
             Metrics& metrics);
  ~Dispatcher();

  // Starts the worker pool (workers > 0). Before any dispatch.
  void start();
  // Joins the pool once its work is done (the connections are closed by then, so queued calls
  // are skipped as cancelled and resumed coroutines run to their end).
  void stop();
  bool on_worker_thread() const;
  // True on a thread that is running a handler (a worker, an I/O thread, or a caller's thread
  // delivering over mem://).
  static bool in_handler() noexcept;

  // A request, oneway or cancel frame from `conn`; `f` is borrowed for the call.
  void dispatch(ServerConnection& conn, const FrameView& f);

  // Graceful stop: from now on new requests are answered UNAVAILABLE. Then waits up to
  // `timeout` for the calls admitted before to finish; false if some still run.
  bool drain(std::chrono::milliseconds timeout);
  std::size_t live_calls() const { return live_calls_.load(std::memory_order_relaxed); }

  // A call admitted by dispatch() has finished (run, skipped or failed).
  void call_done();
  // A call has ended with `outcome` (once): counted in the metrics, and the interceptors'
  // after() for a call whose before() they ran.
  void conclude(const CallState& state, const Status& outcome) noexcept;
  // The answer's frame for a call that ends with `frame` (a reply; null: an error) or `why`:
  // the reply with the call's reply metadata attached where it fits, or the error frame.
  void seal_answer(const CallState& state, Buffer& frame, bool is_reply, const Status& why) const;
  // The compression this server accepts and answers with (ServerOptions::compression).
  const wire::Compression& compression() const noexcept { return compression_; }
  // Resumes a handler's coroutine that waited on `call`'s stream: on a worker (inline when
  // workers == 0), with brine::this_call set to the call.
  void resume(std::coroutine_handle<> h, std::shared_ptr<ServerCall> call);

 private:
  // A call waiting for a worker: what the worker needs. Recycled with its payload buffer, so a
  // call handed to the pool allocates nothing of its own.
  struct Queued {
    std::shared_ptr<ServerConnection> conn;
    Target target;
    Buffer payload;  // as it arrived: compressed when encoding is not 0
    std::uint8_t encoding = 0;
    std::uint32_t decoded_size = 0;
    CallState state;
    FrameKind kind = FrameKind::request;
    CodecId codec = CodecId::cereal;
    bool registered = false;  // in the connection's CallRegistry
    // A request that had to wait for a worker is answered DEADLINE_EXCEEDED at its deadline by a
    // timer on its connection's loop; whichever of worker and timer sets `taken` first has it.
    std::shared_ptr<std::atomic<bool>> taken;
    std::uint64_t deadline_timer = 0;
  };

  // The interceptors' before(); the refusal, if one refused.
  Status intercept_before(const Peer& peer, CallExtras& extras,
                          std::chrono::steady_clock::time_point deadline);
  // Finds what the frame calls and counts it in the limits: OK, or why it is refused.
  Status admit(ServerConnection& conn, const FrameView& f, Target& target);
  // The frame's contract against the target's, or the refusal recorded for its method.
  Status check_contract(ServerConnection& conn, const FrameView& f, const Target& target);
  void run_inline(ServerConnection& conn, const FrameView& f, const Target& target,
                  std::chrono::steady_clock::time_point deadline, CallExtras&& extras);
  void queue(ServerConnection& conn, const FrameView& f, Target&& target,
             std::chrono::steady_clock::time_point deadline, CallExtras&& extras);
  void run_queued(std::unique_ptr<Queued> call);
  // Adaptive inline: whether a unary call of `handler` runs on the I/O thread, and what a run
  // on a worker or inline (`took`, and whether it called onward) teaches.
  bool runs_inline(const HandlerBase& handler) const noexcept;
  void learn_from_worker(const HandlerBase& handler, std::chrono::steady_clock::duration took,
                         bool onward) noexcept;
  void learn_from_inline(const HandlerBase& handler, std::chrono::steady_clock::duration took,
                         bool onward) noexcept;
  // Runs the call; returns its reply or error frame, or nothing (a oneway, a cancelled call).
  // The caller takes the call off the connection's list before sending it: once the answer is
  // out, the peer may use its id again.
  // A request's payload as it arrived: compressed (encoding not 0, decompressed where the call
  // runs) or not.
  struct Payload {
    std::span<const std::byte> bytes;
    std::uint8_t encoding = 0;
    std::uint32_t decoded_size = 0;
  };
  // Runs a unary call; *handled (when given) says whether the user's code ran and returned.
  std::optional<Buffer> execute(ServerConnection& conn, FrameKind kind, CodecId codec,
                                const Target& target, Payload packed, const CallState& state,
                                bool* handled = nullptr);
  void reply_error(ServerConnection& conn, std::uint64_t call_id, Status status);
  // A call of a deferred or stream method: a ServerCall, started on a worker (or inline).
  void start_later(ServerConnection& conn, const FrameView& f, Target&& target,
                   std::chrono::steady_clock::time_point deadline, CallExtras&& extras);
  void run_later(ServerCall& call, const Target& target, Payload packed);
  // The payload to decode: `packed` as it is, or decompressed into `plain`.
  Status unpack(Payload packed, Buffer& plain, std::span<const std::byte>& payload) const;
  // An item, end, credit or cancel for a call the connection keeps.
  void route(ServerConnection& conn, const FrameView& f);
  std::unique_ptr<Queued> take_queued();
  void recycle(std::unique_ptr<Queued> q) noexcept;

  const ServerOptions& options_;
  const wire::Compression compression_;
  const Interceptors chain_;  // logging, token check, then ServerOptions::interceptors
  const Registry& registry_;
  Counters& counters_;
  Metrics& metrics_;
  mutable std::optional<asio::thread_pool> pool_;  // (get_executor() is not const)
  std::atomic<std::size_t> queued_{0};             // calls posted to the pool and not yet finished
  std::atomic<std::size_t> live_calls_{0};         // calls admitted and not yet finished
  std::atomic<bool> draining_{false};
  std::mutex drain_mu_;
  std::condition_variable drain_cv_;

  static constexpr std::size_t kSpareQueued = 256;
  static constexpr std::size_t kRecycledPayload = 64 * 1024;
  std::mutex spare_mu_;
  std::vector<std::unique_ptr<Queued>> spare_queued_;
};

}  // namespace brine::detail
