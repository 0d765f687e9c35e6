// Client: typed calls to a brine server over one connection.
//
//   brine::Client client("tcp://127.0.0.1:7000", {.codec = "cereal"});
//   AddReply r = client.call<AddReply>("add", AddRequest{2, 3});          // throws RpcError
//   brine::Result<AddReply> res = client.try_call<AddReply>("add", req);  // never throws
//   std::future<AddReply> f = client.call_async<AddReply>("add", req);    // get() may throw
//   client.notify("log", LogLine{...});                                   // oneway, no reply
//   auto calc = client.remote<Calculator>("calc");  int s = calc.add(2, 3);   // remote object
//
// Thread-safety: every member function may be called from many threads at once; calls share one
// connection and are matched to replies by call id, so replies may arrive in any order.
//
// Connection: made on the first call (or by connect()), and made again by a later call after the
// connection was lost. A lost connection fails every call pending on it with UNAVAILABLE at once.
//
// Every call ends with a reply or a status, never silence: each has a timeout (CallOptions, or
// ClientOptions::timeout), after which it fails with DEADLINE_EXCEEDED.
#pragma once

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "brine/buffer.hpp"
#include "brine/codec.hpp"
#include "brine/compression.hpp"
#include "brine/context.hpp"
#include "brine/detail/frame.hpp"
#include "brine/interface.hpp"
#include "brine/method.hpp"
#include "brine/result.hpp"
#include "brine/status.hpp"
#include "brine/stream.hpp"

namespace brine {

// TLS for tls:// URIs (OpenSSL; TLS 1.2 or newer). Files are PEM. The server's certificate is
// always verified: it must chain to ca_file (or the system's CAs) and name the host.
struct TlsClientOptions {
  std::string ca_file;  // empty: the system's CA store
  // This client's certificate chain and key, for servers that require one (mutual TLS).
  std::string certificate_file;
  std::string private_key_file;
  // The name the server's certificate must carry; empty: the URI's host (a DNS name or an IP).
  std::string server_name;
};

struct ClientOptions {
  // A codec to prefer before those of `codecs` ("json" to see every call as text where the types
  // allow); empty: the order of `codecs`.
  std::string codec{};
  // The codecs this client calls in, most preferred first. Each call uses the first of them that
  // its request and response types can use and that the server serves the method in: a server
  // that refuses a codec names those it serves, and the client calls again in the next one and
  // remembers it (docs/design.md, "One client for every codec"). So one client calls
  // protobuf-typed and cereal-typed methods alike. Unknown names make the constructor throw
  // std::invalid_argument.
  std::vector<std::string> codecs{"protobuf", "cereal", "json"};
  // Default timeout of a call, from the moment it is made (connecting included).
  std::chrono::milliseconds timeout{5000};
  // Largest frame sent or accepted (bytes after the length prefix): 1024 to 2^31 - 1.
  std::size_t max_frame_size = detail::kDefaultMaxFrameSize;
  DecodeLimits decode_limits{};
  // A heartbeat goes to the server whenever the client has sent nothing for heartbeat_interval
  // (the server answers it on streams). A connection on which nothing has arrived for
  // heartbeat_timeout is declared dead: its pending calls fail with UNAVAILABLE. So a server
  // that stopped (SIGSTOP), hangs, or whose host vanished without closing the connection is
  // noticed within about heartbeat_timeout + heartbeat_interval, not at each call's deadline.
  // (A server running handlers inline, workers == 0, cannot answer while a handler runs: keep
  // those handlers shorter than heartbeat_timeout.)
  std::chrono::milliseconds heartbeat_interval{1000};
  std::chrono::milliseconds heartbeat_timeout{3000};
  // After a failed connection attempt the next one waits reconnect_backoff_initial, and each
  // further failure multiplies the wait by 1.6 up to reconnect_backoff_max, every wait jittered by
  // +-20% (so clients of a restarted server do not all come back at once). A success resets it.
  std::chrono::milliseconds reconnect_backoff_initial{100};
  std::chrono::milliseconds reconnect_backoff_max{10000};
  // false: a call made while the client waits to reconnect fails at once with UNAVAILABLE.
  // true: it waits for the connection (attempts continue with backoff) until its deadline.
  bool wait_for_ready = false;
  // Datagram transports (udp://, unixgram://): a request not answered within this is sent
  // again, then after twice as long, and so on up to 1 s between copies, until its deadline
  // (the server runs it at most once). Also the first interval of the hello that starts a
  // session.
  std::chrono::milliseconds retransmit_interval{50};
  // For tls:// URIs. The handshake counts as part of connecting (the call's timeout bounds it).
  TlsClientOptions tls{};
  // Low-latency mode: a thread waiting for a reply spins on the socket for up to this long before
  // it sleeps, so a reply that comes back quickly is taken without a wake-up (on this 2-core
  // machine a wake-up costs most of a loopback round trip). 0 (the default) never spins. Costs a
  // CPU core for up to busy_poll per call; worth it only when replies come back within it and
  // a core is free (docs/performance.md).
  std::chrono::microseconds busy_poll{0};
  // The window of each stream this client receives items on (docs/wire-format.md, "Streams"):
  // the items of one stream held unread stay below this plus one frame. At least 65536.
  std::size_t stream_window = 256 * 1024;
  // Compression of large payloads (brine/compression.hpp; off by default: no algorithm). With
  // algorithms named, every request says that its answer may be compressed with them, and a
  // request payload of compression.threshold bytes or more is compressed with the first of them
  // the server has said (in a reply on the connection) that it accepts. Config keys
  // compression, compression_threshold, compression_level.
  CompressionOptions compression{};
  // Send each method's contract (brine/fingerprint.hpp) with its first call on a connection, so
  // that a server whose types differ refuses the call with FAILED_PRECONDITION instead of
  // decoding garbage. Later calls of the method on that connection carry nothing extra.
  bool check_contracts = true;
  // Metadata sent with every call (and stream, and oneway), before the call's own.
  Metadata metadata{};
  // Non-empty: every call carries "authorization: Bearer <token>" (a server's brine::TokenCheck,
  // ServerOptions::tokens, lets it in).
  std::string token{};
  // Bounds on the metadata of the answers this client accepts.
  MetadataLimits metadata_limits{};
  // Seen by every call, stream and oneway of this client, in order (brine/context.hpp).
  Interceptors interceptors{};
  // Adds a LoggingInterceptor writing one line per call to stderr.
  bool log_calls = false;
  // Threads that run the calls a server makes to objects this client passed it as arguments
  // (Remote<T> parameters): made when the first such object is passed. At least 1.
  std::size_t callback_workers = 2;
};

struct CallOptions {
  // 0 means ClientOptions::timeout. The timeout travels with the request: the server does not
  // start a call whose caller has stopped waiting, and handlers can read the time left
  // (brine::this_call::time_left()).
  std::chrono::milliseconds timeout{0};
  // Cancels the call when stop is requested: it completes at once with CANCELLED, and the server
  // is told (a call still waiting for a worker is not run; a running handler sees
  // brine::this_call::cancelled()). A cancel racing the reply completes the call exactly once.
  std::stop_token cancel{};
  // Overrides ClientOptions::wait_for_ready for this call.
  std::optional<bool> wait_for_ready{};
  // false: this call's request goes uncompressed and its answer is asked to come uncompressed,
  // whatever ClientOptions::compression says (a payload known not to compress, say).
  std::optional<bool> compress{};
  // Sent with this call, after ClientOptions::metadata.
  Metadata metadata{};
  // Made while handling a call (on a thread running a brine handler): the call's deadline caps
  // this call's timeout, and, when `cancel` is not set, the caller's cancel cancels this call too
  // (brine::this_call::cancel_token()), across any number of hops. false: neither.
  bool inherit = true;
  // Non-null: receives the metadata of the answer (reply or error; for a stream, its end) when
  // the call completes. Must outlive the call.
  Metadata* reply_metadata = nullptr;
};

// Counters of a client (Client::stats()).
struct ClientStats {
  std::uint64_t connect_attempts = 0;  // every attempt, failed or not
  std::uint64_t connections = 0;       // attempts that connected
  std::size_t calls_pending = 0;       // calls waiting for their outcome now
};

namespace detail {

// One call waiting for its outcome. complete() is called exactly once, from any thread; `payload`
// is borrowed for the duration of the call only. A blocking call's PendingCall lives on its
// caller's stack; an asynchronous call's is owned by the client until it has completed.
class PendingCall {
 public:
  virtual ~PendingCall() = default;
  virtual void complete(Status status, std::span<const std::byte> payload) noexcept = 0;
  // Where the answer's metadata goes (filled just before complete()); null: nowhere.
  Metadata* reply_metadata = nullptr;
};

class ClientCore;
class ClientThread;

template <class Resp>
Result<Resp> decode_reply(CodecId codec, const DecodeLimits& limits, const Status& status,
                          std::span<const std::byte> payload) noexcept {
  if (!status.ok()) return status;
  try {
    return Serialization<Resp>::decode(codec, payload, limits);
  } catch (const RpcError& e) {
    return e.status();
  } catch (const std::exception& e) {
    return Status{StatusCode::invalid_argument, std::string("reply does not decode: ") + e.what()};
  }
}

template <class Resp>
class SyncCall final : public PendingCall {
 public:
  SyncCall(CodecId codec, const DecodeLimits& limits) : codec_(codec), limits_(limits) {}
  void complete(Status status, std::span<const std::byte> payload) noexcept override {
    result_.emplace(decode_reply<Resp>(codec_, limits_, status, payload));
  }
  Result<Resp> take() && { return std::move(*result_); }

 private:
  CodecId codec_;
  const DecodeLimits& limits_;
  std::optional<Result<Resp>> result_;
};

// An asynchronous call: the client owns it from the call until it has completed.
template <class Resp, class F>
class CallbackCall final : public PendingCall {
 public:
  template <class G>
  CallbackCall(CodecId codec, const DecodeLimits& limits, G&& f)
      : codec_(codec), limits_(limits), f_(std::forward<G>(f)) {}
  void complete(Status status, std::span<const std::byte> payload) noexcept override {
    f_(decode_reply<Resp>(codec_, limits_, status, payload));
  }

 private:
  CodecId codec_;
  DecodeLimits limits_;
  F f_;
};

// A stream call on the client (src/client/client_stream.cpp): its items (StreamCore) and its
// end. Thread-safe.
class ClientStreamCore {
 public:
  virtual ~ClientStreamCore() = default;
  virtual StreamCore& items() noexcept = 0;
  // Tells the server this side sends no more items (a half-close). Idempotent.
  virtual void close_write() = 0;
  // Ends the stream at once with CANCELLED (if it was still running) and tells the server.
  virtual void cancel() noexcept = 0;
  // Waits until the call has ended (the server's last reply or error, its deadline, a cancel,
  // the connection's end): its status, and the last reply's payload in `payload`.
  virtual Status wait_end(Buffer& payload) = 0;
  // For co_await: false (do not suspend) if the call has ended; else resumes `h` when it does.
  virtual bool park_end(std::coroutine_handle<> h) = 0;
  // The status and payload once ended (after wait_end or a resumed park_end).
  virtual Status end_status(Buffer& payload) const = 0;
};

// Opens a stream call: `frame` is its request (begun by begin_request). Never null: a stream
// that could not open has ended with the reason.
std::shared_ptr<ClientStreamCore> core_open_stream(ClientCore& core, Buffer&& frame,
                                                   std::string_view object, std::string_view method,
                                                   CallOptions opts, const Contract& contract);

// Entry points into the client core (src/client.cpp), shared by Client and Remote. `contract` is
// the method's, sent with the frame when this connection has not sent it yet.
void core_call_sync(ClientCore& core, Buffer&& frame, std::string_view method, PendingCall& pending,
                    CallOptions opts, const Contract& contract);
void core_call_async(ClientCore& core, Buffer&& frame, std::unique_ptr<PendingCall> pending,
                     CallOptions opts, const Contract& contract);
Status core_send_oneway(ClientCore& core, Buffer&& frame, CallOptions opts,
                        const Contract& contract);
const DecodeLimits& core_limits(const ClientCore& core) noexcept;
// A call's timeout: opts.timeout, else the client's.
std::chrono::milliseconds core_timeout(const ClientCore& core, const CallOptions& opts) noexcept;

// The codec chosen for a call; whether the server is known to serve the method in it; whether
// an answer in it is worth remembering (it was chosen from what is known, and is not known yet).
struct CodecPick {
  CodecId codec;
  bool confirmed;
  bool remember;
};
// The codec for a call of `method` (without its object) whose types can use `usable`, not one
// of `tried`; nullopt and UNIMPLEMENTED in `none` when there is none (client/codec_choice.hpp).
// `consult` asks what is known even where the client has never been refused (asynchronous
// calls, which copy their request until the codec is confirmed).
std::optional<CodecPick> core_pick_codec(const ClientCore& core, std::string_view method,
                                         const Contract& contract, CodecSet usable, CodecSet tried,
                                         Status& none, bool consult = false);
// A call in `codec` was answered.
void core_confirm_codec(ClientCore& core, std::string_view method, const Contract& contract,
                        CodecId codec) noexcept;
// Whether `status` refused the call's codec (`refused`); if so the codecs the server serves
// `method` in are remembered (and the contract, which the server did not check, goes with the
// next call in that codec).
bool core_learn_codecs(ClientCore& core, std::string_view object, std::string_view method,
                       const Contract& contract, CodecId refused, const Status& status);

// The codecs both a request and a response type can use (the response may be void).
template <class Req, class Resp>
CodecSet usable_codecs() noexcept {
  static const CodecSet usable = [] {
    CodecSet set = 0;
    for (CodecId c : known_codecs()) {
      bool ok = Serialization<Req>::supports(c);
      if constexpr (!std::is_void_v<Resp>) ok = ok && Serialization<Resp>::supports(c);
      if (ok) set |= codec_bit(c);
    }
    return set;
  }();
  return usable;
}
// Sends "<object>.~release" if the connection that made the reference is still up.
void core_release(ClientCore& core, const std::string& object) noexcept;
// The serial number of the core's live connection (they count from 1), 0 if none is up.
std::uint64_t core_serial(const ClientCore& core) noexcept;
// Whether the core can still reach objects that connection `serial` made: it is still up (a
// later connection does not have them), or the client was closed (its calls say so).
bool core_reaches(const ClientCore& core, std::uint64_t serial) noexcept;
// Whether the client was closed.
bool core_closed(const ClientCore& core) noexcept;
// A call that passed objects the client kept for it (`names`) ended with `outcome`: frees them
// where the peer cannot hold them (the request never left, or was refused unrun).
void core_unexport(ClientCore& core, const std::vector<std::string>& names,
                   const Status& outcome) noexcept;

struct InterfaceTable;
// Keeps `object` (an implementation of the interface `table` describes) on the core's
// connection (connecting if need be) for the peer to call back, and returns its name ("@c1").
// Throws RpcError: no connection, or a transport that cannot carry calls both ways.
std::string core_export(ClientCore& core, std::shared_ptr<void> object,
                        const InterfaceTable& table);
// The table of interface I (defined in brine/server.hpp, which brine/brine.hpp includes: a
// file that passes its own objects as Remote<I> arguments includes it).
template <class I>
const InterfaceTable& interface_table();

template <class Resp, class Req>
Status encode_request(CodecId c, Buffer& frame, FrameKind kind, std::string_view object,
                      std::string_view method, const Req& request,
                      const DecodeLimits& limits = DecodeLimits{}) {
  static_assert((void(carried_call<Req, Resp>()), true));  // its own errors
  bool ok = Serialization<Req>::supports(c);
  if constexpr (!std::is_void_v<Resp>) ok = ok && Serialization<Resp>::supports(c);
  if (!ok) {
    return Status{StatusCode::unimplemented,
                  "the request or response type of '" +
                      (object.empty() ? std::string() : std::string(object) + ".") +
                      std::string(method) + "' cannot use codec '" + std::string(codec_name(c)) +
                      "'",
                  Retry::not_sent};
  }
  try {
    if (kind == FrameKind::request) {
      begin_request(frame, kind, std::uint8_t(c), object, method);
      open_metadata(frame);
    } else {
      begin_frame(frame, kind, std::uint8_t(c), object, method);
    }
    const std::size_t start = frame.size();
    Serialization<Req>::encode(c, request, frame);
    if (!written_as_promised(c, frame.bytes().subspan(start), limits)) {
      return Status{StatusCode::invalid_argument,
                    "the request holds NaN or Infinity, which strict JSON (json_strict) cannot "
                    "carry",
                    Retry::not_sent};
    }
  } catch (const RpcError& e) {
    Status s = e.status();  // (not sent: whatever it says, trying again cannot have run it)
    s.retry = Retry::not_sent;
    return s;
  } catch (const std::exception& e) {
    return Status{StatusCode::internal, std::string("request does not encode: ") + e.what(),
                  Retry::not_sent};
  }
  return {};
}

// A call refused for its codec is made again in the next one the server serves, within the time
// left of the first attempt's timeout.
inline bool time_left(std::chrono::steady_clock::time_point deadline, CallOptions& opts) {
  const auto left =
      std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  if (left.count() <= 0) return false;
  opts.timeout = left;
  return true;
}

template <class Resp, class Req>
Result<Resp> try_call(ClientCore& core, std::string_view object, std::string_view method,
                      const Req& request, CallOptions opts, const Contract& contract) {
  const CodecSet usable = usable_codecs<Req, Resp>();
  const auto deadline = std::chrono::steady_clock::now() + core_timeout(core, opts);
  Status none;
  std::optional<CodecPick> pick = core_pick_codec(core, method, contract, usable, 0, none);
  if (!pick) return none;
  for (CodecSet tried = 0;;) {
    Buffer frame;
    if (Status s = encode_request<Resp>(pick->codec, frame, FrameKind::request, object, method,
                                        request, core_limits(core));
        !s.ok()) {
      return s;
    }
    SyncCall<Resp> pending(pick->codec, core_limits(core));
    core_call_sync(core, std::move(frame), method, pending, opts, contract);
    Result<Resp> r = std::move(pending).take();
    if (r.ok()) {
      if (pick->remember) core_confirm_codec(core, method, contract, pick->codec);
      return r;
    }
    if (!core_learn_codecs(core, object, method, contract, pick->codec, r.status()) ||
        !time_left(deadline, opts)) {
      return r;
    }
    tried |= codec_bit(pick->codec);
    pick = core_pick_codec(core, method, contract, usable, tried, none);
    // A contract refused in every codec says why best; a codec refusal, what each side can use.
    if (!pick) return r.code() == StatusCode::failed_precondition ? r : Result<Resp>(none);
  }
}

// An asynchronous call that may be refused for its codec: keeps a copy of the request to make
// it again in the next codec (only until the server is known to serve the method in one).
template <class Resp, class Req, class F>
struct AsyncAttempts : std::enable_shared_from_this<AsyncAttempts<Resp, Req, F>> {
  AsyncAttempts(ClientCore& c, std::string_view obj, std::string_view m, const Req& req, F&& fn,
                CallOptions o, const Contract& k, CodecSet u)
      : core(c),
        object(obj),
        method(m),
        request(req),
        f(std::move(fn)),
        opts(std::move(o)),
        contract(k),
        usable(u),
        deadline(std::chrono::steady_clock::now() + core_timeout(c, opts)) {}

  // Sends in `pick`; the reply comes to done().
  void send(CodecPick pick) {
    Buffer frame;
    if (Status s = encode_request<Resp>(pick.codec, frame, FrameKind::request, object, method,
                                        request, core_limits(core));
        !s.ok()) {
      f(Result<Resp>(std::move(s)));
      return;
    }
    auto on_reply = [self = this->shared_from_this(), pick](Result<Resp> r) {
      self->done(pick, std::move(r));
    };
    using Call = CallbackCall<Resp, decltype(on_reply)>;
    core_call_async(core, std::move(frame),
                    std::make_unique<Call>(pick.codec, core_limits(core), std::move(on_reply)),
                    opts, contract);
  }

  void done(CodecPick pick, Result<Resp> r) {
    if (r.ok()) {
      if (pick.remember) core_confirm_codec(core, method, contract, pick.codec);
    } else if (core_learn_codecs(core, object, method, contract, pick.codec, r.status()) &&
               time_left(deadline, opts)) {
      tried |= codec_bit(pick.codec);
      Status none;
      if (auto next = core_pick_codec(core, method, contract, usable, tried, none, true)) {
        send(*next);
        return;
      }
      if (r.code() != StatusCode::failed_precondition) r = Result<Resp>(std::move(none));
    }
    f(std::move(r));
  }

  ClientCore& core;  // outlives its calls' callbacks (they run before the client's thread ends)
  std::string object;
  std::string method;
  Req request;
  F f;
  CallOptions opts;
  const Contract& contract;
  CodecSet usable;
  std::chrono::steady_clock::time_point deadline;
  CodecSet tried = 0;
};

template <class Resp, class Req, class F>
void call_async(ClientCore& core, std::string_view object, std::string_view method,
                const Req& request, F&& f, CallOptions opts, const Contract& contract) {
  const CodecSet usable = usable_codecs<Req, Resp>();
  Status none;
  const std::optional<CodecPick> pick =
      core_pick_codec(core, method, contract, usable, 0, none, true);
  if (!pick) {
    f(Result<Resp>(std::move(none)));
    return;
  }
  if constexpr (std::is_copy_constructible_v<Req>) {
    // Another codec to fall back on, and the server not known to serve this one yet.
    if (!pick->confirmed && (usable & ~codec_bit(pick->codec)) != 0) {
      using Attempts = AsyncAttempts<Resp, Req, std::decay_t<F>>;
      std::make_shared<Attempts>(core, object, method, request, std::decay_t<F>(std::forward<F>(f)),
                                 std::move(opts), contract, usable)
          ->send(*pick);
      return;
    }
  }
  using Call = CallbackCall<Resp, std::decay_t<F>>;
  Buffer frame;
  if (Status s = encode_request<Resp>(pick->codec, frame, FrameKind::request, object, method,
                                      request, core_limits(core));
      !s.ok()) {
    f(Result<Resp>(std::move(s)));
    return;
  }
  core_call_async(core, std::move(frame),
                  std::make_unique<Call>(pick->codec, core_limits(core), std::forward<F>(f)), opts,
                  contract);
}

// The codecs a stream's types can all use.
template <class Req, class In, class Out, class Resp>
CodecSet stream_codecs() noexcept {
  static const CodecSet usable = [] {
    CodecSet set = 0;
    for (CodecId c : known_codecs()) {
      bool ok = Serialization<Req>::supports(c);
      if constexpr (!std::is_void_v<In>) ok = ok && Serialization<In>::supports(c);
      if constexpr (!std::is_void_v<Out>) ok = ok && Serialization<Out>::supports(c);
      if constexpr (!std::is_void_v<Resp>) ok = ok && Serialization<Resp>::supports(c);
      if (ok) set |= codec_bit(c);
    }
    return set;
  }();
  return usable;
}

// A stream that could not open: ended with `why`.
std::shared_ptr<ClientStreamCore> failed_stream(Status why);

// `method_contract`: an interface method's (its arguments listed one by one); null: a typed
// stream's.
template <class Req, class In, class Out, class Resp>
std::shared_ptr<ClientStreamCore> open_stream(ClientCore& core, std::string_view object,
                                              std::string_view method, const Req& request,
                                              CallOptions opts,
                                              const Contract* method_contract = nullptr) {
  static_assert((void(carried_call<Req, Resp>()), true));
  if constexpr (!std::is_void_v<In>) static_assert((void(carried_call<In, void>()), true));
  if constexpr (!std::is_void_v<Out>) static_assert((void(carried_call<Out, void>()), true));
  const Contract& contract =
      method_contract != nullptr ? *method_contract : stream_contract<Req, In, Out, Resp>;
  Status none;
  const std::optional<CodecPick> pick =
      core_pick_codec(core, method, contract, stream_codecs<Req, In, Out, Resp>(), 0, none, true);
  if (!pick) return failed_stream(std::move(none));
  Buffer frame;
  if (Status s = encode_request<void>(pick->codec, frame, FrameKind::request, object, method,
                                      request, core_limits(core));
      !s.ok()) {
    return failed_stream(std::move(s));
  }
  mark_stream(frame);
  return core_open_stream(core, std::move(frame), object, method, std::move(opts), contract);
}

// What the client's stream types share: the call, its end, cancel on destruction.
class StreamBase {
 public:
  StreamBase(StreamBase&&) noexcept = default;
  StreamBase& operator=(StreamBase&& other) noexcept {
    if (this != &other) {
      abandon();
      core_ = std::move(other.core_);
    }
    return *this;
  }
  StreamBase(const StreamBase&) = delete;
  StreamBase& operator=(const StreamBase&) = delete;

  // Ends the stream now with CANCELLED; the server is told (its handler sees its writes and
  // reads end). No effect once the stream has ended.
  void cancel() noexcept { core_->cancel(); }
  // True once the stream has ended; status() then says how.
  bool finished() const noexcept { return core_->items().finished(); }
  // OK while the stream runs and after a clean end; else why it ended.
  Status status() const { return core_->items().status(); }

 protected:
  explicit StreamBase(std::shared_ptr<ClientStreamCore> core) noexcept : core_(std::move(core)) {}
  // A stream dropped while it runs is cancelled: nobody will read it.
  ~StreamBase() { abandon(); }
  void abandon() noexcept {
    if (core_ && !core_->items().finished()) core_->cancel();
  }
  // Waits for the end; throws RpcError unless it is OK.
  Status wait_end(Buffer& payload) { return core_->wait_end(payload); }

  std::shared_ptr<ClientStreamCore> core_;
};

template <class Resp>
Result<Resp> decode_end(const Status& status, const Buffer& payload, const StreamCore& items) {
  if constexpr (std::is_void_v<Resp>) {
    return Result<void>(status);
  } else {
    return decode_reply<Resp>(items.codec(), items.limits(), status, payload.bytes());
  }
}

// co_await stream.async_finish(): the end without holding a thread (resumes on the thread that
// ended the stream: the client's I/O thread, or the one that cancelled it).
template <class Resp>
struct EndAwaiter {
  ClientStreamCore* core;
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) { return core->park_end(h); }
  Result<Resp> await_resume() const {
    Buffer payload;
    const Status s = core->end_status(payload);
    return decode_end<Resp>(s, payload, core->items());
  }
};

// Sets `promise` from `r`, through `convert` (Wire -> T).
template <class T, class Wire, class Convert>
void fulfil(std::promise<T>& promise, Result<Wire>&& r, Convert&& convert) {
  if (!r.ok()) {
    try {
      throw_status(r.status());  // a registered exception type, or RpcError
    } catch (...) {
      promise.set_exception(std::current_exception());
    }
    return;
  }
  try {
    if constexpr (std::is_void_v<T>) {
      convert(std::move(r).value());
      promise.set_value();
    } else {
      promise.set_value(convert(std::move(r).value()));
    }
  } catch (...) {
    promise.set_exception(std::current_exception());
  }
}

}  // namespace detail

// --- remote objects ---------------------------------------------------------------------------

template <class I>
class Remote;
template <class Out>
class Stream;
template <class In, class Resp>
class Upload;
template <class In, class Out>
class Bidi;

namespace detail {

// What every copy of one Remote shares: the client core and the object's name. For an object a
// factory made (or one passed to a server that calls it back), dropping the last copy tells
// the peer to free it; such a reference lives only as long as the connection that made it
// (`serial`). A Remote made from a local object holds the object instead (`local`, null core).
struct RemoteHandle {
  RemoteHandle(std::shared_ptr<ClientCore> c, std::string name, bool owns)
      : core(std::move(c)),
        object(std::move(name)),
        owned(owns),
        serial(owned ? core_serial(*core) : 0) {}
  // A local object; `name`: its name where it is one of this side's served objects (so that
  // passing it back to the peer names it).
  RemoteHandle(std::shared_ptr<void> self, const InterfaceTable* table, std::string name = {})
      : object(std::move(name)),
        owned(false),
        serial(0),
        local(std::move(self)),
        local_table(table) {}
  RemoteHandle(const RemoteHandle&) = delete;
  RemoteHandle& operator=(const RemoteHandle&) = delete;
  ~RemoteHandle() {
    if (owned) core_release(*core, object);
  }
  // OK, or why a call cannot reach the object: its connection was lost.
  Status reachable() const {
    if (!owned || core_reaches(*core, serial)) return {};
    return {StatusCode::unavailable,
            "the connection that made the remote reference '" + object +
                "' was lost, and the object with it: make a new one",
            Retry::not_sent};
  }
  std::shared_ptr<ClientCore> core;
  std::string object;
  bool owned;
  std::uint64_t serial;
  std::shared_ptr<void> local;  // the I of a Remote made from a local object
  const InterfaceTable* local_table = nullptr;
};

// The name a request carries for an object passed as an argument over `core`: a local
// object is exported for the peer to call back; a Remote of the peer's names its object.
// (`exported` collects the names of the objects kept for this call.)
inline std::string argument_name(ClientCore& core, const RemoteHandle& h,
                                 std::vector<std::string>& exported) {
  if (h.local && h.object.empty()) {
    exported.push_back(core_export(core, h.local, *h.local_table));
    return exported.back();
  }
  if (h.local) return h.object;  // one of this side's served objects, passed back by name
  if (h.core.get() != &core) {
    throw RpcError(StatusCode::invalid_argument,
                   "the Remote '" + h.object +
                       "' passed as an argument names an object of another connection: brine "
                       "passes only your own objects and the called peer's");
  }
  if (Status s = h.reachable(); !s.ok()) throw RpcError(s);
  return h.object;
}
template <class T>
decltype(auto) to_wire_arg(ClientCore& core, T&& value, std::vector<std::string>& exported) {
  if constexpr (is_remote<std::remove_cvref_t<T>>::value) {
    return ObjectName{argument_name(core, *value.brine_handle(), exported)};
  } else {
    return std::forward<T>(value);
  }
}

template <class R>
struct remote_result {
  using type = std::remove_cvref_t<R>;
};
template <>
struct remote_result<void> {
  using type = void;
};
template <class U>
struct remote_result<Ref<U>> {
  using type = Remote<U>;
};
// What a proxy method returns for an interface method returning R.
template <class R>
using remote_result_t = typename remote_result<R>::type;

enum class CallStyle { throwing, result, future };

// The proxy's machinery; BRINE_INTERFACE's proxy<Base> adds the named methods on top.
template <class I, CallStyle Style>
class RemoteBase {
 public:
  RemoteBase(std::shared_ptr<const RemoteHandle> handle, CallOptions opts = {})
      : handle_(std::move(handle)), opts_(opts) {}

  // The object's name on the server ("calc", or "@17" for one a factory made); empty for a
  // Remote made from a local object.
  const std::string& object_name() const noexcept { return handle_->object; }
  // Whether calls can reach the object: false once the connection that made a reference (a
  // factory's object, or an object a client passed to this server) was lost, with the object,
  // or the client was closed. A Remote of an exposed object ("calc") is reachable while its
  // client is open (calls connect); one made from a local object, always.
  bool connected() const noexcept {
    if (handle_->local) return true;
    if (core_closed(*handle_->core)) return false;
    return !handle_->owned || core_serial(*handle_->core) == handle_->serial;
  }
  // The shared handle (brine's own use: passing the object as an argument).
  const std::shared_ptr<const RemoteHandle>& brine_handle() const noexcept { return handle_; }

 protected:
  template <auto M, class... A>
  auto brine_invoke(std::string_view method, A&&... a) const {
    using traits = member_traits<decltype(M)>;
    using R = typename traits::response;  // the result, or what a coroutine's Task gives
    using Args = typename traits::args;
    using Wire = wire_result_t<R>;
    using Out = remote_result_t<R>;
    static_assert((void(traits::template carried<M>()), true));  // its own error per type
    if constexpr (traits::is_stream) {
      // (A stream that cannot start throws: there is no stream to end with the reason.)
      if (handle_->local) {
        throw RpcError(StatusCode::failed_precondition,
                       "a Remote made from a local object opens no streams: call the object");
      }
      if (Status s = handle_->reachable(); !s.ok()) throw RpcError(std::move(s));
    } else {
      if (handle_->local) return invoke_local<M, Out>(std::forward<A>(a)...);
      if (Status s = handle_->reachable(); !s.ok()) return failed<Out>(std::move(s));
    }
    std::optional<Args> args;
    std::vector<std::string> exported;  // the objects passed that were kept for this call
    try {
      args.emplace(Args{
          decltype(Args::values)(to_wire_arg(*handle_->core, std::forward<A>(a), exported)...)});
    } catch (const RpcError& e) {
      core_unexport(*handle_->core, exported, Status{e.code(), {}, Retry::not_sent});
      if constexpr (traits::is_stream) {
        throw;
      } else {
        return failed<Out>(e.status());
      }
    }
    if constexpr (traits::is_stream) {
      // A stream method: the proxy opens the stream and returns its client's end.
      using SIn = typename traits::In;
      using SOut = typename traits::Out;
      auto core = detail::open_stream<Args, SIn, SOut, R>(*handle_->core, handle_->object, method,
                                                          *args, opts_, &traits::contract);
      if constexpr (std::is_void_v<SIn>) {
        return Stream<SOut>(std::move(core));
      } else if constexpr (std::is_void_v<SOut>) {
        return Upload<SIn, R>(std::move(core));
      } else {
        return Bidi<SIn, SOut>(std::move(core));
      }
    } else {
      return invoke_call<M, R, Args, Wire, Out>(method, *args, std::move(exported));
    }
  }

  // What a proxy method of this style returns for a method whose caller gets Out.
  template <class Out>
  using Returned = std::conditional_t<
      Style == CallStyle::throwing, Out,
      std::conditional_t<Style == CallStyle::future, std::future<Out>, Result<Out>>>;

  // A call that fails before it is sent, in the proxy's style.
  template <class Out>
  Returned<Out> failed(Status why) const {
    if constexpr (Style == CallStyle::future) {
      std::promise<Out> promise;
      fulfil(promise, Result<ArgPack<>>(std::move(why)), [](ArgPack<>&&) -> Out { std::abort(); });
      return promise.get_future();
    } else if constexpr (Style == CallStyle::throwing) {
      throw_status(std::move(why));
    } else {
      return Result<Out>(std::move(why));
    }
  }

  // A call of a Remote made from a local object: the object's method itself, on this thread.
  template <auto M, class Out, class... A>
  Returned<Out> invoke_local(A&&... a) const {
    using traits = member_traits<decltype(M)>;
    using R = typename traits::result;
    using Object = typename traits::object;
    if constexpr (is_task<R>::value) {
      return failed<Out>({StatusCode::failed_precondition,
                          "a Remote made from a local object does not run its coroutine "
                          "methods: call the object itself"});
    } else {
      Object& object = *static_cast<Object*>(handle_->local.get());
      auto run = [&]() -> Out {
        if constexpr (is_ref<R>::value) {
          using U = typename is_ref<R>::interface;
          R ref = (object.*M)(std::forward<A>(a)...);
          return Out(std::make_shared<const RemoteHandle>(std::shared_ptr<void>(ref.get()),
                                                          &interface_table<U>()),
                     opts_);
        } else {
          return (object.*M)(std::forward<A>(a)...);
        }
      };
      if constexpr (Style == CallStyle::throwing) {
        return run();
      } else if constexpr (Style == CallStyle::future) {
        std::promise<Out> promise;
        try {
          if constexpr (std::is_void_v<Out>) {
            run();
            promise.set_value();
          } else {
            promise.set_value(run());
          }
        } catch (...) {
          promise.set_exception(std::current_exception());
        }
        return promise.get_future();
      } else {
        try {
          if constexpr (std::is_void_v<Out>) {
            run();
            return Result<void>(Status{});
          } else {
            return Result<Out>(run());
          }
        } catch (const RpcError& e) {
          return Result<Out>(e.status());
        } catch (const std::exception& e) {
          return Result<Out>(Status{StatusCode::unknown, e.what()});
        }
      }
    }
  }

  template <auto M, class R, class Args, class Wire, class Out>
  auto invoke_call(std::string_view method, const Args& args,
                   std::vector<std::string> exported) const {
    using traits = member_traits<decltype(M)>;
    auto convert = [handle = handle_, opts = opts_](Wire&& w) -> Out {
      if constexpr (std::is_void_v<Out>) {
        (void)w;
      } else if constexpr (is_ref<R>::value) {
        return Out(std::make_shared<const RemoteHandle>(handle->core, std::move(w.name), true),
                   opts);
      } else {
        return std::move(w);
      }
    };
    ClientCore& core = *handle_->core;
    if constexpr (Style == CallStyle::future) {
      auto promise = std::make_shared<std::promise<Out>>();
      std::future<Out> future = promise->get_future();
      detail::call_async<Wire>(
          core, handle_->object, method, args,
          // (The core outlives its calls' callbacks: no reference to keep it.)
          [promise, convert, owner = &core, exported = std::move(exported)](Result<Wire> r) {
            if (!r.ok()) core_unexport(*owner, exported, r.status());
            fulfil(*promise, std::move(r), convert);
          },
          opts_, traits::contract);
      return future;
    } else {
      Result<Wire> r =
          detail::try_call<Wire>(core, handle_->object, method, args, opts_, traits::contract);
      if (!r.ok()) core_unexport(core, exported, r.status());
      if constexpr (Style == CallStyle::throwing) {
        return convert(std::move(r).value_or_throw());
      } else if constexpr (std::is_void_v<Out>) {
        return Result<void>(r.status());
      } else {
        if (!r.ok()) return Result<Out>(r.status());
        return Result<Out>(convert(std::move(r).value()));
      }
    }
  }

  std::shared_ptr<const RemoteHandle> handle_;
  CallOptions opts_;
};

template <class I, CallStyle Style>
using proxy_t = typename interface_traits<I>::template proxy<RemoteBase<I, Style>>;

}  // namespace detail

// A proxy for a remote object: the methods BRINE_INTERFACE lists for I, with the same
// parameters (checked at compile time) and results, except that a method returning Ref<U>
// returns Remote<U>. Each call throws RpcError on failure; an exception thrown by the object's
// method arrives as RpcError with its message and remote_type().
//
//   brine::Remote<Calculator> calc = client.remote<Calculator>("calc");
//   int s = calc.add(2, 3);
//   brine::Result<int> r = calc.try_call().add(2, 3);     // never throws
//   std::future<int> f = calc.async().add(2, 3);           // get() may throw
//   calc.with({.timeout = 100ms}).add(2, 3);               // per-call options
//
// Copies share one reference. Thread-safe like Client. (An interface method named try_call,
// async, with or object_name is hidden by these; call it through try_call().)
template <class I>
class Remote final : public detail::proxy_t<I, detail::CallStyle::throwing> {
  using Base = detail::proxy_t<I, detail::CallStyle::throwing>;

 public:
  using interface = I;

  explicit Remote(std::shared_ptr<const detail::RemoteHandle> handle, CallOptions opts = {})
      : Base(std::move(handle), opts) {}
  // One of your own objects, to pass as an argument: the peer that receives it calls it back
  // over the same connection (and keeps it alive until it drops its Remote, or the connection
  // ends). Calls made through this Remote run the object's methods here, directly.
  Remote(Ref<I> object)  // NOLINT: implicit by design, as a local object converts
      : Base(std::make_shared<const detail::RemoteHandle>(std::shared_ptr<void>(object.get()),
                                                          &detail::interface_table<I>())) {
    if (!this->handle_->local) throw std::invalid_argument("Remote: a null object");
  }
  template <class D>
  requires std::derived_from<D, I> Remote(std::shared_ptr<D> object)  // NOLINT: implicit
      : Remote(Ref<I>(std::shared_ptr<I>(std::move(object)))) {}

  // The same object, its methods returning Result<T> (Result<void> for void) instead of
  // throwing.
  detail::proxy_t<I, detail::CallStyle::result> try_call() const {
    return detail::proxy_t<I, detail::CallStyle::result>(this->handle_, this->opts_);
  }
  // The same object, its methods returning std::future<T>.
  detail::proxy_t<I, detail::CallStyle::future> async() const {
    return detail::proxy_t<I, detail::CallStyle::future>(this->handle_, this->opts_);
  }
  // The same object with other call options (a timeout, say).
  Remote with(CallOptions opts) const { return Remote(this->handle_, opts); }
};

// --- streams (brine/stream.hpp) ------------------------------------------------------------

// A server stream as its client reads it: Client::stream<Out>(method, request).
//
//   brine::Stream<Line> tail = client.stream<Line>("tail", TailRequest{"app.log"});
//   while (std::optional<Line> line = tail.read()) std::cout << line->text << "\n";
//   if (!tail.status().ok()) ...   // why it ended, if not cleanly
//
// The call's timeout (CallOptions, else ClientOptions::timeout) bounds the whole stream. A
// Stream destroyed before the end cancels the call. Move-only.
template <class Out>
class Stream final : public detail::StreamBase {
 public:
  explicit Stream(std::shared_ptr<detail::ClientStreamCore> core) noexcept
      : StreamBase(std::move(core)), reader_(core_->items()) {}

  // The next item; waits for it. nullopt at the end: status() says whether it was clean.
  std::optional<Out> read() { return reader_.read(); }
  // co_await: the same without holding a thread (resumes on the client's I/O thread).
  auto async_read() { return reader_.async_read(); }

 private:
  Reader<Out> reader_;
};

// A client stream: many items to the server, one response back.
// Client::upload<In, Resp>(method, request).
//
//   brine::Upload<Chunk, Summary> up = client.upload<Chunk, Summary>("store", FileInfo{"a.bin"});
//   for (const Chunk& c : chunks) if (!up.write(c)) break;   // false: the stream ended
//   Summary s = up.finish();                                 // throws RpcError on failure
template <class In, class Resp>
class Upload final : public detail::StreamBase {
 public:
  explicit Upload(std::shared_ptr<detail::ClientStreamCore> core) noexcept
      : StreamBase(std::move(core)), writer_(core_->items()) {}

  // Sends an item; waits while the server's window is full. False once the stream has ended
  // (finish() or status() says why).
  bool write(const In& item) { return writer_.write(item); }
  auto async_write(const In& item) { return writer_.async_write(item); }
  // Says there are no more items and waits for the server's response.
  Result<Resp> try_finish() {
    core_->close_write();
    Buffer payload;
    const Status s = wait_end(payload);
    return detail::decode_end<Resp>(s, payload, core_->items());
  }
  Resp finish() {
    if constexpr (std::is_void_v<Resp>) {
      try_finish().value_or_throw();
    } else {
      return try_finish().value_or_throw();
    }
  }
  // co_await up.async_finish(): try_finish() without holding a thread.
  detail::EndAwaiter<Resp> async_finish() {
    core_->close_write();
    return {core_.get()};
  }

 private:
  Writer<In> writer_;
};

// A stream both ways: Client::bidi<In, Out>(method, request). Reading and writing may go on
// from two threads at once (one reader, one writer).
//
//   brine::Bidi<ChatLine, ChatLine> chat = client.bidi<ChatLine, ChatLine>("chat", Join{"ann"});
//   chat.write({"ann", "hello"});
//   while (auto line = chat.read()) ...
//   chat.close_write();     // no more from us; the server may still send
template <class In, class Out>
class Bidi final : public detail::StreamBase {
 public:
  explicit Bidi(std::shared_ptr<detail::ClientStreamCore> core) noexcept
      : StreamBase(std::move(core)), reader_(core_->items()), writer_(core_->items()) {}

  bool write(const In& item) { return writer_.write(item); }
  auto async_write(const In& item) { return writer_.async_write(item); }
  std::optional<Out> read() { return reader_.read(); }
  auto async_read() { return reader_.async_read(); }
  // Tells the server no more items come from this side (a half-close).
  void close_write() { core_->close_write(); }
  // Closes this side and waits for the server to end the stream: its status. Items not read by
  // then are dropped.
  Status finish() {
    core_->close_write();
    Buffer payload;
    return wait_end(payload);
  }

 private:
  Reader<Out> reader_;
  Writer<In> writer_;
};

namespace detail {

// co_await client.co_call<Resp>(...): the call's Result without holding a thread.
template <class Resp>
struct CallAwaiter {
  std::function<void(std::function<void(Result<Resp>)>)> start;
  std::optional<Result<Resp>> result{};
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    start([this, h](Result<Resp> r) {
      result.emplace(std::move(r));
      h.resume();
    });
  }
  Result<Resp> await_resume() { return std::move(*result); }
};

}  // namespace detail

class Client {
 public:
  // Parses the URI (tcp://host:port, tcp://[v6]:port, tls://host:port, unix:///path,
  // unix://@abstract, zmq+..., mem://name) and checks the options; does not connect. Throws
  // std::invalid_argument on a bad URI or codec, or TLS files that do not load.
  explicit Client(std::string_view uri, ClientOptions options = {});
  // Closes (see close()) and joins the client's thread: after it returns, no callback of this
  // client runs. Must not run on that thread (inside one of the client's own callbacks): that
  // terminates the program.
  ~Client();
  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Connects now if not connected. Throws RpcError(UNAVAILABLE) when that fails within the
  // default timeout.
  void connect();
  // Closes the connection; pending calls fail with CANCELLED. Idempotent. Later calls fail with
  // CANCELLED too.
  void close();

  // The most preferred codec (ClientOptions::codec, else the first of ClientOptions::codecs).
  CodecId codec() const noexcept;
  const std::string& uri() const noexcept;
  const ClientOptions& options() const noexcept;
  ClientStats stats() const;

  // --- typed calls -----------------------------------------------------------------------------

  template <class Resp, class Req>
  Result<Resp> try_call(std::string_view method, const Req& request, CallOptions opts = {}) {
    return detail::try_call<Resp>(*core_, {}, method, request, opts, call_contract<Req, Resp>);
  }

  template <class Resp, class Req>
  Resp call(std::string_view method, const Req& request, CallOptions opts = {}) {
    return try_call<Resp>(method, request, opts).value_or_throw();
  }

  // `f` is called exactly once with a Result<Resp>, on the client's I/O thread or on a thread
  // that is blocked in a synchronous call on this client and reads the connection meanwhile. Do
  // not block in it.
  template <class Resp, class Req, class F>
  requires std::invocable<F&, Result<Resp>>
  void call_async(std::string_view method, const Req& request, F&& f, CallOptions opts = {}) {
    detail::call_async<Resp>(*core_, {}, method, request, std::forward<F>(f), opts,
                             call_contract<Req, Resp>);
  }

  // The future's get() returns the reply or throws RpcError.
  template <class Resp, class Req>
  std::future<Resp> call_async(std::string_view method, const Req& request, CallOptions opts = {}) {
    auto promise = std::make_shared<std::promise<Resp>>();
    std::future<Resp> future = promise->get_future();
    call_async<Resp>(
        method, request,
        [promise](Result<Resp> r) {
          detail::fulfil(*promise, std::move(r), [](Resp&& v) { return std::move(v); });
        },
        opts);
    return future;
  }

  // co_await: the call without holding a thread; gives its Result (co_call_or_throw: the reply,
  // or throws RpcError). The coroutine resumes on the client's I/O thread (or on a thread
  // blocked in a synchronous call on this client that read the reply): do not block there.
  template <class Resp, class Req>
  detail::CallAwaiter<Resp> co_call(std::string_view method, Req request, CallOptions opts = {}) {
    return {[this, m = std::string(method), request = std::move(request),
             opts](std::function<void(Result<Resp>)> done) {
      call_async<Resp>(m, request, std::move(done), opts);
    }};
  }

  // --- streams (brine/stream.hpp) --------------------------------------------------------------
  // Each opens a stream call on the connection (connecting if needed) and returns at once; the
  // call's timeout bounds the whole stream. A stream that cannot open ends at once: its first
  // read or write reports it, and status() says why. The method's types are checked against
  // the server's like a call's (a mismatch ends the stream with FAILED_PRECONDITION).
  // Not over udp:// or unixgram:// (UNIMPLEMENTED).

  // One request, many items back.
  template <class Out, class Req>
  Stream<Out> stream(std::string_view method, const Req& request, CallOptions opts = {}) {
    return Stream<Out>(
        detail::open_stream<Req, void, Out, void>(*core_, {}, method, request, opts));
  }
  // Many items to the server, one response back.
  template <class In, class Resp, class Req>
  Upload<In, Resp> upload(std::string_view method, const Req& request, CallOptions opts = {}) {
    return Upload<In, Resp>(
        detail::open_stream<Req, In, void, Resp>(*core_, {}, method, request, opts));
  }
  // Items both ways.
  template <class In, class Out, class Req>
  Bidi<In, Out> bidi(std::string_view method, const Req& request, CallOptions opts = {}) {
    return Bidi<In, Out>(
        detail::open_stream<Req, In, Out, void>(*core_, {}, method, request, opts));
  }

  // Oneway: sends and returns once the frame is written; the server sends no reply. Returns the
  // status of sending (a handler's failure is not reported).
  // The codec is chosen as for calls (a oneway gets no refusal to learn from: it goes in the
  // first codec the server is known to serve the method in, else in the most preferred).
  template <class Req>
  Status notify(std::string_view method, const Req& request, CallOptions opts = {}) {
    const Contract& contract = call_contract<Req, void>;
    Status none;
    const std::optional<detail::CodecPick> pick = detail::core_pick_codec(
        *core_, method, contract, detail::usable_codecs<Req, void>(), 0, none);
    if (!pick) return none;
    Buffer frame;
    if (Status s = detail::encode_request<void>(pick->codec, frame, detail::FrameKind::oneway, {},
                                                method, request, options().decode_limits);
        !s.ok()) {
      return s;
    }
    return detail::core_send_oneway(*core_, std::move(frame), opts, contract);
  }

  // --- remote objects ------------------------------------------------------------------------
  // A proxy for the object the server exposes as `name`, with the methods BRINE_INTERFACE lists
  // for I. Does not connect or check that the object exists: a call to a missing object or
  // method fails with NOT_FOUND. The proxy calls through this client's connection; once the
  // Client is closed or destroyed, its calls fail with CANCELLED (the proxy may outlive the
  // Client safely, it just cannot call any more).
  template <class I>
  Remote<I> remote(std::string_view name) const {
    static_assert(RemoteInterface<I>, "declare the interface with BRINE_INTERFACE");
    return Remote<I>(std::make_shared<const detail::RemoteHandle>(core_, std::string(name), false));
  }

  // --- the same, with a Method descriptor (types checked at compile time) ----------------------
  template <class Req, class Resp>
  Resp call(const Method<Req, Resp>& m, const std::type_identity_t<Req>& request,
            CallOptions opts = {}) {
    return call<Resp>(m.name, request, opts);
  }
  template <class Req, class Resp>
  Result<Resp> try_call(const Method<Req, Resp>& m, const std::type_identity_t<Req>& request,
                        CallOptions opts = {}) {
    return try_call<Resp>(m.name, request, opts);
  }
  template <class Req, class Resp>
  std::future<Resp> call_async(const Method<Req, Resp>& m, const std::type_identity_t<Req>& request,
                               CallOptions opts = {}) {
    return call_async<Resp>(m.name, request, opts);
  }

 private:
  std::shared_ptr<detail::ClientCore> core_;      // shared with the Remotes made from this client
  std::unique_ptr<detail::ClientThread> thread_;  // runs the core's loop; joined by ~Client
};

}  // namespace brine
