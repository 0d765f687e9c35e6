// Server: serves typed handlers on any number of endpoints.
//
//   brine::Server server({.workers = 4});
//   server.handle("add", [](const AddRequest& r) { return AddReply{r.a + r.b}; });
//   std::string uri = server.listen("tcp://127.0.0.1:0");   // the real port is in `uri`
//   server.start();        // returns; or run() to block until stop()
//
// Remote objects: expose<I>("calc", impl) serves an implementation of an interface declared with
// BRINE_INTERFACE (brine/interface.hpp); clients call it through Client::remote<I>("calc").
//
// Handlers: a callable taking one request (by value or const&) and returning the response. The
// codecs a handler serves follow from its types (a protobuf message type serves "protobuf", a
// cereal-serialisable struct serves "cereal"), so one server can serve the same method name in
// several codecs by registering one handler per type family. What a handler throws reaches the
// caller: RpcError with its own code; any other std::exception as INTERNAL with what() and the
// exception's type name; anything else as UNKNOWN.
//
// Threading: handlers run on a pool of `workers` threads, or inline on the I/O thread when
// workers == 0 (lowest latency; a slow handler then delays other calls). Register handlers before
// start(); listen() and stop() may be called at any time, from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "brine/buffer.hpp"
#include "brine/client.hpp"
#include "brine/codec.hpp"
#include "brine/compression.hpp"
#include "brine/context.hpp"
#include "brine/detail/frame.hpp"
#include "brine/interface.hpp"
#include "brine/method.hpp"
#include "brine/metrics.hpp"
#include "brine/status.hpp"
#include "brine/stream.hpp"
#include "brine/task.hpp"

namespace brine {

// TLS for tls:// endpoints (OpenSSL; TLS 1.2 or newer). Files are PEM.
struct TlsServerOptions {
  std::string certificate_file;  // this server's certificate chain
  std::string private_key_file;  // its key
  // Non-empty: every client must present a certificate that chains to these CAs (mutual TLS).
  std::string client_ca_file;
};

struct ServerOptions {
  // Threads that run handlers; 0 runs them inline on the I/O thread.
  std::size_t workers = 4;
  // With workers: a unary method whose calls have proved fast (64 in a row ran under 50 us on a
  // worker and called nothing onward) runs on the I/O thread that read it, saving the hand-over
  // to a worker (a thread wake-up: most of a small call's cost); one such call that takes over
  // 500 us, or calls onward, sends the method back to the workers, and it must prove itself
  // again over four times as many calls. docs/design.md, "Adaptive inline". Config key
  // inline_fast_handlers.
  bool inline_fast_handlers = true;
  // Threads that run socket I/O. Minimum 1.
  std::size_t io_threads = 1;
  // Largest frame accepted or sent (bytes after the length prefix): 1024 to 2^31 - 1.
  std::size_t max_frame_size = detail::kDefaultMaxFrameSize;
  // The codecs served, by name: each method is served in those of them its types can use. Empty
  // (the default): every codec this build knows. A request in a codec its method is not served in
  // gets UNIMPLEMENTED naming the codecs it is served in (which a brine client then uses:
  // docs/wire-format.md, "Codec ids"); unknown names make the constructor throw
  // std::invalid_argument.
  std::vector<std::string> codecs{};
  DecodeLimits decode_limits{};
  // ZeroMQ peers, whose departure shows only as silence: one that sent nothing (not even a
  // heartbeat, which brine clients send every interval when idle) for heartbeat_timeout is
  // dropped, its remote references freed and its calls cancelled. Also libzmq's own ZMTP
  // heartbeats.
  std::chrono::milliseconds heartbeat_interval{1000};
  std::chrono::milliseconds heartbeat_timeout{3000};
  // Permissions of the socket files this server creates (unix:///path, zmq+ipc:///path):
  // connecting needs write permission, so the default 0600 lets only this user in. Abstract unix
  // names have no file and no permissions.
  unsigned unix_socket_mode = 0600;
  // Calls (requests and oneways) one stream connection may have running or waiting at once;
  // beyond it a request is answered RESOURCE_EXHAUSTED at once (a oneway is dropped), so a client
  // that pipelines without bound cannot queue unbounded work.
  std::size_t max_inflight_per_connection = 4096;
  // Calls waiting for or running on a worker, over the whole server (all transports); beyond it,
  // the same answer. Ignored when workers == 0 (calls run as they are read).
  std::size_t max_queued_calls = 65536;
  // Stream connections open at once; one more is sent a RESOURCE_EXHAUSTED error frame (call id
  // 0) and closed.
  std::size_t max_connections = 10000;
  // Remote objects (references a factory method returned) one connection may hold at once; a
  // factory call beyond it fails with RESOURCE_EXHAUSTED, so a client cannot fill the server's
  // memory with objects it never releases.
  std::size_t max_objects_per_connection = 10000;
  // A stream connection must deliver its first complete frame within this, and every frame whose
  // first byte has arrived must be complete within frame_timeout; otherwise the connection is
  // closed (a peer that trickles bytes or sends nothing cannot hold a slot). frame_timeout also
  // bounds how long a reply may wait for a peer that does not read.
  std::chrono::milliseconds first_frame_timeout{10000};
  std::chrono::milliseconds frame_timeout{30000};
  // A stream connection with no call running that has received nothing, not even a heartbeat,
  // for this long is closed. brine clients send a heartbeat every heartbeat_interval, so this
  // only closes dead, stopped or heartbeat-less peers.
  std::chrono::milliseconds idle_timeout{60000};
  // Reply bytes queued for one stream connection beyond which the server stops reading that
  // connection until the peer has read (TCP back-pressure), so a client that pipelines requests
  // without reading replies cannot grow the server's memory.
  std::size_t max_outbound_bytes = 4u * 1024 * 1024;
  // stop(): calls still running are given this long to finish; the rest fail with UNAVAILABLE.
  std::chrono::milliseconds drain_timeout{5000};
  // The window of each stream this server receives items on (docs/wire-format.md, "Streams"):
  // a stream's items it holds unread stay below this plus one frame. At least 65536.
  std::size_t stream_window = 256 * 1024;
  // Compression (brine/compression.hpp): the algorithms accepted in requests, and those an answer
  // is compressed with, most preferred first: an answer of compression.threshold bytes or more
  // goes compressed with the first of them its request accepts (a client that names none gets
  // none). Empty: requests compressed with anything are refused (UNIMPLEMENTED). Config keys
  // compression, compression_threshold, compression_level.
  CompressionOptions compression = CompressionOptions::accept_all();
  // Datagram endpoints (udp://, unixgram://): how long each peer's call ids and answers are
  // remembered, so that a request its client sends again is answered from memory and not run a
  // second time (at most once). Keep it above the clients' longest timeout: a request older
  // than a peer's memory is answered UNAVAILABLE, not run. Each peer also keeps at most
  // max_inflight_per_connection finished calls and max_outbound_bytes of answers.
  std::chrono::milliseconds call_memory{60000};
  // Certificate and key for tls:// endpoints (listen() on tls:// throws without them). The
  // handshake must finish within first_frame_timeout.
  TlsServerOptions tls{};
  // Low-latency mode: after each event an I/O thread polls for the next one for up to this long
  // before it sleeps in epoll, so a request arriving within it is taken without a wake-up. 0 (the
  // default) never spins. Each I/O thread then uses a core for up to busy_poll after every event;
  // handlers on workers are still handed over with a wake-up, so pair it with workers = 0 for the
  // lowest latency. Every transport (ZeroMQ endpoints run on the I/O threads too).
  std::chrono::microseconds busy_poll{0};
  // Bounds on a request's metadata: a request over them is answered RESOURCE_EXHAUSTED unrun.
  MetadataLimits metadata_limits{};
  // See every call and stream this server runs, in order (brine/context.hpp).
  Interceptors interceptors{};
  // Adds a LoggingInterceptor writing one line per call to stderr (before `interceptors`).
  bool log_calls = false;
  // Non-empty: a TokenCheck lets in only calls carrying one of these bearer tokens (before
  // `interceptors`, after the logging); calls of `open_methods` need none.
  std::vector<std::string> tokens{};
  std::vector<std::string> open_methods{};
  // How long a call to an object a client passed as an argument (a Remote<T> parameter) waits
  // for its answer, unless its CallOptions say otherwise; inside a handler, at most until the
  // served call's deadline.
  std::chrono::milliseconds callback_timeout{5000};
  // Count every call by method, status and latency (Server::metrics(), GET /metrics on an
  // http:// endpoint): a few relaxed atomic additions and two clock reads per call
  // (docs/performance.md). Configuration key server.metrics.
  bool metrics = true;
  // Answer the built-in "~describe" call (`brine describe`): every method with its C++
  // declaration, contract, codecs and JSON shapes. False for a server that must not reveal its
  // interface (the call is then NOT_FOUND). Configuration key server.describe.
  bool describe = true;
};

// Counters of a running server (Server::stats()).
struct ServerStats {
  std::size_t connections = 0;            // stream connections open
  std::size_t calls_in_flight = 0;        // calls admitted and not yet finished, all transports
  std::size_t remote_objects = 0;         // objects kept for remote references, all peers
  std::uint64_t calls_skipped = 0;        // calls dropped unrun: cancelled, or past their deadline
  std::uint64_t connections_refused = 0;  // over max_connections
  std::uint64_t connections_timed_out = 0;  // closed by first_frame/frame/idle timeouts
  std::uint64_t tls_handshakes_failed = 0;  // tls:// connections whose handshake failed
  std::uint64_t calls_inline = 0;           // calls of methods proved fast, run on an I/O thread
  std::uint64_t inline_demotions = 0;       // times such a method was sent back to the workers
};

struct HandlerOptions {
  // Safe to run twice: a broker may send the call again to another worker when the first one
  // died while running it. (Non-idempotent calls then fail with UNAVAILABLE instead.)
  bool idempotent = false;
  // The codecs this handler serves; empty: every codec its types can use. Two handlers of one
  // method may not serve the same codec (a cereal struct and a protobuf message can both use
  // "json": give one of them the codecs it should serve).
  std::vector<CodecId> codecs{};
};

// What a handler may ask about the call it is running (on the thread running it):
//   if (brine::this_call::cancelled()) throw brine::RpcError(brine::StatusCode::cancelled, "");
namespace this_call {
// The caller's deadline: when it stops waiting (its timeout, carried by the request). The
// largest time_point if the call carries none (a oneway, or a client that sent no timeout).
std::chrono::steady_clock::time_point deadline() noexcept;
// Time left until the deadline (zero when it has passed).
std::chrono::milliseconds time_left() noexcept;
// True once the caller cancelled the call or its deadline passed: the reply will not be read.
bool cancelled() noexcept;
// The codec the caller's request came in (and the reply goes out in); nullopt outside a call.
std::optional<CodecId> codec() noexcept;
// The request's metadata (empty outside a call).
const Metadata& metadata() noexcept;
// Adds an entry to the metadata of the call's answer (its reply or error; a stream's end).
// Throws std::invalid_argument for a malformed key, std::logic_error outside a call.
void add_reply_metadata(std::string key, std::string value);
// A token stopped when the caller cancels the call or goes away (not at the deadline: see
// deadline()). A brine::Client call made while handling a call inherits it, and the deadline.
std::stop_token cancel_token();
// Who called: address, transport and, over TLS with a client certificate, its subject and names
// (an empty Peer outside a call).
const Peer& peer() noexcept;
}  // namespace this_call

namespace detail {

struct InterfaceTable;

// What a running method may ask of the connection it was called on.
class CallContext {
 public:
  // Keeps `object` (an implementation of the interface `table` describes) for this connection
  // and returns its new name. Throws RpcError(UNIMPLEMENTED) where objects cannot be kept (a
  // broker's worker).
  virtual std::string keep(std::shared_ptr<void> object, const InterfaceTable& table) = 0;
  // The object an argument names, as an implementation of the interface `table` describes: one
  // of this side's (exposed, or kept for this connection), called in place; else the caller's,
  // called back over this connection. Throws RpcError where the caller cannot be called back (a
  // broker between, datagrams, no worker threads) or the object is of another interface.
  virtual std::shared_ptr<const RemoteHandle> remote(std::string_view name,
                                                     const InterfaceTable& table) = 0;

 protected:
  ~CallContext() = default;
};

// A call the server finishes later (server/server_call.cpp): an asynchronous handler's or a
// stream's. Thread-safe; it finishes exactly once, by its reply, a failure, its deadline, the
// caller's cancel or the connection's end, whichever comes first.
class CallHandle {
 public:
  virtual ~CallHandle() = default;
  virtual CodecId codec() const noexcept = 0;
  virtual const DecodeLimits& limits() const noexcept = 0;
  // A reply frame for this call, begun: append the encoded value, then reply().
  virtual Buffer begin_reply() const = 0;
  // Finishes the call with that reply, or with `why`. False if it had finished already.
  virtual bool reply(Buffer&& frame) = 0;
  virtual bool fail(const Status& why) = 0;
  virtual bool finished() const noexcept = 0;
  // The caller has left: it cancelled, its deadline passed, or its connection is gone.
  virtual bool cancelled() const noexcept = 0;
  virtual std::chrono::steady_clock::time_point deadline() const noexcept = 0;
  // The stream of a stream call; null otherwise.
  virtual StreamCore* stream() noexcept = 0;
};

// The status a handler's exception becomes: RpcError's own; an exception type registered with
// brine::register_exception its code, what() and registered name; any other std::exception
// INTERNAL with what() and its type name; anything else UNKNOWN.
Status status_of(std::exception_ptr error) noexcept;

// Finishes `call` with `value` (nothing for void: an empty reply).
template <class Resp, class... V>
bool reply_with(CallHandle& call, const V&... value) {
  Buffer frame = call.begin_reply();
  try {
    if constexpr (!std::is_void_v<Resp>) Serialization<Resp>::encode(call.codec(), value..., frame);
  } catch (...) {
    return call.fail(status_of(std::current_exception()));
  }
  return call.reply(std::move(frame));
}

// Runs the Task that `make` returns to its end and finishes `call` with its outcome. `make`
// (kept in this coroutine's frame) holds what the Task borrows: the request, the stream ends.
// (A std::function, not the caller's lambda: a coroutine frame defined in a header may not
// hold a type of the user's translation unit.)
template <class Resp>
Detached drive(std::function<Task<Resp>()> make, std::shared_ptr<CallHandle> call) {
  std::exception_ptr error;
  if constexpr (std::is_void_v<Resp>) {
    try {
      co_await make();
    } catch (...) {
      error = std::current_exception();
    }
    if (error) {
      call->fail(status_of(error));
    } else {
      reply_with<void>(*call);
    }
  } else {
    std::optional<Resp> value;
    try {
      value.emplace(co_await make());
    } catch (...) {
      error = std::current_exception();
    }
    if (error) {
      call->fail(status_of(error));
    } else {
      reply_with<Resp>(*call, *value);
    }
  }
}

}  // namespace detail

// Answers one call later, from any thread: what an asynchronous handler gets instead of
// returning its response, so that it holds no worker while it waits (for an event, another
// call, a timer):
//
//   server.handle("wait_job", [&](const JobId& id, brine::Responder<JobDone> r) {
//     jobs.on_done(id, std::move(r));   // returns at once; jobs calls r.reply(...) later
//   });
//
// Exactly one answer counts: reply() or fail(); a Responder destroyed without either fails the
// call with INTERNAL (the caller never waits in silence). Move-only.
template <class Resp>
class Responder {
 public:
  explicit Responder(std::shared_ptr<detail::CallHandle> call) noexcept : call_(std::move(call)) {}
  Responder(Responder&& other) noexcept = default;
  Responder& operator=(Responder&& other) noexcept {
    if (this != &other) {
      drop();
      call_ = std::move(other.call_);
    }
    return *this;
  }
  Responder(const Responder&) = delete;
  Responder& operator=(const Responder&) = delete;
  ~Responder() { drop(); }

  // Sends the reply. False if the call was over already (cancelled, past its deadline, its
  // connection lost, or answered): nobody reads it then.
  bool reply(const Resp& value) {
    auto call = std::move(call_);
    return call && detail::reply_with<Resp>(*call, value);
  }
  // Fails the call with `why` (not OK).
  bool fail(Status why) {
    auto call = std::move(call_);
    if (why.ok()) why = {StatusCode::unknown, "failed with an OK status"};
    return call && call->fail(why);
  }
  // True once the caller is gone (cancelled, deadline passed, connection lost) or answered.
  bool cancelled() const noexcept { return !call_ || call_->cancelled(); }
  std::chrono::steady_clock::time_point deadline() const noexcept {
    return call_ ? call_->deadline() : std::chrono::steady_clock::time_point::min();
  }

 private:
  void drop() noexcept {
    if (auto call = std::move(call_)) {
      call->fail({StatusCode::internal, "the handler dropped its Responder without answering"});
    }
  }
  std::shared_ptr<detail::CallHandle> call_;
};

namespace detail {

// How a method runs: returns its response (unary), finishes later (deferred: a Responder or a
// Task), or streams.
enum class Shape : std::uint8_t { unary, deferred, stream };

// Examples of a method's JSON, for describe: what the json codec makes of value-initialised
// values of its request (an object's method: its argument list), result and stream items.
// Empty where there is no such value, the type cannot use json, or it has no default value.
struct JsonShapes {
  std::string request, response, in, out;
};
template <class T>
std::string json_example() {
  if constexpr (std::is_void_v<T> || !std::is_default_constructible_v<T>) {
    return {};
  } else {
    if (!Serialization<T>::supports(CodecId::json)) return {};
    try {
      Buffer out;
      Serialization<T>::encode(CodecId::json, T{}, out);
      const auto bytes = out.bytes();
      return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
    } catch (...) {
      return {};
    }
  }
}

// A registered handler or interface method, type-erased. invoke() decodes the request, runs the
// user's code and appends the encoded response to `out`; it throws whatever decoding or the
// user's code throws. `self` is the object for an interface method, null for a handler.
class HandlerBase {
 public:
  virtual ~HandlerBase() = default;
  virtual void invoke(void* self, CodecId codec, std::span<const std::byte> request,
                      const DecodeLimits& limits, Buffer& out, CallContext& ctx) = 0;
  virtual bool supports(CodecId codec) const noexcept = 0;
  // The structure of the types, which a client's contract is checked against (and which
  // messages show as a C++ declaration).
  virtual const Contract& contract() const noexcept = 0;
  // For a factory method: the interface of the objects it returns.
  virtual const InterfaceTable* result_interface() const noexcept { return nullptr; }
  virtual Shape shape() const noexcept { return Shape::unary; }
  virtual JsonShapes json_shapes() const { return {}; }
  // Whether a stream handler blocks a thread (a plain function, not a coroutine): such a
  // server needs workers.
  virtual bool blocks() const noexcept { return false; }
  // Deferred and stream shapes: decodes the request and starts the user's code; the call ends
  // through `call`. Throws what decoding or the code's synchronous part throws.
  // `self` is the object (kept alive for a coroutine that outlives this call), null for a
  // handler.
  virtual void start(const std::shared_ptr<void>& /*self*/, std::span<const std::byte> /*request*/,
                     const std::shared_ptr<CallHandle>& /*call*/, CallContext& /*ctx*/) {}

  // Where the server runs this unary method's calls (ServerOptions::inline_fast_handlers),
  // learnt from how long they take; the server's own bookkeeping.
  struct InlineState {
    InlineState() = default;
    InlineState(const InlineState&) noexcept {}  // a copied handler starts unlearnt
    InlineState& operator=(const InlineState&) noexcept { return *this; }
    std::atomic<bool> on{false};            // run on the I/O thread
    std::atomic<std::uint32_t> fast{0};     // fast worker runs in a row
    std::atomic<std::uint32_t> needed{64};  // fast runs in a row that make it inline
  };
  mutable InlineState inline_state;
};

// A call made from inside a handler (brine::Client called while serving): marks the running
// call as waiting on others, so that its method is not run on an I/O thread.
void note_onward_call() noexcept;

// The remote methods of one interface, by name.
struct InterfaceTable {
  std::string_view name;
  std::vector<std::pair<std::string_view, std::unique_ptr<HandlerBase>>> methods;

  HandlerBase* find(std::string_view method) const noexcept {
    for (const auto& [n, h] : methods) {
      if (n == method) return h.get();
    }
    return nullptr;
  }
};

template <class I>
const InterfaceTable& interface_table();

template <class I, auto M>
class InterfaceMethod final : public HandlerBase {
  using traits = member_traits<decltype(M)>;
  using R = typename traits::result;
  using Resp = typename traits::response;  // R, or what its Task gives
  using Args = typename traits::args;
  using Values = typename traits::values;
  using Wire = wire_result_t<Resp>;
  using In = typename traits::In;
  using Out = typename traits::Out;
  static constexpr bool kStream = traits::is_stream;
  static constexpr bool kCoroutine = is_task<R>::value;
  static_assert(traits::params_ok,
                "remote methods take values or const references (no out-parameters), and a "
                "stream's ends last: brine::Reader<In>&, then brine::Writer<Out>&");
  static_assert(!(kStream || kCoroutine) || !is_ref<Resp>::value,
                "a stream or a coroutine method cannot return a remote reference");
  static_assert((void(traits::template carried<M>()), true));  // its own error per type

 public:
  Shape shape() const noexcept override {
    return kStream ? Shape::stream : kCoroutine ? Shape::deferred : Shape::unary;
  }
  bool blocks() const noexcept override { return kStream && !kCoroutine; }

  void invoke(void* self, CodecId codec, std::span<const std::byte> request,
              const DecodeLimits& limits, Buffer& out, CallContext& ctx) override {
    if constexpr (!kStream && !kCoroutine) {
      Args args = Serialization<Args>::decode(codec, request, limits);
      auto&& values = values_of(args, ctx);
      I& object = *static_cast<I*>(self);
      auto call = [&]() -> R {
        return std::apply([&](auto&... a) -> R { return (object.*M)(std::move(a)...); }, values);
      };
      if constexpr (std::is_void_v<R>) {
        call();
        Serialization<Wire>::encode(codec, Wire{}, out);
      } else if constexpr (is_ref<R>::value) {
        using U = typename is_ref<R>::interface;
        R ref = call();
        if (!ref.get()) throw RpcError(StatusCode::internal, "the factory returned a null Ref");
        Serialization<Wire>::encode(
            codec, Wire{ctx.keep(std::shared_ptr<void>(ref.get()), interface_table<U>())}, out);
      } else {
        Serialization<Wire>::encode(codec, call(), out);
      }
    } else {
      (void)self, (void)codec, (void)request, (void)limits, (void)out, (void)ctx;
    }
  }

  // Streams and coroutines: the call ends through `call`.
  void start(const std::shared_ptr<void>& self, std::span<const std::byte> request,
             const std::shared_ptr<CallHandle>& call, CallContext& ctx) override {
    if constexpr (kStream || kCoroutine) {
      Args decoded = Serialization<Args>::decode(call->codec(), request, call->limits());
      Values args = Values(std::move(values_of(decoded, ctx)));
      StreamCore* core = call->stream();
      if constexpr (kCoroutine) {
        // The object, the arguments and the stream's ends live in the driver's frame as long
        // as the coroutine runs (a factory-made object too, whatever its client does).
        auto make = [self, args = std::move(args), r = End<In, true>(core),
                     w = End<Out, false>(core)]() mutable {
          return run(*static_cast<I*>(self.get()), args, r, w);
        };
        if constexpr (!kStream && std::is_void_v<Resp>) {
          // A call of a void method is answered with an empty argument list, as when it is
          // not a coroutine.
          drive<Wire>([make = std::move(make)]() mutable { return as_wire(make()); }, call);
        } else {
          drive<Resp>(std::move(make), call);
        }
      } else {
        End<In, true> r(core);
        End<Out, false> w(core);
        if constexpr (std::is_void_v<Resp>) {
          run(*static_cast<I*>(self.get()), args, r, w);
          reply_with<void>(*call);
        } else {
          reply_with<Resp>(*call, run(*static_cast<I*>(self.get()), args, r, w));
        }
      }
    }
  }
  bool supports(CodecId codec) const noexcept override {
    bool ok = Serialization<Args>::supports(codec) && Serialization<Wire>::supports(codec);
    if constexpr (!std::is_void_v<In>) ok = ok && Serialization<In>::supports(codec);
    if constexpr (!std::is_void_v<Out>) ok = ok && Serialization<Out>::supports(codec);
    return ok;
  }
  const Contract& contract() const noexcept override { return traits::contract; }
  JsonShapes json_shapes() const override {
    JsonShapes j{json_example<Args>(), json_example<Wire>(), {}, {}};
    if constexpr (!std::is_void_v<In>) j.in = json_example<In>();
    if constexpr (!std::is_void_v<Out>) j.out = json_example<Out>();
    return j;
  }
  const InterfaceTable* result_interface() const noexcept override {
    if constexpr (is_ref<R>::value) {
      return &interface_table<typename is_ref<R>::interface>();
    } else {
      return nullptr;
    }
  }

 private:
  // A stream's end: a Reader (Reading) or a Writer of T; nothing for a direction not used.
  template <class T, bool Reading>
  struct End : std::conditional_t<Reading, Reader<T>, Writer<T>> {
    using Base = std::conditional_t<Reading, Reader<T>, Writer<T>>;
    explicit End(StreamCore* core) : Base(*core) {}
  };
  template <bool Reading>
  struct End<void, Reading> {
    explicit End(StreamCore*) {}
  };
  static Task<Wire> as_wire(Task<void> done) {
    co_await done;
    co_return Wire{};
  }
  // The values the method is called with: the decoded arguments themselves, or (a method
  // that takes objects) with each object's name made a Remote.
  static decltype(auto) values_of(Args& args, CallContext& ctx) {
    if constexpr (!traits::passes_objects) {
      (void)ctx;
      return (args.values);
    } else {
      return [&]<std::size_t... K>(std::index_sequence<K...>) {
        return Values(value_of<std::tuple_element_t<K, Values>>(ctx, std::get<K>(args.values))...);
      }
      (std::make_index_sequence<std::tuple_size_v<Values>>{});
    }
  }
  template <class P, class W>
  static decltype(auto) value_of(CallContext& ctx, W& wire) {
    if constexpr (is_remote<P>::value) {
      using U = typename is_remote<P>::interface;
      return P(ctx.remote(wire.name, interface_table<U>()));
    } else {
      return std::move(wire);
    }
  }

  // Calls the method with the arguments and the stream's ends it takes.
  template <class RIn, class WOut>
  static R run(I& object, Values& args, RIn& r, WOut& w) {
    return std::apply(
        [&](auto&... a) -> R {
          if constexpr (!kStream) {
            return (object.*M)(std::move(a)...);
          } else if constexpr (std::is_void_v<In>) {
            return (object.*M)(std::move(a)..., static_cast<Writer<Out>&>(w));
          } else if constexpr (std::is_void_v<Out>) {
            return (object.*M)(std::move(a)..., static_cast<Reader<In>&>(r));
          } else {
            return (object.*M)(std::move(a)..., static_cast<Reader<In>&>(r),
                               static_cast<Writer<Out>&>(w));
          }
        },
        args);
  }
};

// One table per interface type, built on first use and never changed: a constant.
template <class I>
const InterfaceTable& interface_table() {
  static_assert(RemoteInterface<I>, "declare the interface with BRINE_INTERFACE");
  static const InterfaceTable table = [] {
    InterfaceTable t;
    t.name = interface_traits<I>::name;
    interface_traits<I>::for_each_method([&]<auto M>(std::string_view name) {
      static_assert(std::is_same_v<typename member_traits<decltype(M)>::object, I>,
                    "BRINE_INTERFACE lists a method inherited from another class");
      t.methods.emplace_back(name, std::make_unique<InterfaceMethod<I, M>>());
    });
    return t;
  }();
  return table;
}

template <class F>
struct callable_traits : callable_traits<decltype(&std::remove_cvref_t<F>::operator())> {};
template <class R, class A, class... More>
struct callable_traits<R (*)(A, More...)> {
  using request = std::remove_cvref_t<A>;
  using response = R;
  // The parameters after the request, as written (Writer<T>&, Responder<T>, ...).
  using rest = std::tuple<More...>;
};
template <class R, class... A>
struct callable_traits<R (*)(A...) noexcept> : callable_traits<R (*)(A...)> {};
template <class C, class R, class... A>
struct callable_traits<R (C::*)(A...) const> : callable_traits<R (*)(A...)> {};
template <class C, class R, class... A>
struct callable_traits<R (C::*)(A...) const noexcept> : callable_traits<R (*)(A...)> {};
template <class C, class R, class... A>
struct callable_traits<R (C::*)(A...)> : callable_traits<R (*)(A...)> {};
template <class C, class R, class... A>
struct callable_traits<R (C::*)(A...) noexcept> : callable_traits<R (*)(A...)> {};

template <class>
struct is_responder : std::false_type {};
template <class T>
struct is_responder<Responder<T>> : std::true_type {
  using type = T;
};
template <class>
struct is_reader : std::false_type {};
template <class T>
struct is_reader<Reader<T>> : std::true_type {
  using type = T;
};
template <class>
struct is_writer : std::false_type {};
template <class T>
struct is_writer<Writer<T>> : std::true_type {
  using type = T;
};

template <class Req, class Resp, class F>
class TypedHandler final : public HandlerBase {
 public:
  explicit TypedHandler(F f) : f_(std::move(f)) {}
  void invoke(void*, CodecId codec, std::span<const std::byte> request, const DecodeLimits& limits,
              Buffer& out, CallContext&) override {
    const Req req = Serialization<Req>::decode(codec, request, limits);
    Serialization<Resp>::encode(codec, f_(req), out);
  }
  bool supports(CodecId codec) const noexcept override {
    return Serialization<Req>::supports(codec) && Serialization<Resp>::supports(codec);
  }
  const Contract& contract() const noexcept override { return call_contract<Req, Resp>; }
  JsonShapes json_shapes() const override {
    return {json_example<Req>(), json_example<Resp>(), {}, {}};
  }

 private:
  F f_;
};

// A unary handler that finishes later: f(request, Responder<Resp>) or f(request) -> Task<Resp>.
template <class Req, class Resp, bool Coroutine, class F>
class DeferredHandler final : public HandlerBase {
 public:
  explicit DeferredHandler(F f) : f_(std::move(f)) {}
  Shape shape() const noexcept override { return Shape::deferred; }
  void invoke(void*, CodecId, std::span<const std::byte>, const DecodeLimits&, Buffer&,
              CallContext&) override {}
  void start(const std::shared_ptr<void>&, std::span<const std::byte> request,
             const std::shared_ptr<CallHandle>& call, CallContext&) override {
    Req req = Serialization<Req>::decode(call->codec(), request, call->limits());
    if constexpr (Coroutine) {
      drive<Resp>([f = &f_, req = std::move(req)]() mutable { return (*f)(req); }, call);
    } else {
      f_(req, Responder<Resp>(call));
    }
  }
  bool supports(CodecId codec) const noexcept override {
    return Serialization<Req>::supports(codec) && Serialization<Resp>::supports(codec);
  }
  const Contract& contract() const noexcept override { return call_contract<Req, Resp>; }
  JsonShapes json_shapes() const override {
    return {json_example<Req>(), json_example<Resp>(), {}, {}};
  }

 private:
  F f_;
};

// A stream handler: f(request, Writer<Out>&) (server stream), f(request, Reader<In>&) -> Resp
// (client stream), f(request, Reader<In>&, Writer<Out>&) (both ways); each may be a coroutine
// returning Task<...> instead. In/Out/Resp void: none.
template <class Req, class In, class Out, class Resp, bool Coroutine, class F>
class StreamHandler final : public HandlerBase {
 public:
  explicit StreamHandler(F f) : f_(std::move(f)) {}
  Shape shape() const noexcept override { return Shape::stream; }
  bool blocks() const noexcept override { return !Coroutine; }
  void invoke(void*, CodecId, std::span<const std::byte>, const DecodeLimits&, Buffer&,
              CallContext&) override {}
  void start(const std::shared_ptr<void>&, std::span<const std::byte> request,
             const std::shared_ptr<CallHandle>& call, CallContext&) override {
    Req req = Serialization<Req>::decode(call->codec(), request, call->limits());
    StreamCore& core = *call->stream();
    if constexpr (Coroutine) {
      drive<Resp>([f = &f_, req = std::move(req), r = Reader<ItemIn>(core),
                   w = Writer<ItemOut>(core)]() mutable { return run(*f, req, r, w); },
                  call);
    } else {
      Reader<ItemIn> r(core);
      Writer<ItemOut> w(core);
      if constexpr (std::is_void_v<Resp>) {
        run(f_, req, r, w);
        reply_with<void>(*call);
      } else {
        reply_with<Resp>(*call, run(f_, req, r, w));
      }
    }
  }
  bool supports(CodecId codec) const noexcept override {
    bool ok = Serialization<Req>::supports(codec);
    if constexpr (!std::is_void_v<In>) ok = ok && Serialization<In>::supports(codec);
    if constexpr (!std::is_void_v<Out>) ok = ok && Serialization<Out>::supports(codec);
    if constexpr (!std::is_void_v<Resp>) ok = ok && Serialization<Resp>::supports(codec);
    return ok;
  }
  const Contract& contract() const noexcept override { return stream_contract<Req, In, Out, Resp>; }
  JsonShapes json_shapes() const override {
    return {json_example<Req>(), json_example<Resp>(), json_example<In>(), json_example<Out>()};
  }

 private:
  // A stand-in item type for a direction the method does not use (its end is never handed out).
  struct None {};
  using ItemIn = std::conditional_t<std::is_void_v<In>, None, In>;
  using ItemOut = std::conditional_t<std::is_void_v<Out>, None, Out>;
  static decltype(auto) run(F& f, Req& req, Reader<ItemIn>& r, Writer<ItemOut>& w) {
    if constexpr (std::is_void_v<In>) {
      return f(req, w);
    } else if constexpr (std::is_void_v<Out>) {
      return f(req, r);
    } else {
      return f(req, r, w);
    }
  }

  F f_;
};

class ServerCore;

}  // namespace detail

class Server {
 public:
  explicit Server(ServerOptions options = {});
  // Stops the server (see stop()). A moved-from Server may only be destroyed or assigned to.
  ~Server();
  Server(Server&&) noexcept;
  Server& operator=(Server&&) noexcept;
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Registers `f` for `method`, for every codec its request and response types support.
  // Throws std::logic_error if (method, codec) already has a handler or the server was started.
  //
  // Besides a plain function of the request, a handler may be:
  // * asynchronous: f(const Req&, brine::Responder<Resp>) answers through the Responder, now or
  //   later from any thread; or a coroutine f(Req) -> brine::Task<Resp>. Neither holds a worker
  //   while it waits.
  // * a stream (brine/stream.hpp): f(const Req&, brine::Writer<Out>&) sends many items (a
  //   server stream); f(const Req&, brine::Reader<In>&) -> Resp takes many (a client stream);
  //   f(const Req&, brine::Reader<In>&, brine::Writer<Out>&) does both. The call ends when f
  //   returns (with OK, or the client-stream's Resp) or throws. As a coroutine returning
  //   brine::Task<...> it holds no thread while the window is full or no item is here; a plain
  //   function holds a worker for the stream's life (start() refuses it when workers == 0).
  template <class F>
  Server& handle(std::string_view method, F f, HandlerOptions options = {}) {
    using traits = detail::callable_traits<F>;
    using Req = typename traits::request;
    using R = typename traits::response;
    using Rest = typename traits::rest;
    using V = typename detail::task_value<R>::type;
    constexpr bool co = detail::is_task<R>::value;
    constexpr std::size_t n = std::tuple_size_v<Rest>;
    if constexpr (n == 0 && !co) {
      return handle_typed<Req, R>(method, std::move(f), options);
    } else if constexpr (n == 0) {
      return add_shaped<Req, V, void, void>(
          method, detail::DeferredHandler<Req, V, true, F>(std::move(f)), options);
    } else {
      using A = std::remove_cvref_t<std::tuple_element_t<0, Rest>>;
      if constexpr (n == 1 && detail::is_responder<A>::value) {
        static_assert(std::is_void_v<R>, "a handler that takes a Responder returns void");
        using Resp = typename detail::is_responder<A>::type;
        return add_shaped<Req, Resp, void, void>(
            method, detail::DeferredHandler<Req, Resp, false, F>(std::move(f)), options);
      } else if constexpr (n == 1 && detail::is_writer<A>::value) {
        static_assert(std::is_void_v<V>, "a server-stream handler returns void (or Task<void>)");
        using Out = typename detail::is_writer<A>::type;
        return add_shaped<Req, void, void, Out>(
            method, detail::StreamHandler<Req, void, Out, void, co, F>(std::move(f)), options);
      } else if constexpr (n == 1 && detail::is_reader<A>::value) {
        using In = typename detail::is_reader<A>::type;
        return add_shaped<Req, V, In, void>(
            method, detail::StreamHandler<Req, In, void, V, co, F>(std::move(f)), options);
      } else if constexpr (n == 2) {
        using B = std::remove_cvref_t<std::tuple_element_t<1, Rest>>;
        static_assert(detail::is_reader<A>::value && detail::is_writer<B>::value,
                      "a two-way stream handler takes (request, Reader<In>&, Writer<Out>&)");
        static_assert(std::is_void_v<V>, "a two-way stream handler returns void (or Task<void>)");
        using In = typename detail::is_reader<A>::type;
        using Out = typename detail::is_writer<B>::type;
        return add_shaped<Req, void, In, Out>(
            method, detail::StreamHandler<Req, In, Out, void, co, F>(std::move(f)), options);
      } else {
        static_assert(n == 0,
                      "a handler takes (request), (request, Responder<Resp>), or stream "
                      "ends: (request, Writer<Out>&), (request, Reader<In>&), (request, "
                      "Reader<In>&, Writer<Out>&)");
        return *this;
      }
    }
  }

  template <class Req, class Resp, class F>
  Server& handle(const Method<Req, Resp>& m, F f, HandlerOptions options = {}) {
    static_assert(std::is_invocable_r_v<Resp, F&, const Req&>,
                  "handler does not match the Method's request/response types");
    return handle_typed<Req, Resp>(m.name, std::move(f), options);
  }

  // Serves `object` under `name` (letters, digits, '_' and '-'): calls "name.method" run the
  // methods that BRINE_INTERFACE lists for I, for every codec their types can use. The server
  // shares ownership of `object`. Throws std::logic_error if the name is taken or malformed, or
  // the server was started. Methods run concurrently on the workers: the object must be
  // thread-safe when workers > 1.
  template <class I>
  Server& expose(std::string_view name, std::shared_ptr<I> object) {
    static_assert(RemoteInterface<I>, "declare the interface with BRINE_INTERFACE");
    if (!object) throw std::invalid_argument("expose(): null object");
    add_object(name, std::shared_ptr<void>(std::move(object)), detail::interface_table<I>());
    return *this;
  }
  // The same, borrowing `object`: it must outlive the server.
  template <class I>
  Server& expose(std::string_view name, I& object) {
    return expose(name, std::shared_ptr<I>(std::shared_ptr<void>(), &object));
  }

  // Starts listening on `uri` and returns it with the real port (tcp://127.0.0.1:0 ->
  // tcp://127.0.0.1:41234). Connections are accepted once the server is started. Throws
  // std::invalid_argument for a bad URI, std::system_error when the address cannot be bound.
  // URIs: tcp://host:port, tcp://[v6]:port, tls://host:port (ServerOptions::tls), unix:///path,
  // unix://@name, zmq+tcp://host:port, zmq+ipc:///path, zmq+inproc://name, mem://name (in this
  // process only: frames are delivered on the sending thread, so with workers == 0 a handler
  // runs on the caller's thread, and cannot be timed out while it runs).
  std::string listen(std::string_view uri);
  // Serves as a worker of a brine-broker: connects to the broker's backend (a zmq+ URI), says
  // which methods are idempotent, and sends heartbeats. Reconnects by itself. Returns `uri`.
  std::string connect(std::string_view uri);
  // The URIs listened on so far, with real ports.
  std::vector<std::string> endpoints() const;

  // Starts the I/O threads and workers; returns at once. Idempotent. Every method (of handlers,
  // exposed objects, and the objects their factories return) must be able to use at least one of
  // ServerOptions::codecs: otherwise start() throws std::invalid_argument with one line naming
  // the method, its declaration and the codecs its types can use (so a misconfigured server
  // refuses to start instead of failing its first call).
  void start();
  // start(), then blocks until stop() is called (from another thread or a handler).
  void run();
  // Blocks until stop() is called.
  void wait();
  // Graceful stop: stops accepting, answers new requests UNAVAILABLE, lets running calls
  // finish for up to ServerOptions::drain_timeout and delivers their replies, then fails the
  // calls still running with UNAVAILABLE, closes every connection and joins the threads.
  // Idempotent; safe from any thread, including a handler (which then only requests the stop:
  // run() or wait() does the rest). The destructor stops at once, without draining.
  void stop();
  ServerStats stats() const;
  // Calls by method and status with their latencies, connections, bytes, streams, recent
  // errors (brine/metrics.hpp; empty per-method figures when ServerOptions::metrics is false).
  ServerMetrics metrics() const;

 private:
  template <class Req, class Resp, class F>
  Server& handle_typed(std::string_view method, F f, HandlerOptions options) {
    static_assert((void(detail::carried_call<Req, Resp>()), true));  // its own errors
    add_handler(method, std::make_shared<detail::TypedHandler<Req, Resp, F>>(std::move(f)),
                std::move(options));
    return *this;
  }

  template <class Req, class Resp, class In, class Out, class H>
  Server& add_shaped(std::string_view method, H&& handler, HandlerOptions options) {
    static_assert((void(detail::carried_call<Req, Resp>()), true));
    if constexpr (!std::is_void_v<In>)
      static_assert((void(detail::carried_call<In, void>()), true));
    if constexpr (!std::is_void_v<Out>) {
      static_assert((void(detail::carried_call<Out, void>()), true));
    }
    add_handler(method, std::make_shared<std::remove_cvref_t<H>>(std::forward<H>(handler)),
                std::move(options));
    return *this;
  }

  void add_handler(std::string_view method, std::shared_ptr<detail::HandlerBase> handler,
                   HandlerOptions options);
  void add_object(std::string_view name, std::shared_ptr<void> object,
                  const detail::InterfaceTable& table);

  std::unique_ptr<detail::ServerCore> core_;
};

}  // namespace brine
