#include "client/connection.hpp"

#include "callback/callback_host.hpp"
#include "callback/reverse_channel.hpp"

#include "client/client_stream.hpp"
#include "wire/compression.hpp"
#include "wire/control.hpp"

namespace brine::detail {
namespace {

using Clock = std::chrono::steady_clock;

Clock::rep rep(Clock::time_point t) {
  return t.time_since_epoch().count();
}

}  // namespace

void CancelFn::operator()() const noexcept {
  if (auto c = conn.lock()) c->cancel(id);
}

ClientConnection::ClientConnection(std::shared_ptr<transport::Channel> channel,
                                   event::EventLoop& loop, const ClientOptions& options)
    : channel_(std::move(channel)),
      loop_(loop),
      heartbeat_interval_(options.heartbeat_interval),
      heartbeat_timeout_(options.heartbeat_timeout),
      metadata_limits_(options.metadata_limits),
      accepts_(wire::resolve(options.compression, "client").set),
      max_frame_size_(options.max_frame_size) {
  const auto now = rep(Clock::now());
  last_received_.store(now, std::memory_order_relaxed);
  last_sent_.store(now, std::memory_order_relaxed);
}

void ClientConnection::start() {
  channel_->start(shared_from_this());
  arm_heartbeat();
}

bool ClientConnection::add(std::uint64_t id, PendingCall* call,
                           std::unique_ptr<PendingCall>& owned) {
  return calls_.add(id, call, owned);
}

void ClientConnection::watch_cancel(std::uint64_t id, const std::stop_token& token) {
  if (!token.stop_possible()) return;
  // Runs the cancel at once if stop was requested already.
  auto callback = std::make_unique<CancelCallback>(token, CancelFn{weak_from_this(), id});
  (void)calls_.set_cancel(id, callback);  // completed already: the callback goes here
}

void ClientConnection::arm_deadline(std::uint64_t id, Deadline deadline, bool tell_server) {
  const auto timer = loop_.at(deadline, [weak = weak_from_this(), id, tell_server] {
    auto c = weak.lock();
    if (!c) return;
    if (!tell_server) {
      c->complete(id, {StatusCode::deadline_exceeded, "no reply before the deadline"});
      return;
    }
    TakenCall taken = c->calls_.take(id);
    if (!taken) return;
    taken.timer = 0;  // this timer: it has fired
    c->complete(std::move(taken), {StatusCode::deadline_exceeded, "the stream's deadline passed"},
                {});
    c->send_control(wire::cancel_frame(id));
  });
  if (!calls_.set_timer(id, timer)) loop_.cancel(timer);
}

void ClientConnection::add_stream(std::uint64_t id, std::shared_ptr<ClientStream> stream) {
  std::lock_guard lk(streams_mu_);
  streams_.insert_or_assign(id, std::move(stream));
}

void ClientConnection::forget_stream(std::uint64_t id, const ClientStream* stream) {
  std::shared_ptr<ClientStream> gone;  // released after the lock
  std::lock_guard lk(streams_mu_);
  const auto it = streams_.find(id);
  if (it == streams_.end() || it->second.get() != stream) return;
  gone = std::move(it->second);
  streams_.erase(it);
}

void ClientConnection::on_stream_frame(const FrameView& f) {
  std::shared_ptr<ClientStream> stream;
  {
    std::lock_guard lk(streams_mu_);
    const auto it = streams_.find(f.call_id);
    if (it != streams_.end()) stream = it->second;
  }
  // A stream that ended (or was never opened here): its frames on the way are dropped.
  if (!stream) return;
  const bool ok = f.kind == FrameKind::item ? f.codec == std::uint8_t(stream->codec()) &&
                                                  stream->deliver_item(f, accepts_)
                                            : stream->deliver_credit(wire::credit_of(f));
  if (!ok) {
    fail({StatusCode::internal, "the server broke the flow control of stream " +
                                    std::to_string(f.call_id) +
                                    " (sent beyond the window, a credit overflowing it, an "
                                    "item in another codec, or one that does not decompress)"});
  }
}

void ClientConnection::complete(TakenCall taken, const Status& status,
                                std::span<const std::byte> payload) {
  if (!taken) return;
  if (taken.timer != 0) loop_.cancel(taken.timer);
  taken.call->complete(status, payload);
  // An asynchronous call's PendingCall goes now, after its completion ran.
}

void ClientConnection::complete(std::uint64_t id, const Status& status) {
  complete(calls_.take(id), status, {});
}

void ClientConnection::cancel(std::uint64_t id) {
  TakenCall taken = calls_.take(id);
  if (!taken) return;  // the reply (or another outcome) won the race
  complete(std::move(taken), {StatusCode::cancelled, "cancelled by the caller"}, {});
  // A caller sleeping on the socket for this call must look at it again.
  if (auto* reader = channel_->caller_reads()) reader->wake_reader();
  send_control(wire::cancel_frame(id));
}

transport::SendStatus ClientConnection::send(Buffer&& frame, Deadline deadline,
                                             transport::WhenFull when_full) {
  const auto status = channel_->send(std::move(frame), deadline, when_full);
  if (status == transport::SendStatus::sent) {
    last_sent_.store(rep(Clock::now()), std::memory_order_relaxed);
  }
  return status;
}

bool ClientConnection::contract_sent(std::string_view method, std::uint8_t codec,
                                     std::uint64_t fingerprint) const {
  std::lock_guard lk(contracts_mu_);
  if (codec >= kCodecSlots) return false;
  const auto it = contracts_sent_[codec].find(method);
  return it != contracts_sent_[codec].end() && it->second == fingerprint;
}

void ClientConnection::forget_contract(std::string_view method, std::uint8_t codec) {
  std::lock_guard lk(contracts_mu_);
  if (codec >= kCodecSlots) return;
  if (const auto it = contracts_sent_[codec].find(method); it != contracts_sent_[codec].end()) {
    contracts_sent_[codec].erase(it);
  }
}

void ClientConnection::mark_contract_sent(std::string_view method, std::uint8_t codec,
                                          std::uint64_t fingerprint) {
  // Bounded (a client making ever new objects names ever new methods "@N.m"): forgetting only
  // means sending a contract again, which is always allowed.
  constexpr std::size_t kRemembered = 4096;
  if (codec >= kCodecSlots) return;
  std::lock_guard lk(contracts_mu_);
  if (contracts_sent_[codec].size() >= kRemembered) contracts_sent_[codec].clear();
  auto& sent = contracts_sent_[codec];
  if (const auto it = sent.find(method); it != sent.end()) {
    it->second = fingerprint;
  } else {
    sent.emplace(std::string(method), fingerprint);
  }
}

void ClientConnection::send_control(Buffer&& frame) {
  (void)send(std::move(frame), Clock::now(), transport::WhenFull::queue);
}

bool ClientConnection::wait_for(Waiter& w, Deadline deadline, std::chrono::microseconds spin) {
  if (auto* reader = channel_->caller_reads()) return reader->read_until(w.done, deadline, spin);
  if (spin.count() > 0) {
    const auto until = std::min(deadline, Clock::now() + spin);
    while (!w.done.is_set() && Clock::now() < until) {
    }
  }
  return w.done.sleep_until(deadline);
}

void ClientConnection::expect_reply() {
  if (auto* reader = channel_->caller_reads()) reader->expect();
}

bool ClientConnection::refresh() {
  if (auto* reader = channel_->caller_reads()) reader->refresh();
  return !dead();
}

void ClientConnection::fail(const Status& status) {
  {
    std::lock_guard lk(death_mu_);
    if (dead_.load()) return;
    death_ = status;
    dead_.store(true, std::memory_order_release);
    loop_.cancel(heartbeat_);
    heartbeat_ = 0;
  }
  channel_->close(status, Clock::now());
  end_serving(status);
  // These calls' requests have left (a call that fails to send is taken out first): they may
  // have run.
  Status lost = status;
  if (lost.retry == Retry::unknown) {
    // A connection-level RESOURCE_EXHAUSTED is the server refusing a frame over its limit: sending
    // it again fails again. Anything else: the calls may have run.
    lost.retry = lost.code == StatusCode::resource_exhausted ? Retry::never : Retry::maybe_ran;
  }
  for (TakenCall& taken : calls_.close()) complete(std::move(taken), lost, {});
}

Status ClientConnection::death() const {
  std::lock_guard lk(death_mu_);
  return death_;
}

void ClientConnection::wait_closed(std::chrono::milliseconds timeout) {
  std::unique_lock lk(closed_mu_);
  closed_cv_.wait_for(lk, timeout, [&] { return closed_; });
}

void ClientConnection::on_frame(const FrameView& f) {
  last_received_.store(rep(Clock::now()), std::memory_order_relaxed);
  const bool call_back =
      f.kind == FrameKind::request || f.kind == FrameKind::oneway || f.kind == FrameKind::cancel;
  // A call of an object this client passed: its server policy takes it.
  if (call_back && deliver_reverse(back_mu_, back_channel_, f)) return;
  if (!call_back && !wire::server_sends(f.kind)) {
    fail({StatusCode::internal, "the server sent a frame of a kind only clients send"});
    return;
  }
  if (Status s = wire::check_fields(f); !s.ok()) {
    fail({StatusCode::internal, "bad frame from the server: " + s.message});
    return;
  }
  if (call_back) {
    // A call back on a connection that passed no object (one passed on an earlier connection,
    // say): no such object here.
    if (f.kind == FrameKind::request) {
      send_control(wire::error_frame(
          f.call_id,
          {StatusCode::not_found, "no object '" + std::string(f.method) +
                                      "' on this connection (no object was passed on it)"},
          kDefaultMaxFrameSize));
    }
    return;
  }
  if (f.kind == FrameKind::item || f.kind == FrameKind::credit) {
    on_stream_frame(f);
  } else if (f.kind == FrameKind::reply || f.kind == FrameKind::error) {
    Status s = f.kind == FrameKind::reply ? Status{} : parse_error(f);
    if (f.call_id == 0) {  // about the connection, not a call
      if (f.kind == FrameKind::reply) {
        fail({StatusCode::internal, "bad frame from the server: a reply with call id 0"});
      } else {
        fail(s);
      }
      return;
    }
    TakenCall taken = calls_.take(f.call_id);
    if (!taken) return;
    if (!f.metadata.empty()) {
      if (Status over = check_metadata_limits(f.metadata, metadata_limits_); !over.ok()) {
        over.message = "the reply's " + over.message;
        complete(std::move(taken), over, {});
        return;
      }
      if (Metadata* md = taken.call->reply_metadata) {
        md->clear();
        read_metadata(f.metadata, *md);
      }
    }
    if (f.has_encoding) {
      server_accepts_.store(f.accepts, std::memory_order_relaxed);
      if (f.encoding != 0 && s.ok()) {
        Buffer payload;
        if (Status bad = wire::inflate(f, accepts_, max_frame_size_, payload); !bad.ok()) {
          bad.message = "the reply's " + bad.message;
          bad.retry = Retry::maybe_ran;
          complete(std::move(taken), bad, {});
          return;
        }
        complete(std::move(taken), s, payload.bytes());
        return;
      }
    } else if (f.kind == FrameKind::error && wire::is_encodings_refusal(s)) {
      // The server refused the algorithm (another server behind a broker, or its configuration
      // changed): nothing more goes compressed until a reply says again what it accepts.
      server_accepts_.store(0, std::memory_order_relaxed);
    }
    complete(std::move(taken), s, s.ok() ? f.payload : std::span<const std::byte>{});
  }
  // A heartbeat: the answer to ours; that it arrived is enough.
}

void ClientConnection::on_bad_frame(const Status& why, bool) {
  if (why.message.starts_with(kNotBrinePeer)) {
    // Like gRPC meeting an HTTP/1.1 server: nothing brine can do there, the service is not here.
    const transport::PeerInfo& peer = channel_->peer();
    fail({StatusCode::unavailable, "not a brine server at " + peer.transport + "://" +
                                       peer.address + why.message.substr(kNotBrinePeer.size())});
    return;
  }
  fail({why.code == StatusCode::resource_exhausted ? why.code : StatusCode::internal,
        "bad frame from the server: " + why.message});
}

void ClientConnection::on_close(const Status& why) {
  fail(why);
  end_serving(why);
  {
    std::lock_guard lk(closed_mu_);
    closed_ = true;
  }
  closed_cv_.notify_all();
}

// --- objects passed to the server ------------------------------------------------------------

std::string ClientConnection::export_object(std::shared_ptr<void> object,
                                            const InterfaceTable& table, CallbackHost& host) {
  if (!channel_->carries_streams()) {
    throw RpcError(StatusCode::unimplemented,
                   "objects passed as arguments are called back over the connection, which " +
                       channel_->peer().transport +
                       ":// (datagrams) cannot carry both ways: use a stream transport");
  }
  std::shared_ptr<ServerConnection> server;
  {
    std::lock_guard lk(back_mu_);
    if (dead()) throw RpcError(death());
    // (One that ended on a protocol error of the server's calls back is made again.)
    if (!back_server_ || back_channel_->closed()) {
      back_server_ = host.serve(channel_, loop_, back_channel_);
      serving_.store(true, std::memory_order_relaxed);
    }
    server = back_server_;
  }
  expect_reply();  // the loop reads the channel while objects may be called
  const std::string name = host.next_name();
  Session* session = server->session();
  if (session == nullptr || !session->keep(name, ExposedObject{std::move(object), &table})) {
    throw RpcError(Status{StatusCode::unavailable, "the connection closed", Retry::not_sent});
  }
  return name;
}

void ClientConnection::unexport(const std::string& name) {
  std::shared_ptr<ServerConnection> server;
  {
    std::lock_guard lk(back_mu_);
    server = back_server_;
  }
  if (Session* session = server ? server->session() : nullptr) (void)session->release(name);
}

void ClientConnection::end_serving(const Status& why) {
  close_reverse(back_mu_, back_channel_, why);
  serving_.store(false, std::memory_order_relaxed);
}

// --- heartbeats ------------------------------------------------------------------------------

void ClientConnection::arm_heartbeat() {
  std::lock_guard lk(death_mu_);
  if (dead_.load()) return;
  heartbeat_ = loop_.after(heartbeat_interval_, [weak = weak_from_this()] {
    if (auto c = weak.lock()) c->beat();
  });
}

// Every heartbeat_interval: declare the connection dead if nothing arrived for
// heartbeat_timeout, else send a heartbeat if nothing was sent for an interval.
void ClientConnection::beat() {
  if (dead()) return;
  // Heartbeat answers (and a close) that arrived while nobody read.
  if (auto* reader = channel_->caller_reads()) reader->refresh();
  if (dead()) return;
  const auto now = Clock::now();
  const auto since = [&](const std::atomic<Clock::rep>& t) {
    return now - Clock::time_point(Clock::duration(t.load(std::memory_order_relaxed)));
  };
  if (since(last_received_) >= heartbeat_timeout_) {
    fail({StatusCode::unavailable,
          "nothing arrived from the server for " + std::to_string(heartbeat_timeout_.count()) +
              " ms (heartbeat_timeout): it is stopped, hung or unreachable"});
    return;
  }
  if (since(last_sent_) >= heartbeat_interval_) {
    (void)send(wire::heartbeat_frame(), now, transport::WhenFull::queue);
  }
  arm_heartbeat();
}

}  // namespace brine::detail
