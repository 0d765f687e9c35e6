// The client core (internal) and the public Client, which forwards here.
//
// The path of a call: Client::try_call -> detail::try_call (encodes the request into a frame) ->
// ClientCore::call_sync -> prepare (size check, Connector::connection, call id and timeout
// stamped, ClientConnection::add) -> send (ClientConnection::send -> Channel::send) ->
// ClientConnection::wait_for (the caller reads the channel itself where it can, else sleeps
// until the loop completes the call) -> the typed PendingCall decodes the reply.
#include <cstdio>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <thread>

#include "brine/client.hpp"
#include "brine/server.hpp"  // brine::this_call: onward calls inherit
#include "callback/callback_host.hpp"
#include "callback/reverse_channel.hpp"
#include "client/client_stream.hpp"
#include "client/codec_choice.hpp"
#include "client/connector.hpp"
#include "event/loop.hpp"
#include "wire/compression.hpp"
#include "wire/control.hpp"

namespace brine {
namespace detail {
namespace {

using Clock = std::chrono::steady_clock;

const ClientOptions& checked(const ClientOptions& o) {
  if (o.max_frame_size < 1024 || o.max_frame_size > kMaxFrameSizeLimit) {
    throw std::invalid_argument("max_frame_size must be in [1024, 2147483647]");
  }
  if (o.timeout.count() <= 0) throw std::invalid_argument("timeout must be positive");
  if (o.callback_workers == 0) throw std::invalid_argument("callback_workers must be at least 1");
  if (o.heartbeat_interval.count() <= 0 || o.heartbeat_timeout <= o.heartbeat_interval) {
    throw std::invalid_argument(
        "heartbeat_interval must be positive and heartbeat_timeout longer than it");
  }
  if (o.reconnect_backoff_initial.count() <= 0 ||
      o.reconnect_backoff_max < o.reconnect_backoff_initial) {
    throw std::invalid_argument("reconnect backoff: need 0 < initial <= max");
  }
  return o;
}

// The metadata every call of a client starts with: ClientOptions::metadata and the token.
Metadata default_metadata(const ClientOptions& o) {
  Metadata md = o.metadata;
  if (!o.token.empty()) md.set("authorization", "Bearer " + o.token);
  return md;
}

Interceptors chain_of(const ClientOptions& o) {
  Interceptors chain = o.interceptors;
  if (o.log_calls) chain.push_back(std::make_shared<LoggingInterceptor>("client"));
  for (const auto& i : chain) {
    if (!i) throw std::invalid_argument("ClientOptions::interceptors holds a null interceptor");
  }
  return chain;
}

// A call seen by the client's interceptors: before() when it is made, after() in reverse order
// when it completes, then the caller's own completion.
class InterceptedCall final : public PendingCall {
 public:
  InterceptedCall(const Interceptors& chain, std::string_view full_method, Metadata request,
                  PendingCall* inner, std::unique_ptr<PendingCall> owned, Deadline deadline)
      : chain_(chain),
        method_(full_method),
        md_(std::move(request)),
        inner_(inner),
        owned_(std::move(owned)) {
    if (owned_) inner_ = owned_.get();
    if (inner_ != nullptr) user_reply_ = inner_->reply_metadata;
    reply_metadata = &reply_md_;
    const auto dot = method_.rfind('.');
    info_.object =
        dot == std::string::npos ? std::string_view{} : std::string_view(method_).substr(0, dot);
    info_.method = dot == std::string::npos ? std::string_view(method_)
                                            : std::string_view(method_).substr(dot + 1);
    info_.metadata = &md_;
    info_.reply_metadata = &reply_md_;
    info_.deadline = deadline;
  }
  void set_kind(bool stream, bool oneway) {
    info_.stream = stream;
    info_.oneway = oneway;
  }
  // Runs before() of each interceptor; the first refusal is returned (Retry::not_sent).
  Status begin() {
    start_ = Clock::now();
    return run_before(chain_, info_, asked_, Retry::not_sent, "client");
  }
  Metadata& request_metadata() { return md_; }
  // The completion to forward to, when it is made after begin() (a stream's).
  void set_inner(std::unique_ptr<PendingCall> owned) {
    owned_ = std::move(owned);
    inner_ = owned_.get();
    user_reply_ = inner_->reply_metadata;
  }
  void set_peer(const Peer& peer) {
    peer_ = peer;
    info_.peer = &peer_;
  }
  // The caller's completion, for a call whose interceptors already ran (a refused one).
  PendingCall& inner() { return *inner_; }
  void complete(Status status, std::span<const std::byte> payload) noexcept override {
    finish(status);
    if (user_reply_ != nullptr) {
      try {
        *user_reply_ = reply_md_;
      } catch (...) {
      }
    }
    inner_->complete(std::move(status), payload);
  }
  void finish(const Status& status) noexcept {
    run_after(chain_, info_, asked_, status, Clock::now() - start_);
  }

 private:
  const Interceptors& chain_;
  std::string method_;
  Metadata md_;
  Metadata reply_md_;
  Metadata* user_reply_ = nullptr;
  Peer peer_;
  CallInfo info_;
  PendingCall* inner_;
  std::unique_ptr<PendingCall> owned_;
  std::size_t asked_ = 0;
  Clock::time_point start_{};
};

}  // namespace

class ClientCore : public std::enable_shared_from_this<ClientCore> {
 public:
  ClientCore(std::string_view uri, ClientOptions options)
      : options_(checked(options)),
        codecs_(options_.codec, options_.codecs),
        compression_(wire::resolve(options_.compression, "client")),
        loop_owner_(std::make_shared<event::EventLoop>()),
        loop_(*loop_owner_),
        connector_(uri, options_, loop_),
        defaults_(default_metadata(options_)),
        chain_(chain_of(options_)) {}
  // A server's calls back to its client, over that client's connection (`dialer`), with the
  // server's loop for their timers. It serves no objects of its own.
  ClientCore(std::string_view uri, std::unique_ptr<transport::Dialer> dialer, ClientOptions options,
             std::shared_ptr<event::EventLoop> loop)
      : options_(checked(options)),
        codecs_(options_.codec, options_.codecs),
        compression_(wire::resolve(options_.compression, "client")),
        loop_owner_(std::move(loop)),
        loop_(*loop_owner_),
        connector_(uri, std::move(dialer), options_, loop_),
        defaults_(default_metadata(options_)),
        chain_(chain_of(options_)),
        reverse_(true) {}
  ~ClientCore() {
    close();
    if (host_ && host_->dispatcher.on_worker_thread()) {
      // The last reference went with a callback running on the host's own worker, which cannot
      // join its own pool: another thread ends the host once that callback has returned (with
      // the loop its connections' timers use).
      std::thread([host = std::move(host_), loop = loop_owner_]() mutable {
        host.reset();
      }).detach();
    }
  }

  // Keeps `object` on the live connection (connecting if need be) for the server to call.
  std::string export_object(std::shared_ptr<void> object, const InterfaceTable& table) {
    if (reverse_) {
      throw RpcError(StatusCode::invalid_argument,
                     "a server passes its own objects to a client as results (Ref<T>), not as "
                     "arguments of its calls back");
    }
    auto conn = connect();
    CallbackHost* host;
    {
      std::lock_guard lk(host_mu_);
      if (!host_) host_ = std::make_unique<CallbackHost>(options_, weak_from_this());
      host = host_.get();
    }
    return conn->export_object(std::move(object), table, *host);
  }
  // Frees objects export_object() kept for a call that was not run.
  void unexport(const std::vector<std::string>& names) noexcept {
    try {
      if (auto conn = connector_.live()) {
        for (const auto& name : names) conn->unexport(name);
      }
    } catch (...) {
      // Out of memory: the objects go with the connection instead.
    }
  }
  std::uint64_t serial() const {
    auto conn = connector_.live();
    return conn ? conn->serial() : 0;
  }
  bool closed() const { return connector_.closed(); }

  event::EventLoop& loop() { return loop_; }
  const std::string& uri() const { return connector_.uri(); }
  const ClientOptions& options() const { return options_; }
  CodecId codec() const { return codecs_.first(); }
  const CodecChooser& codecs() const { return codecs_; }
  CodecChooser& codecs() { return codecs_; }
  // The contract of `method` (the frame's method field) in `codec` goes with its next call on
  // the live connection: the server refused the last one before checking it.
  void resend_contract(std::string_view method, CodecId codec) {
    if (auto conn = connector_.live()) conn->forget_contract(method, std::uint8_t(codec));
  }

  std::shared_ptr<ClientConnection> connect() {
    Status error;
    auto conn = connector_.connection(deadline_for({}), error, options_.wait_for_ready);
    if (!conn) throw RpcError(error);
    return conn;
  }
  void close() { connector_.close(); }

  ClientStats stats() const {
    ClientStats st;
    st.connect_attempts = connector_.attempts();
    st.connections = connector_.connections();
    if (auto conn = connector_.live()) st.calls_pending = conn->pending_count();
    return st;
  }

  // Frees a remote reference on the server, on the connection that made it (a new connection
  // has nothing to free: the server freed it with the old one). Never connects, never throws.
  void release(const std::string& object) noexcept {
    try {
      if (auto conn = connector_.live()) {
        conn->send_control(wire::release_frame(codecs_.first(), object, next_id()));
      }
    } catch (...) {
      // Out of memory: the server frees the object with the connection instead.
    }
  }

  void call_sync(Buffer&& frame, std::string_view method, PendingCall& inner, CallOptions opts,
                 const Contract& contract);
  void call_async(Buffer&& frame, std::unique_ptr<PendingCall> call, CallOptions opts,
                  const Contract& contract);
  Status send_oneway(Buffer&& frame, CallOptions opts, const Contract& contract);
  std::shared_ptr<ClientStreamCore> open_stream(Buffer&& frame, std::string_view object,
                                                std::string_view method, CallOptions opts,
                                                const Contract& contract);

 private:
  std::uint64_t next_id() { return next_id_.fetch_add(1, std::memory_order_relaxed); }
  Deadline deadline_for(const CallOptions& opts) const {
    return Clock::now() + (opts.timeout.count() > 0 ? opts.timeout : options_.timeout);
  }
  bool wait_for_ready(const CallOptions& opts) const {
    return opts.wait_for_ready.value_or(options_.wait_for_ready);
  }
  // Checks the frame's size, finds the connection, adds the contract if the connection has not
  // sent it, stamps the call id and the timeout and registers the call (and its cancel token).
  // Completes the call (and returns null) on failure.
  std::shared_ptr<ClientConnection> prepare(Buffer& frame, PendingCall& call,
                                            std::unique_ptr<PendingCall>& owned, Deadline deadline,
                                            const CallOptions& opts, const Contract& contract,
                                            std::uint64_t& id, const Metadata& md,
                                            InterceptedCall* icall);
  // prepare() and the first send; null when the call has completed (it failed).
  std::shared_ptr<ClientConnection> start_call(Buffer& frame, PendingCall& call,
                                               std::unique_ptr<PendingCall>& owned,
                                               Deadline deadline, const CallOptions& opts,
                                               const Contract& contract, std::uint64_t& id,
                                               const Metadata& md, InterceptedCall* icall);
  // The largest frame length `conn` takes: max_frame_size, or less where its transport's is
  // smaller (a datagram).
  std::size_t frame_limit(const ClientConnection& conn) const {
    return std::min(options_.max_frame_size, conn.max_frame_length());
  }
  // OK if `frame` (finished) fits `conn`'s transport, else RESOURCE_EXHAUSTED saying why.
  Status fits(const ClientConnection& conn, const Buffer& frame, const char* what) const {
    const std::size_t length = frame.size() - kPrefixSize;
    if (length <= conn.max_frame_length()) return {};
    const transport::PeerInfo& peer = conn.peer();
    return {StatusCode::resource_exhausted,
            std::string(what) + " frame of " + std::to_string(length) +
                " bytes exceeds the datagram limit of " + std::to_string(conn.max_frame_length()) +
                " bytes of " + peer.transport +
                ":// (brine does not split frames over datagrams: use a stream transport)"};
  }
  // Whether `frame`, about to go on `conn`, is to carry `contract`: adds it if so. A frame that
  // cannot fit it afterwards is left as it was.
  bool add_contract(ClientConnection& conn, Buffer& frame, const Contract& contract) const;
  // Gives a request, oneway or stream opener about to go on `conn` its encoding field, when this
  // client compresses: the algorithms it accepts in the answer, and its payload compressed when
  // large and the server has said it accepts the algorithm. After add_contract().
  void add_encoding(const ClientConnection& conn, Buffer& frame, const CallOptions& opts) const {
    if (!compression_.enabled()) return;
    const bool on = opts.compress.value_or(true);
    wire::seal_encoding(frame,
                        on ? compression_.pick(conn.server_accepts()) : wire::Encoding::identity,
                        compression_, on ? compression_.set : wire::EncodingSet{0},
                        std::min(options_.max_frame_size, conn.max_frame_length()));
  }
  // Sends `frame` (which add_contract() may have given a contract) on `conn`.
  transport::SendStatus send(ClientConnection& conn, Buffer&& frame, Deadline deadline,
                             const Contract& contract);

  // A call made while serving one: the served call's deadline and cancellation carry over.
  void inherit(CallOptions& opts) const {
    if (!this_call::codec()) return;
    note_onward_call();
    if (!opts.inherit) return;
    const auto outer = this_call::deadline();
    if (outer != Clock::time_point::max()) {
      const auto own = opts.timeout.count() > 0 ? opts.timeout : options_.timeout;
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(outer - Clock::now());
      if (left < own) opts.timeout = std::max(left, std::chrono::milliseconds(1));
    }
    if (!opts.cancel.stop_possible()) opts.cancel = this_call::cancel_token();
  }
  // The request metadata of a call without interceptors: the defaults and the call's own.
  const Metadata& plain_metadata(const CallOptions& opts, Metadata& storage) const {
    if (opts.metadata.empty()) return defaults_;
    if (defaults_.empty()) return opts.metadata;
    storage = defaults_;
    storage.merge(opts.metadata);
    return storage;
  }
  // An InterceptedCall for a call of `frame`'s method, or null when the client has none.
  std::unique_ptr<InterceptedCall> intercept(const Buffer& frame, const CallOptions& opts,
                                             PendingCall* inner, std::unique_ptr<PendingCall> owned,
                                             Deadline deadline) const {
    Metadata md = defaults_;
    md.merge(opts.metadata);
    return std::make_unique<InterceptedCall>(chain_, frame_method(frame), std::move(md), inner,
                                             std::move(owned), deadline);
  }
  // Puts `md` into the request frame (finished or not); RESOURCE_EXHAUSTED if it would no longer
  // fit max_frame_size.
  // A request always carries the field, even with no entries: it tells the server that this
  // client takes metadata (retry hints, reply metadata) in the answer. A oneway, which has no
  // answer, carries it only with entries.
  Status add_metadata(Buffer& frame, const Metadata& md, bool even_empty = true) const {
    if (md.empty() && (!even_empty || has_metadata(frame.bytes()))) return {};
    const std::size_t length = frame.size() - kPrefixSize + 4 + md.wire_size();
    if (length > options_.max_frame_size) {
      return {StatusCode::resource_exhausted,
              "request frame of " + std::to_string(length) +
                  " bytes (metadata included) exceeds the limit of " +
                  std::to_string(options_.max_frame_size),
              Retry::never};
    }
    attach_metadata(frame, md, even_empty);
    return {};
  }

  ClientOptions options_;
  CodecChooser codecs_;
  const wire::Compression compression_;
  // A Client's own (a ClientThread runs it), or a server's for its calls back.
  std::shared_ptr<event::EventLoop> loop_owner_;
  event::EventLoop& loop_;
  // Serves the objects this client passes (made on first use; outlives the connections).
  std::mutex host_mu_;
  std::unique_ptr<CallbackHost> host_;
  Connector connector_;
  Metadata defaults_;
  Interceptors chain_;
  std::atomic<std::uint64_t> next_id_{1};
  const bool reverse_ = false;
};

bool ClientCore::add_contract(ClientConnection& conn, Buffer& frame,
                              const Contract& contract) const {
  if (!options_.check_contracts || has_contract(frame) ||
      conn.contract_sent(frame_method(frame), frame_codec(frame.bytes()), contract.fingerprint)) {
    return false;
  }
  // One that would make the frame too large is left out: the call goes unchecked, not failed.
  const std::size_t field = 2 + 8 + contract.text.size();
  if (frame.size() - kPrefixSize + field > frame_limit(conn)) return false;
  attach_contract(frame, contract);
  (void)finish_frame(frame, options_.max_frame_size);
  return has_contract(frame);
}

transport::SendStatus ClientCore::send(ClientConnection& conn, Buffer&& frame, Deadline deadline,
                                       const Contract& contract) {
  std::string carried;  // the method whose contract goes with this frame
  if (has_contract(frame)) carried.assign(frame_method(frame));
  const std::uint8_t codec = frame_codec(frame.bytes());
  const auto status = conn.send(std::move(frame), deadline, transport::WhenFull::wait);
  if (status == transport::SendStatus::sent && !carried.empty()) {
    conn.mark_contract_sent(carried, codec, contract.fingerprint);
  }
  return status;
}

std::shared_ptr<ClientConnection> ClientCore::prepare(Buffer& frame, PendingCall& call,
                                                      std::unique_ptr<PendingCall>& owned,
                                                      Deadline deadline, const CallOptions& opts,
                                                      const Contract& contract, std::uint64_t& id,
                                                      const Metadata& md, InterceptedCall* icall) {
  if (opts.cancel.stop_requested()) {
    call.complete({StatusCode::cancelled, "cancelled by the caller", Retry::not_sent}, {});
    return nullptr;
  }
  if (!finish_frame(frame, options_.max_frame_size)) {
    call.complete({StatusCode::resource_exhausted,
                   "request frame of " + std::to_string(frame.size() - kPrefixSize) +
                       " bytes exceeds the limit of " + std::to_string(options_.max_frame_size),
                   Retry::never},
                  {});
    return nullptr;
  }
  if (Status s = add_metadata(frame, md); !s.ok()) {  // (once: a filled field stays as it is)
    call.complete(s, {});
    return nullptr;
  }
  Status error;
  auto conn = connector_.connection(deadline, error, wait_for_ready(opts));
  if (!conn) {
    if (error.retry == Retry::unknown) error.retry = Retry::not_sent;
    call.complete(error, {});
    return nullptr;
  }
  if (Status s = fits(*conn, frame, "request"); !s.ok()) {
    s.retry = Retry::never;
    call.complete(s, {});
    return nullptr;
  }
  if (icall != nullptr) icall->set_peer(conn->peer());
  (void)add_contract(*conn, frame, contract);
  add_encoding(*conn, frame, opts);
  id = next_id();
  wire::stamp_request(frame, id,
                      std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()));
  if (!conn->add(id, &call, owned)) {
    Status death = conn->death();
    death.retry = Retry::not_sent;
    call.complete(death, {});
    return nullptr;
  }
  conn->watch_cancel(id, opts.cancel);
  return conn;
}

std::shared_ptr<ClientConnection> ClientCore::start_call(Buffer& frame, PendingCall& call,
                                                         std::unique_ptr<PendingCall>& owned,
                                                         Deadline deadline, const CallOptions& opts,
                                                         const Contract& contract,
                                                         std::uint64_t& id, const Metadata& md,
                                                         InterceptedCall* icall) {
  // A connection can end between being picked and being written to. Nothing of the request
  // left then, so it is safe to make it once more on a new connection.
  for (int attempt = 0;; ++attempt) {
    auto conn = prepare(frame, call, owned, deadline, opts, contract, id, md, icall);
    if (!conn) return nullptr;
    switch (send(*conn, std::move(frame), deadline, contract)) {
      case transport::SendStatus::sent:
        return conn;
      case transport::SendStatus::timed_out:
        // Part of it may have left.
        conn->complete(
            id, {StatusCode::deadline_exceeded, "timed out sending the request", Retry::maybe_ran});
        return nullptr;
      case transport::SendStatus::closed:
        break;
    }
    TakenCall taken = conn->take(id);
    if (!taken) return nullptr;  // the connection's end completed it already
    conn->fail({StatusCode::unavailable, "the connection closed"});
    owned = std::move(taken.owned);
    if (attempt == 1) {
      call.complete(
          {StatusCode::unavailable, "the connection closed while sending", Retry::not_sent}, {});
      return nullptr;
    }
  }
}

void ClientCore::call_sync(Buffer&& frame, std::string_view method, PendingCall& inner,
                           CallOptions opts, const Contract& contract) {
  inherit(opts);
  const Deadline deadline = deadline_for(opts);
  if (opts.reply_metadata != nullptr) inner.reply_metadata = opts.reply_metadata;
  std::unique_ptr<InterceptedCall> icall;
  PendingCall* target = &inner;
  Metadata storage;
  const Metadata* md = nullptr;
  if (chain_.empty()) {
    md = &plain_metadata(opts, storage);
  } else {
    icall = intercept(frame, opts, &inner, nullptr, deadline);
    if (Status refused = icall->begin(); !refused.ok()) {
      icall->complete(std::move(refused), {});
      return;
    }
    target = icall.get();
    md = &icall->request_metadata();
  }
  Waiter waiter(*target);
  std::unique_ptr<PendingCall> none;
  std::uint64_t id = 0;
  auto conn = start_call(frame, waiter, none, deadline, opts, contract, id, *md, icall.get());
  if (!conn) {
    // Completed, or being completed by the end of the connection it was on (which took it out
    // of the table first): the result is only there once done is set.
    waiter.done.sleep();
    return;
  }
  if (conn->wait_for(waiter, deadline, options_.busy_poll)) return;
  const auto ms = (opts.timeout.count() > 0 ? opts.timeout : options_.timeout).count();
  conn->complete(id,
                 {StatusCode::deadline_exceeded,
                  "no reply to '" + std::string(method) + "' within " + std::to_string(ms) + " ms",
                  Retry::maybe_ran});
  waiter.done.sleep();  // its completion is under way (ours or another's)
}

void ClientCore::call_async(Buffer&& frame, std::unique_ptr<PendingCall> call, CallOptions opts,
                            const Contract& contract) {
  inherit(opts);
  const Deadline deadline = deadline_for(opts);
  if (opts.reply_metadata != nullptr) call->reply_metadata = opts.reply_metadata;
  Metadata storage;
  const Metadata* md = nullptr;
  InterceptedCall* icall = nullptr;
  if (chain_.empty()) {
    md = &plain_metadata(opts, storage);
  } else {
    auto wrapped = intercept(frame, opts, nullptr, std::move(call), deadline);
    if (Status refused = wrapped->begin(); !refused.ok()) {
      wrapped->complete(std::move(refused), {});
      return;
    }
    icall = wrapped.get();
    md = &wrapped->request_metadata();
    call = std::move(wrapped);
  }
  std::uint64_t id = 0;
  PendingCall& pending = *call;
  auto conn = start_call(frame, pending, call, deadline, opts, contract, id, *md, icall);
  if (!conn) return;  // completed; `call` (if still here) goes now
  conn->arm_deadline(id, deadline);
  conn->expect_reply();
}

Status ClientCore::send_oneway(Buffer&& frame, CallOptions opts, const Contract& contract) {
  inherit(opts);
  const Deadline deadline = deadline_for(opts);
  Metadata storage;
  const Metadata* md = &plain_metadata(opts, storage);
  // Its interceptors see it sent (or refused): a oneway has no other outcome.
  struct Nothing final : PendingCall {
    void complete(Status, std::span<const std::byte>) noexcept override {}
  } nothing;
  std::unique_ptr<InterceptedCall> icall;
  if (!chain_.empty()) {
    icall = intercept(frame, opts, &nothing, nullptr, deadline);
    icall->set_kind(false, true);
    if (Status refused = icall->begin(); !refused.ok()) {
      icall->finish(refused);
      return refused;
    }
    md = &icall->request_metadata();
  }
  const Status outcome = [&]() -> Status {
    if (!finish_frame(frame, options_.max_frame_size)) {
      return {StatusCode::resource_exhausted, "oneway frame exceeds the size limit", Retry::never};
    }
    if (Status s = add_metadata(frame, *md, false); !s.ok()) return s;
    Status error;
    auto conn = connector_.connection(deadline, error, wait_for_ready(opts));
    if (!conn) {
      if (error.retry == Retry::unknown) error.retry = Retry::not_sent;
      return error;
    }
    if (icall) icall->set_peer(conn->peer());
    if (Status s = fits(*conn, frame, "oneway"); !s.ok()) {
      s.retry = Retry::never;
      return s;
    }
    (void)add_contract(*conn, frame, contract);
    add_encoding(*conn, frame, opts);
    set_call_id(frame, next_id());
    switch (send(*conn, std::move(frame), deadline, contract)) {
      case transport::SendStatus::sent:
        return {};
      case transport::SendStatus::timed_out:
        return {StatusCode::deadline_exceeded, "timed out sending a oneway call", Retry::maybe_ran};
      case transport::SendStatus::closed:
        break;
    }
    return {StatusCode::unavailable, "the connection closed while sending", Retry::maybe_ran};
  }();
  if (icall) icall->finish(outcome);
  return outcome;
}

namespace {
// A stream that never opened: ended at once with its reason.
class EndedStream final : public FlowStream, public ClientStreamCore {
 public:
  explicit EndedStream(Status why)
      : FlowStream(0, CodecId::cereal, limits_, kDefaultMaxFrameSize, kInitialStreamWindow,
                   Clock::time_point::max()),
        why_(std::move(why)) {
    (void)end(why_);
  }
  StreamCore& items() noexcept override { return *this; }
  void close_write() override {}
  void cancel() noexcept override {}
  Status wait_end(Buffer& payload) override { return end_status(payload); }
  bool park_end(std::coroutine_handle<>) override { return false; }
  Status end_status(Buffer& payload) const override {
    payload.clear();
    return why_;
  }

 private:
  bool send_frame(Buffer&&) override { return false; }
  void resume(std::coroutine_handle<> h) override { h.resume(); }
  static inline const DecodeLimits limits_{};
  Status why_;
};
}  // namespace

std::shared_ptr<ClientStreamCore> failed_stream(Status why) {
  return std::make_shared<EndedStream>(std::move(why));
}

std::shared_ptr<ClientStreamCore> ClientCore::open_stream(Buffer&& frame, std::string_view object,
                                                          std::string_view method, CallOptions opts,
                                                          const Contract& contract) {
  inherit(opts);
  const Deadline deadline = deadline_for(opts);
  if (opts.cancel.stop_requested()) {
    return failed_stream({StatusCode::cancelled, "cancelled by the caller", Retry::not_sent});
  }
  Metadata storage;
  const Metadata* md = &plain_metadata(opts, storage);
  std::unique_ptr<InterceptedCall> icall;
  // Fails the stream before it opened; its interceptors see that.
  auto refuse = [&](Status why) {
    if (icall) icall->finish(why);
    return failed_stream(std::move(why));
  };
  if (!chain_.empty()) {
    icall = intercept(frame, opts, nullptr, nullptr, deadline);
    icall->set_kind(true, false);
    if (Status refused = icall->begin(); !refused.ok()) return refuse(std::move(refused));
    md = &icall->request_metadata();
  }
  if (!finish_frame(frame, options_.max_frame_size)) {
    return refuse({StatusCode::resource_exhausted,
                   "request frame of " + std::to_string(frame.size() - kPrefixSize) +
                       " bytes exceeds the limit of " + std::to_string(options_.max_frame_size),
                   Retry::never});
  }
  if (Status s = add_metadata(frame, *md); !s.ok()) return refuse(std::move(s));
  Status error;
  auto conn = connector_.connection(deadline, error, wait_for_ready(opts));
  if (!conn) {
    if (error.retry == Retry::unknown) error.retry = Retry::not_sent;
    return refuse(std::move(error));
  }
  if (!conn->carries_streams()) {
    return refuse({StatusCode::unimplemented, conn->why_no_streams(), Retry::never});
  }
  if (icall) icall->set_peer(conn->peer());
  (void)add_contract(*conn, frame, contract);
  add_encoding(*conn, frame, opts);
  const std::uint64_t id = next_id();
  wire::stamp_request(frame, id,
                      std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()));
  auto stream =
      std::make_shared<ClientStream>(id, CodecId(frame_codec(frame.bytes())), options_, deadline);
  if (compression_.enabled()) {
    const bool on = opts.compress.value_or(true);
    stream->compress_items(
        on ? compression_.pick(conn->server_accepts()) : wire::Encoding::identity, compression_,
        on ? compression_.set : wire::EncodingSet{0});
  }
  stream->attach(conn);
  std::unique_ptr<PendingCall> owned =
      std::make_unique<StreamCompletion>(stream, *this, object, method, contract);
  owned->reply_metadata = opts.reply_metadata;
  if (icall) {
    icall->set_inner(std::move(owned));
    owned = std::move(icall);
  }
  PendingCall& pending = *owned;
  if (!conn->add(id, &pending, owned)) {
    Status death = conn->death();
    death.retry = Retry::not_sent;
    pending.complete(death, {});  // the interceptors' after(), the stream's end
    return stream;
  }
  conn->add_stream(id, stream);
  conn->watch_cancel(id, opts.cancel);
  switch (send(*conn, std::move(frame), deadline, contract)) {
    case transport::SendStatus::sent:
      break;
    case transport::SendStatus::timed_out:
      conn->complete(
          id, {StatusCode::deadline_exceeded, "timed out sending the request", Retry::maybe_ran});
      return stream;
    case transport::SendStatus::closed:
      conn->complete(
          id, {StatusCode::unavailable, "the connection closed while sending", Retry::maybe_ran});
      return stream;
  }
  stream->grant_initial();  // after the request: the server drops frames of calls it has not seen
  conn->arm_deadline(id, deadline, true);
  conn->expect_reply();
  return stream;
}

std::shared_ptr<ClientStreamCore> core_open_stream(ClientCore& core, Buffer&& frame,
                                                   std::string_view object, std::string_view method,
                                                   CallOptions opts, const Contract& contract) {
  return core.open_stream(std::move(frame), object, method, std::move(opts), contract);
}

// Runs the core's loop on a thread of its own, from the Client's construction to its
// destruction, which joins it.
class ClientThread {
 public:
  explicit ClientThread(ClientCore& core) : core_(core), thread_([&core] { core.loop().run(); }) {}
  ~ClientThread() {
    if (core_.loop().on_loop_thread()) {
      // Its own thread cannot join itself, and nothing may outlive the Client: refuse loudly.
      std::fputs("brine: a Client was destroyed by one of its own callbacks\n", stderr);
      std::terminate();
    }
    core_.close();  // fails what is pending, and waits for the channel to confirm its end
    core_.loop().stop();
    thread_.join();
  }
  ClientThread(const ClientThread&) = delete;
  ClientThread& operator=(const ClientThread&) = delete;

 private:
  ClientCore& core_;
  std::thread thread_;
};

void core_call_sync(ClientCore& core, Buffer&& frame, std::string_view method, PendingCall& pending,
                    CallOptions opts, const Contract& contract) {
  core.call_sync(std::move(frame), method, pending, opts, contract);
}
void core_call_async(ClientCore& core, Buffer&& frame, std::unique_ptr<PendingCall> pending,
                     CallOptions opts, const Contract& contract) {
  core.call_async(std::move(frame), std::move(pending), opts, contract);
}
Status core_send_oneway(ClientCore& core, Buffer&& frame, CallOptions opts,
                        const Contract& contract) {
  return core.send_oneway(std::move(frame), opts, contract);
}
const DecodeLimits& core_limits(const ClientCore& core) noexcept {
  return core.options().decode_limits;
}
std::chrono::milliseconds core_timeout(const ClientCore& core, const CallOptions& opts) noexcept {
  return opts.timeout.count() > 0 ? opts.timeout : core.options().timeout;
}
std::optional<CodecPick> core_pick_codec(const ClientCore& core, std::string_view method,
                                         const Contract& contract, CodecSet usable, CodecSet tried,
                                         Status& none, bool consult) {
  return core.codecs().pick(method, contract, usable, tried, none, consult);
}
void core_confirm_codec(ClientCore& core, std::string_view method, const Contract& contract,
                        CodecId codec) noexcept {
  try {
    core.codecs().confirm(method, contract, codec);
  } catch (...) {
    // Out of memory: the next call asks again.
  }
}
bool core_learn_codecs(ClientCore& core, std::string_view object, std::string_view method,
                       const Contract& contract, CodecId refused, const Status& status) {
  if (!core.codecs().learn(method, contract, status)) return false;
  core.resend_contract(
      object.empty() ? std::string(method) : std::string(object) + "." + std::string(method),
      refused);
  return true;
}
void core_release(ClientCore& core, const std::string& object) noexcept {
  core.release(object);
}
std::uint64_t core_serial(const ClientCore& core) noexcept {
  return core.serial();
}
bool core_reaches(const ClientCore& core, std::uint64_t serial) noexcept {
  // (A closed client's calls fail CANCELLED, "client closed": the reason that says most.)
  return core.closed() || (serial != 0 && core.serial() == serial);
}
void core_unexport(ClientCore& core, const std::vector<std::string>& names,
                   const Status& outcome) noexcept {
  // Only where the peer cannot hold the objects: the request never left, or was refused unrun.
  if (names.empty() || outcome.ok()) return;
  if (outcome.retry == Retry::not_sent || outcome.retry == Retry::not_run ||
      outcome.retry == Retry::later) {
    core.unexport(names);
  }
}
bool core_closed(const ClientCore& core) noexcept {
  return core.closed();
}
std::string core_export(ClientCore& core, std::shared_ptr<void> object,
                        const InterfaceTable& table) {
  return core.export_object(std::move(object), table);
}
std::shared_ptr<ClientCore> make_peer_core(std::shared_ptr<ReverseChannel> channel,
                                           ClientOptions options,
                                           std::shared_ptr<event::EventLoop> loop) {
  const transport::PeerInfo& peer = channel->peer();
  std::string uri = peer.transport + "://" + peer.address + " (calls back)";
  auto core = std::make_shared<ClientCore>(uri, std::make_unique<ReverseDialer>(std::move(channel)),
                                           std::move(options), loop);
  (void)core->connect();  // its one connection, at once: the references made on it know it
  return core;
}

}  // namespace detail

Client::Client(std::string_view uri, ClientOptions options)
    : core_(std::make_shared<detail::ClientCore>(uri, std::move(options))),
      thread_(std::make_unique<detail::ClientThread>(*core_)) {}
Client::~Client() = default;
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&& other) noexcept {
  if (this != &other) {
    thread_.reset();  // this client's thread ends before its core may go
    core_ = std::move(other.core_);
    thread_ = std::move(other.thread_);
  }
  return *this;
}

void Client::connect() {
  (void)core_->connect();
}
void Client::close() {
  if (core_) core_->close();
}
CodecId Client::codec() const noexcept {
  return core_->codec();
}
const std::string& Client::uri() const noexcept {
  return core_->uri();
}
const ClientOptions& Client::options() const noexcept {
  return core_->options();
}
ClientStats Client::stats() const {
  return core_->stats();
}

}  // namespace brine
