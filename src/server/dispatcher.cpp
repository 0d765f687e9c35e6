#include "server/dispatcher.hpp"

#include "server/connection.hpp"
#include "server/server_call.hpp"
#include "wire/contract.hpp"
#include "wire/control.hpp"

namespace brine {
namespace detail {
namespace {

using Clock = std::chrono::steady_clock;

// The call the current thread is running, for brine::this_call.
thread_local const CallState* current_call = nullptr;

// Adaptive inline (ServerOptions::inline_fast_handlers; docs/design.md, "Adaptive inline").
// A worker run this short counts towards running the method on the I/O thread...
constexpr auto kFastRun = std::chrono::microseconds(50);
// ...and an inline run longer than this sends it back to the workers.
constexpr auto kSlowInline = std::chrono::microseconds(500);
// The fast runs in a row needed after each demotion grow fourfold, up to this.
constexpr std::uint32_t kMostFastRunsNeeded = 1u << 20;

// Keeps the objects a factory returns in the calling peer's session, and finds the objects
// that arguments name.
class PeerContext final : public CallContext {
 public:
  PeerContext(ServerConnection& conn, const Registry& registry, Counters& counters,
              const ServerOptions& options, CodecId codec)
      : conn_(conn), registry_(registry), counters_(counters), options_(options), codec_(codec) {}
  std::string keep(std::shared_ptr<void> object, const InterfaceTable& table) override {
    Session* session = conn_.session();
    if (session == nullptr) {
      throw RpcError(StatusCode::unimplemented,
                     "remote references need a direct connection to the server (this call came "
                     "through a broker)");
    }
    std::string name =
        "@" + std::to_string(counters_.next_object.fetch_add(1, std::memory_order_relaxed));
    session->keep(name, ExposedObject{std::move(object), &table});
    return name;
  }
  std::shared_ptr<const RemoteHandle> remote(std::string_view name,
                                             const InterfaceTable& table) override {
    // A method that takes objects may be handed one to call back (over this connection, whose
    // answers its I/O thread reads): never on that thread, even when this one is ours.
    note_onward_call();
    if (auto own = registry_.object(name, conn_.session())) {
      // One of ours, passed back: called in place.
      if (own->table != &table && own->table->name != table.name) {
        throw RpcError(StatusCode::invalid_argument,
                       "the object '" + std::string(name) + "' passed as an argument is a " +
                           std::string(own->table->name) + ", not a " + std::string(table.name));
      }
      return std::make_shared<const RemoteHandle>(std::move(own->self), own->table,
                                                  std::string(name));
    }
    if (name.empty() || name.size() > 64) {
      throw RpcError(StatusCode::invalid_argument, "an object passed as an argument has no name");
    }
    // The caller's: called back over its connection. A client's own objects are owned here
    // (dropping the last copy releases them); a server's objects that a client's callback
    // receives are the server's, owned by the Remote the client got them through.
    auto handle = std::make_shared<const RemoteHandle>(conn_.peer_core(codec_), std::string(name),
                                                       !conn_.serves_for_client());
    if (options_.workers == 0) {
      // (`handle` goes: the client is told to free its object.)
      throw RpcError(StatusCode::failed_precondition,
                     "objects passed as arguments are called back, which needs worker threads: "
                     "with workers = 0 a handler runs on the thread that would read the answer");
    }
    return handle;
  }

 private:
  ServerConnection& conn_;
  const Registry& registry_;
  Counters& counters_;
  const ServerOptions& options_;
  CodecId codec_;
};

Interceptors chain_of(const ServerOptions& o) {
  Interceptors chain;
  if (o.log_calls) chain.push_back(std::make_shared<LoggingInterceptor>("server"));
  if (!o.tokens.empty()) chain.push_back(std::make_shared<TokenCheck>(o.tokens, o.open_methods));
  for (const auto& i : o.interceptors) {
    if (!i) throw std::invalid_argument("ServerOptions::interceptors holds a null interceptor");
    chain.push_back(i);
  }
  return chain;
}

CallInfo info_of(CallExtras& x, const Peer* peer, Clock::time_point deadline) {
  CallInfo info;
  const std::string_view full = x.method;
  const auto dot = full.rfind('.');
  info.object = dot == std::string_view::npos ? std::string_view{} : full.substr(0, dot);
  info.method = dot == std::string_view::npos ? full : full.substr(dot + 1);
  info.stream = x.stream;
  info.oneway = x.oneway;
  info.metadata = &x.metadata;
  info.reply_metadata = &x.reply_metadata;
  info.peer = peer;
  info.deadline = deadline;
  return info;
}

}  // namespace

Dispatcher::Dispatcher(const ServerOptions& options, const Registry& registry, Counters& counters,
                       Metrics& metrics)
    : options_(options),
      compression_(wire::resolve(options.compression, "server")),
      chain_(chain_of(options)),
      registry_(registry),
      counters_(counters),
      metrics_(metrics) {}

Status Dispatcher::intercept_before(const Peer& peer, CallExtras& x, Clock::time_point deadline) {
  CallInfo info = info_of(x, &peer, deadline);
  return run_before(chain_, info, x.asked, Retry::not_run, "server");
}

void Dispatcher::conclude(const CallState& state, const Status& outcome) noexcept {
  CallExtras& x = state.extras;
  if (x.stats != nullptr || x.asked != 0) x.ended = Clock::now();
  if (x.stats != nullptr) {
    try {
      metrics_.record(*std::exchange(x.stats, nullptr), outcome, x.ended - x.started);
    } catch (...) {  // (no memory for the recent errors' list: the counts are in)
    }
  }
  if (x.stream_counted) {
    x.stream_counted = false;
    counters_.streams_open.fetch_sub(1, std::memory_order_relaxed);
  }
  if (x.asked == 0) return;
  CallInfo info = info_of(x, state.peer, state.deadline);
  run_after(chain_, info, x.asked, outcome, x.ended - x.started);
}

void Dispatcher::seal_answer(const CallState& state, Buffer& frame, bool is_reply,
                             const Status& why) const {
  const Metadata& md = state.extras.reply_metadata;
  const bool takes = state.extras.wants_metadata;
  if (!is_reply) {
    make_error_frame(frame, state.call_id, why, options_.max_frame_size, takes ? &md : nullptr);
    return;
  }
  if (!md.empty() && takes &&
      frame.size() - kPrefixSize + metadata_field_size(md) <= options_.max_frame_size) {
    attach_metadata(frame, md);
  }
  if (state.extras.has_encoding) {
    wire::seal_encoding(frame, compression_.pick(state.extras.accepts), compression_,
                        compression_.set, options_.max_frame_size);
  }
}

Dispatcher::~Dispatcher() {
  stop();
}

void Dispatcher::start() {
  if (options_.workers > 0 && !pool_) pool_.emplace(options_.workers);
}

void Dispatcher::stop() {
  if (!pool_) return;
  // Runs what is posted before the threads end (join() without stop()): the connections are
  // closed by now, so queued calls are skipped as cancelled, and a coroutine whose stream ended
  // is resumed to its end instead of being left suspended, its frame never freed.
  pool_->join();
}

bool Dispatcher::in_handler() noexcept {
  return current_call != nullptr;
}

void note_onward_call() noexcept {
  // Unary calls only (a ServerCall, which has a guard, may run on two threads at once, and its
  // shape never runs inline).
  if (current_call != nullptr && current_call->guard == nullptr) {
    current_call->extras.onward = true;
  }
}

bool Dispatcher::on_worker_thread() const {
  return pool_ && pool_->get_executor().running_in_this_thread();
}

void Dispatcher::reply_error(ServerConnection& conn, std::uint64_t call_id, Status status) {
  conn.send(wire::error_frame(call_id, status, options_.max_frame_size));
}

void Dispatcher::call_done() {
  if (live_calls_.fetch_sub(1, std::memory_order_acq_rel) == 1 &&
      draining_.load(std::memory_order_acquire)) {
    std::lock_guard lk(drain_mu_);
    drain_cv_.notify_all();
  }
}

bool Dispatcher::drain(std::chrono::milliseconds timeout) {
  draining_.store(true, std::memory_order_release);
  std::unique_lock lk(drain_mu_);
  return drain_cv_.wait_for(lk, timeout,
                            [&] { return live_calls_.load(std::memory_order_acquire) == 0; });
}

void Dispatcher::dispatch(ServerConnection& conn, const FrameView& f) {
  if (f.kind == FrameKind::cancel) {
    conn.calls().cancel(f.call_id);
    if (auto call = conn.find_call(f.call_id)) {
      call->abandon({StatusCode::cancelled, "cancelled by the caller"});
    }
    return;
  }
  if (f.kind == FrameKind::item || f.kind == FrameKind::end || f.kind == FrameKind::credit) {
    route(conn, f);
    return;
  }
  if (Registry::is_release(f.method)) {
    // "<object>.~release" is a oneway, whatever its codec byte and payload; a request for it
    // is refused unrun, so that every request still gets exactly one answer.
    if (f.kind == FrameKind::request) {
      reply_error(conn, f.call_id,
                  {StatusCode::invalid_argument,
                   "'~release' is sent as a oneway; as a request it is not carried out"});
    } else {
      // The object's destructor is user code: not on the I/O thread (it may call the peer, whose
      // answer that thread reads), but on a worker where there are workers.
      if (auto dropped = Registry::release(f.method, conn.session()); dropped && pool_) {
        asio::post(*pool_, [object = std::move(dropped)]() mutable { object.reset(); });
      }
    }
    return;
  }
  if (f.kind == FrameKind::request && conn.calls().in_use(f.call_id)) {
    // Two answers to one id would be matched to one call: the peer breaks the protocol.
    conn.on_bad_frame({StatusCode::invalid_argument, "call id " + std::to_string(f.call_id) +
                                                         " is already in use by a pending call"},
                      conn.peer().silent_departure);
    return;
  }
  const auto now = Clock::now();  // (one clock read for the deadline, metrics and learning)
  const auto deadline =
      f.timeout_ms == 0 ? Clock::time_point::max() : now + std::chrono::milliseconds(f.timeout_ms);
  CallExtras extras;
  extras.wants_metadata = f.has_metadata;
  extras.stream = f.stream;
  const bool counting = metrics_.enabled();
  extras.started = now;
  Target target;
  // Refuses the call unrun: its interceptors (those asked) see the refusal, the caller gets it.
  auto refuse = [&](Status why) {
    if (counting) {
      counters_.calls_refused.fetch_add(1, std::memory_order_relaxed);
      extras.stats = metrics_.find(f.method, target.handler);
    }
    CallState state;
    state.call_id = f.call_id;
    state.deadline = deadline;
    state.peer = &conn.peer();
    state.extras = std::move(extras);
    conclude(state, why);
    if (f.kind == FrameKind::oneway) return;
    Buffer frame;
    seal_answer(state, frame, false, why);
    conn.send(std::move(frame));
  };
  if (!f.metadata.empty()) {
    if (Status s = check_metadata_limits(f.metadata, options_.metadata_limits); !s.ok()) {
      s.message = "the request's " + s.message;
      return refuse(std::move(s));
    }
    read_metadata(f.metadata, extras.metadata);
  }
  if (!chain_.empty()) {
    extras.method.assign(f.method);
    extras.oneway = f.kind == FrameKind::oneway;
    if (Status s = intercept_before(conn.peer(), extras, deadline); !s.ok()) {
      return refuse(std::move(s));
    }
  }
  // A compressed payload's algorithm and size are checked here; it is decompressed where the
  // call runs (a worker), so that calls waiting for one hold only what arrived.
  if (f.has_encoding) {
    extras.has_encoding = true;
    extras.accepts = f.accepts;
    if (f.encoding != 0) {
      if (Status s = wire::check_encoding(f.encoding, f.decoded_size, compression_.set,
                                          options_.max_frame_size);
          !s.ok()) {
        return refuse(std::move(s));
      }
    }
  }
  if (Status refused = admit(conn, f, target); !refused.ok()) {
    if (refused.retry == Retry::unknown) refused.retry = Retry::not_run;  // refused unrun
    return refuse(std::move(refused));
  }
  if (counting) extras.stats = metrics_.find(f.method, target.handler);
  if (target.handler->shape() != Shape::unary) {
    start_later(conn, f, std::move(target), deadline, std::move(extras));
  } else if (pool_ && !runs_inline(*target.handler)) {
    queue(conn, f, std::move(target), deadline, std::move(extras));
  } else {
    if (pool_) queued_.fetch_sub(1, std::memory_order_relaxed);  // admitted as if queued
    run_inline(conn, f, target, deadline, std::move(extras));
  }
}

void Dispatcher::route(ServerConnection& conn, const FrameView& f) {
  // A frame for a call that has ended (its items and credits may still be on the way) is
  // dropped: the call it belonged to is over.
  auto call = conn.find_call(f.call_id);
  if (!call) return;
  if (!call->on_stream_frame(f)) {
    call->abandon({StatusCode::invalid_argument, "protocol error on the stream"});
    conn.on_bad_frame({StatusCode::invalid_argument,
                       "stream frame for call " + std::to_string(f.call_id) +
                           (call->stream() == nullptr
                                ? " which is not a stream"
                                : " breaks its flow control (sent beyond the window, a credit "
                                  "overflowing it, an item in another codec, or one that does "
                                  "not decompress)")},
                      conn.peer().silent_departure);
  }
}

void Dispatcher::start_later(ServerConnection& conn, const FrameView& f, Target&& target,
                             Clock::time_point deadline, CallExtras&& extras) {
  const bool stream = target.handler->shape() == Shape::stream;
  if (stream) {
    counters_.streams_total.fetch_add(1, std::memory_order_relaxed);
    counters_.streams_open.fetch_add(1, std::memory_order_relaxed);
    extras.stream_counted = true;
  }
  auto call = std::make_shared<ServerCall>(*this, conn.shared_from_this(), f, deadline, stream,
                                           options_, std::move(extras));
  if (!call->open()) {
    if (pool_) queued_.fetch_sub(1, std::memory_order_relaxed);
    return;
  }
  if (!pool_) {
    run_later(*call, target, {f.payload, f.encoding, f.decoded_size});
    return;
  }
  Buffer request(f.payload.size());
  request.append(f.payload.data(), f.payload.size());
  asio::post(*pool_,
             [this, call = std::move(call), target = std::move(target),
              request = std::move(request), encoding = f.encoding, decoded = f.decoded_size] {
               run_later(*call, target, {request.bytes(), encoding, decoded});
               queued_.fetch_sub(1, std::memory_order_relaxed);
             });
}

Status Dispatcher::unpack(Payload packed, Buffer& plain,
                          std::span<const std::byte>& payload) const {
  payload = packed.bytes;
  if (packed.encoding == 0) return {};
  Status s = wire::inflate(packed.encoding, packed.decoded_size, packed.bytes, compression_.set,
                           options_.max_frame_size, plain);
  if (s.ok()) payload = plain.bytes();
  return s;
}

void Dispatcher::run_later(ServerCall& call, const Target& target, Payload packed) {
  if (call.finished()) return;  // cancelled, or past its deadline, before it started
  auto conn = call.connection();
  if (!conn) return;
  Buffer plain;
  std::span<const std::byte> request;
  if (Status s = unpack(packed, plain, request); !s.ok()) {
    (void)call.fail(s);
    return;
  }
  const CallState* outer = std::exchange(current_call, &call.state());
  try {
    PeerContext ctx(*conn, registry_, counters_, options_, call.codec());
    target.handler->start(target.self, request, call.shared_from_this(), ctx);
  } catch (...) {
    (void)call.fail(status_of(std::current_exception()));
  }
  current_call = outer;
}

void Dispatcher::resume(std::coroutine_handle<> h, std::shared_ptr<ServerCall> call) {
  auto run = [h, call = std::move(call)] {
    const CallState* outer = std::exchange(current_call, &call->state());
    h.resume();
    current_call = outer;
  };
  if (pool_) {
    asio::post(*pool_, std::move(run));
  } else {
    run();
  }
}

Status Dispatcher::admit(ServerConnection& conn, const FrameView& f, Target& target) {
  if (draining_.load(std::memory_order_relaxed)) {
    return {StatusCode::unavailable, "the server is shutting down", Retry::not_run};
  }
  if (Status s = registry_.resolve(f.method, CodecId(f.codec), conn.session(), target); !s.ok()) {
    return s;
  }
  const bool stream_method = target.handler->shape() == Shape::stream;
  if (f.kind == FrameKind::oneway && target.handler->shape() != Shape::unary) {
    return {StatusCode::failed_precondition,
            "'" + std::string(f.method) + "' answers later or streams: call it, not as a oneway"};
  }
  if (f.stream && !conn.carries_streams()) {
    return {StatusCode::unimplemented, conn.why_no_streams()};
  }
  if (f.kind == FrameKind::request && f.stream != stream_method) {
    return {StatusCode::failed_precondition,
            stream_method ? "'" + std::string(f.method) +
                                "' is a stream method: open it as a stream (Client::stream, "
                                "upload or bidi)"
                          : "'" + std::string(f.method) +
                                "' is not a stream method: call it without opening a stream"};
  }
  if (Status s = check_contract(conn, f, target); !s.ok()) return s;
  if (!conn.admit()) {
    return {StatusCode::resource_exhausted,
            "more than " + std::to_string(options_.max_inflight_per_connection) +
                " calls in flight on this connection",
            Retry::later};
  }
  live_calls_.fetch_add(1, std::memory_order_relaxed);
  if (pool_ && queued_.fetch_add(1, std::memory_order_relaxed) >= options_.max_queued_calls) {
    queued_.fetch_sub(1, std::memory_order_relaxed);
    conn.release();
    call_done();
    return {StatusCode::resource_exhausted,
            "server busy: " + std::to_string(options_.max_queued_calls) +
                " calls are waiting for a worker",
            Retry::later};
  }
  return {};
}

Status Dispatcher::check_contract(ServerConnection& conn, const FrameView& f,
                                  const Target& target) {
  // A handler without a contract (brine's built-ins: they read no arguments) checks none.
  if (target.handler->contract().text.empty()) return {};
  ContractRefusals* refusals = conn.refusals();
  if (f.contract.empty()) {
    return refusals != nullptr ? refusals->find(f.method, CodecId(f.codec)) : Status{};
  }
  const bool oneway = f.kind == FrameKind::oneway;
  Status s =
      wire::check_contract(f.method, f.fingerprint, f.contract, target.handler->contract(), oneway);
  if (s.code == StatusCode::failed_precondition) {
    // The method may have a handler for the client's types in another codec (one per type
    // family): name those codecs, as a refusal for the codec does, so that the client calls
    // again in one of them.
    const CodecSet others =
        registry_.other_codecs_accepting(f.method, CodecId(f.codec), [&](const HandlerBase& h) {
          return wire::check_contract(f.method, f.fingerprint, f.contract, h.contract(), oneway)
              .ok();
        });
    if (others != 0) s.type = codecs_refusal(others);
  }
  if (s.ok() && refusals != nullptr) refusals->clear(f.method, CodecId(f.codec));
  if (s.code == StatusCode::failed_precondition && refusals != nullptr &&
      !refusals->add(f.method, CodecId(f.codec), s)) {
    conn.fail({StatusCode::failed_precondition,
               "more than " + std::to_string(ContractRefusals::kLimit) +
                   " methods refused for their contracts on this connection"});
  }
  return s;
}

bool Dispatcher::runs_inline(const HandlerBase& handler) const noexcept {
  return options_.inline_fast_handlers && handler.inline_state.on.load(std::memory_order_relaxed);
}

void Dispatcher::learn_from_worker(const HandlerBase& handler, Clock::duration took,
                                   bool onward) noexcept {
  if (!options_.inline_fast_handlers) return;
  auto& st = handler.inline_state;
  if (onward || took >= kFastRun) {
    st.fast.store(0, std::memory_order_relaxed);
    return;
  }
  if (st.fast.fetch_add(1, std::memory_order_relaxed) + 1 >=
      st.needed.load(std::memory_order_relaxed)) {
    st.on.store(true, std::memory_order_relaxed);
  }
}

void Dispatcher::learn_from_inline(const HandlerBase& handler, Clock::duration took,
                                   bool onward) noexcept {
  auto& st = handler.inline_state;
  if (!onward && took <= kSlowInline) return;
  if (!st.on.exchange(false, std::memory_order_relaxed)) return;  // another thread did
  st.fast.store(0, std::memory_order_relaxed);
  const std::uint32_t needed = st.needed.load(std::memory_order_relaxed);
  st.needed.store(std::min(needed * 4, kMostFastRunsNeeded), std::memory_order_relaxed);
  counters_.inline_demotions.fetch_add(1, std::memory_order_relaxed);
}

void Dispatcher::run_inline(ServerConnection& conn, const FrameView& f, const Target& target,
                            Clock::time_point deadline, CallExtras&& extras) {
  CallState state;
  state.deadline = deadline;
  state.call_id = f.call_id;
  state.codec = CodecId(f.codec);
  state.peer = &conn.peer();
  state.extras = std::move(extras);
  const bool registered = conn.calls().add(state);
  // With workers, only a method proved fast comes here: timed, to send it back if it is not.
  std::optional<Buffer> answer = execute(conn, f.kind, CodecId(f.codec), target,
                                         {f.payload, f.encoding, f.decoded_size}, state);
  if (pool_) {
    // From when the request was read to when the call ended (conclude() read the clock if
    // metrics or interceptors are on).
    const auto ended =
        state.extras.ended != Clock::time_point{} ? state.extras.ended : Clock::now();
    counters_.inline_calls.fetch_add(1, std::memory_order_relaxed);
    learn_from_inline(*target.handler, ended - state.extras.started, state.extras.onward);
  }
  if (registered) conn.calls().remove(state);
  if (answer) conn.send(std::move(*answer));
  conn.release();
  call_done();
}

void Dispatcher::queue(ServerConnection& conn, const FrameView& f, Target&& target,
                       Clock::time_point deadline, CallExtras&& extras) {
  // The payload is copied out of the read buffer (which the next read reuses) into a recycled
  // Queued whose buffer has room already.
  std::unique_ptr<Queued> call = take_queued();
  call->conn = conn.shared_from_this();
  call->target = std::move(target);
  call->payload.append(f.payload.data(), f.payload.size());
  call->encoding = f.encoding;
  call->decoded_size = f.decoded_size;
  call->state.deadline = deadline;
  call->state.call_id = f.call_id;
  call->state.codec = CodecId(f.codec);
  call->state.peer = &conn.peer();
  call->state.extras = std::move(extras);
  call->kind = f.kind;
  call->codec = CodecId(f.codec);
  call->registered = conn.calls().add(call->state);
  // Every worker is taken (this call is counted in queued_): it waits, so its deadline may pass
  // before it starts. Answer it then, not when a worker frees up.
  if (f.kind == FrameKind::request && deadline != Clock::time_point::max() &&
      queued_.load(std::memory_order_relaxed) > options_.workers) {
    call->taken = std::make_shared<std::atomic<bool>>(false);
    call->deadline_timer = conn.timers().at(
        deadline, [taken = call->taken, weak = conn.weak_from_this(), state = &call->state,
                   id = f.call_id, limit = options_.max_frame_size, takes = f.has_metadata] {
          auto c = weak.lock();
          // A worker started it, or the connection is gone. (`state` is only touched when the
          // claim succeeds: the worker cannot have recycled it then.)
          if (!c || !c->calls().claim_for_deadline(*taken, *state)) return;
          static const Metadata kNone;
          Buffer frame;
          make_error_frame(frame, id,
                           {StatusCode::deadline_exceeded,
                            "the caller's deadline passed while the call waited for a worker; "
                            "not run",
                            Retry::not_run},
                           limit, takes ? &kNone : nullptr);
          c->send(std::move(frame));
        });
  }
  asio::post(*pool_, [this, call = std::move(call)]() mutable { run_queued(std::move(call)); });
}

void Dispatcher::run_queued(std::unique_ptr<Queued> call) {
  bool answered_late = false;
  if (call->taken) {
    call->conn->timers().cancel(call->deadline_timer);
    answered_late = !call->conn->calls().claim_for_worker(*call->taken);
  }
  std::optional<Buffer> answer;
  if (answered_late) {
    // Answered DEADLINE_EXCEEDED at its deadline already (and taken off the list): not run,
    // and counted as what its caller got.
    counters_.skipped.fetch_add(1, std::memory_order_relaxed);
    conclude(call->state, {StatusCode::deadline_exceeded,
                           "the caller's deadline passed while the call waited for a worker; "
                           "not run",
                           Retry::not_run});
  } else {
    const auto t0 = Clock::now();
    bool handled = false;
    answer =
        execute(*call->conn, call->kind, call->codec, call->target,
                {call->payload.bytes(), call->encoding, call->decoded_size}, call->state, &handled);
    // Only a run of the user's code that returned counts: a call skipped (cancelled, late), or
    // refused in decoding, says nothing of how long the method takes.
    if (handled) {
      learn_from_worker(*call->target.handler, Clock::now() - t0, call->state.extras.onward);
    }
  }
  if (call->registered) call->conn->calls().remove(call->state);
  if (answer) call->conn->send(std::move(*answer));
  queued_.fetch_sub(1, std::memory_order_relaxed);
  call->conn->release();
  call_done();
  recycle(std::move(call));
}

std::unique_ptr<Dispatcher::Queued> Dispatcher::take_queued() {
  {
    std::lock_guard lk(spare_mu_);
    if (!spare_queued_.empty()) {
      auto q = std::move(spare_queued_.back());
      spare_queued_.pop_back();
      return q;
    }
  }
  return std::make_unique<Queued>();
}

void Dispatcher::recycle(std::unique_ptr<Queued> q) noexcept {
  q->conn.reset();
  q->target = {};
  q->registered = false;
  q->taken.reset();
  q->deadline_timer = 0;
  q->state.deadline = Clock::time_point::max();
  q->state.cancelled.store(false, std::memory_order_relaxed);
  q->state.peer = nullptr;
  q->state.extras = {};
  q->state.reset_stop();
  if (q->payload.capacity() > kRecycledPayload) return;  // large: give the memory back
  q->payload.clear();
  std::lock_guard lk(spare_mu_);
  if (spare_queued_.size() < kSpareQueued) spare_queued_.push_back(std::move(q));
}

std::optional<Buffer> Dispatcher::execute(ServerConnection& conn, FrameKind kind, CodecId codec,
                                          const Target& target, Payload packed,
                                          const CallState& state, bool* handled) {
  if (handled != nullptr) *handled = false;
  const std::uint64_t call_id = state.call_id;
  if (state.cancelled.load(std::memory_order_relaxed)) {
    counters_.skipped.fetch_add(1, std::memory_order_relaxed);
    conclude(state, {StatusCode::cancelled, "cancelled by the caller; not run"});
    return std::nullopt;  // the caller has given up and completed the call itself: no reply
  }
  if (state.deadline != Clock::time_point::max() && Clock::now() >= state.deadline) {
    counters_.skipped.fetch_add(1, std::memory_order_relaxed);
    const Status late{StatusCode::deadline_exceeded,
                      "the caller's deadline passed before the call could start; not run",
                      Retry::not_run};
    conclude(state, late);
    if (kind == FrameKind::oneway) return std::nullopt;
    Buffer out;
    seal_answer(state, out, false, late);
    return out;
  }
  Buffer plain;
  std::span<const std::byte> payload;
  if (Status s = unpack(packed, plain, payload); !s.ok()) {
    conclude(state, s);
    if (kind == FrameKind::oneway) return std::nullopt;
    Buffer out;
    seal_answer(state, out, false, s);
    return out;
  }
  Buffer out;
  begin_frame(out, FrameKind::reply, std::uint8_t(codec), {});
  set_call_id(out, call_id);
  const std::size_t reply_start = out.size();
  Status failure;
  const CallState* outer = std::exchange(current_call, &state);  // (nested over mem://)
  try {
    PeerContext ctx(conn, registry_, counters_, options_, codec);
    target.handler->invoke(target.self.get(), codec, payload, options_.decode_limits, out, ctx);
    if (!written_as_promised(codec, out.bytes().subspan(reply_start), options_.decode_limits)) {
      failure = {StatusCode::internal,
                 "the reply holds NaN or Infinity, which strict JSON (json_strict) cannot carry"};
    }
  } catch (...) {
    failure = status_of(std::current_exception());
  }
  current_call = outer;
  const bool cancelled = state.cancelled.load(std::memory_order_relaxed);
  if (handled != nullptr) *handled = failure.ok() && !cancelled;
  if (failure.ok() && !cancelled && kind != FrameKind::oneway &&
      !finish_frame(out, options_.max_frame_size)) {
    failure = {StatusCode::resource_exhausted,
               "reply of " + std::to_string(out.size() - kPrefixSize) +
                   " bytes exceeds the limit of " + std::to_string(options_.max_frame_size),
               Retry::never};
  }
  conclude(state, cancelled ? Status{StatusCode::cancelled, "cancelled by the caller"} : failure);
  if (kind == FrameKind::oneway || cancelled) return std::nullopt;
  seal_answer(state, out, failure.ok(), failure);
  return out;
}

Status status_of(std::exception_ptr error) noexcept {
  try {
    std::rethrow_exception(error);
  } catch (const RpcError& e) {
    Status s = e.status();
    if (s.ok()) s.code = StatusCode::unknown;
    return s;
  } catch (const std::exception& e) {
    StatusCode code = StatusCode::internal;
    if (const std::string* name = registered_exception_name(typeid(e).name(), &code)) {
      return {code, e.what(), *name};  // a typed exception: the client throws it again
    }
    return {StatusCode::internal, e.what(), type_name(typeid(e))};
  } catch (...) {
    return {StatusCode::unknown, "the handler threw something that is not a std::exception"};
  }
}

}  // namespace detail

namespace this_call {
std::chrono::steady_clock::time_point deadline() noexcept {
  const auto* call = detail::current_call;
  return call != nullptr ? call->deadline : std::chrono::steady_clock::time_point::max();
}
std::chrono::milliseconds time_left() noexcept {
  const auto d = deadline();
  if (d == std::chrono::steady_clock::time_point::max()) return std::chrono::milliseconds::max();
  const auto left = d - std::chrono::steady_clock::now();
  if (left <= std::chrono::steady_clock::duration::zero()) return std::chrono::milliseconds(0);
  return std::chrono::duration_cast<std::chrono::milliseconds>(left);
}
std::optional<CodecId> codec() noexcept {
  const auto* call = detail::current_call;
  if (call == nullptr) return std::nullopt;
  return call->codec;
}
const Metadata& metadata() noexcept {
  static const Metadata kNone;
  const auto* call = detail::current_call;
  return call != nullptr ? call->extras.metadata : kNone;
}
void add_reply_metadata(std::string key, std::string value) {
  const auto* call = detail::current_call;
  if (call == nullptr) throw std::logic_error("add_reply_metadata() outside a call");
  if (call->guard != nullptr) {
    std::lock_guard lk(*call->guard);
    call->extras.reply_metadata.add(std::move(key), std::move(value));
  } else {
    call->extras.reply_metadata.add(std::move(key), std::move(value));
  }
}
std::stop_token cancel_token() {
  const auto* call = detail::current_call;
  return call != nullptr ? call->stop_token() : std::stop_token{};
}
const Peer& peer() noexcept {
  static const Peer kNone;
  const auto* call = detail::current_call;
  return call != nullptr && call->peer != nullptr ? *call->peer : kNone;
}
bool cancelled() noexcept {
  const auto* call = detail::current_call;
  if (call == nullptr) return false;
  return call->cancelled.load(std::memory_order_relaxed) ||
         std::chrono::steady_clock::now() >= call->deadline;
}
}  // namespace this_call

}  // namespace brine
