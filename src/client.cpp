// Client core: one connection, calls matched to replies by call id.
//
// Writes happen on the calling thread, straight to the socket under a write lock (no hand-off to
// the I/O thread on the way out). Replies are read by one I/O thread, which decodes each reply
// into its caller's slot and wakes the caller. Per-call timers exist only for asynchronous
// calls; a blocking caller times out by itself.
#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include "brine_asio.hpp"

#include "brine/client.hpp"
#include "transport/transport.hpp"

namespace brine {
namespace detail {

using Clock = std::chrono::steady_clock;
using transport::Deadline;

// A mutex whose lock gives up at a deadline. (std::timed_mutex would do, but ThreadSanitizer
// cannot see its try_lock_until and reports every unlock as an error, hiding real reports.)
class DeadlineMutex {
 public:
  bool try_lock_until(Deadline deadline) {
    std::unique_lock lk(mu_);
    if (!cv_.wait_until(lk, deadline, [&] { return !held_; })) return false;
    held_ = true;
    return true;
  }
  void unlock() {
    {
      std::lock_guard lk(mu_);
      held_ = false;
    }
    cv_.notify_one();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool held_ = false;
};

inline asio::mutable_buffer as_buffer(std::span<std::byte> s) {
  return {s.data(), s.size()};
}

class ClientConn {
 public:
  ClientConn(asio::io_context& io, int fd, int family, int protocol, std::size_t max_frame)
      : socket_(io, asio::generic::stream_protocol(family, protocol), fd),
        fd_(fd),
        parser_(max_frame) {}

  asio::generic::stream_protocol::socket& socket() { return socket_; }
  FrameParser& parser() { return parser_; }

  // Registers a call. False if the connection is already dead (the call was not registered).
  bool add(std::uint64_t id, PendingCall* call) {
    std::lock_guard lk(mu_);
    if (dead_) return false;
    pending_.emplace(id, Entry{call, nullptr});
    return true;
  }

  // Arms the deadline timer of an asynchronous call. I/O thread only.
  void arm_timer(std::uint64_t id, Deadline deadline, const std::shared_ptr<ClientConn>& self) {
    std::lock_guard lk(mu_);
    auto it = pending_.find(id);
    if (it == pending_.end()) return;  // already completed
    auto timer = std::make_shared<asio::steady_timer>(socket_.get_executor(), deadline);
    timer->async_wait([weak = std::weak_ptr<ClientConn>(self), id](std::error_code ec) {
      if (ec) return;
      if (auto conn = weak.lock()) conn->expire(id);
    });
    it->second.timer = std::move(timer);
  }

  // Removes a pending call; nullptr if it already completed.
  PendingCall* take(std::uint64_t id, bool on_io_thread) {
    std::shared_ptr<asio::steady_timer> timer;
    PendingCall* call = nullptr;
    {
      std::lock_guard lk(mu_);
      auto it = pending_.find(id);
      if (it == pending_.end()) return nullptr;
      call = it->second.call;
      timer = std::move(it->second.timer);
      pending_.erase(it);
    }
    if (timer) cancel_timer(std::move(timer), on_io_thread);
    return call;
  }

  void expire(std::uint64_t id) {
    if (PendingCall* call = take(id, true)) {
      call->complete({StatusCode::deadline_exceeded, "no reply before the deadline"}, {});
    }
  }

  // Marks the connection dead, shuts the socket and fails every pending call with `status`.
  void fail(const Status& status, bool on_io_thread) {
    std::unordered_map<std::uint64_t, Entry> pending;
    {
      std::lock_guard lk(mu_);
      if (dead_) return;
      dead_ = true;
      death_ = status;
      pending.swap(pending_);
    }
    ::shutdown(fd_, SHUT_RDWR);  // wakes the reader; the socket closes when the last ref goes
    for (auto& [id, entry] : pending) {
      if (entry.timer) cancel_timer(std::move(entry.timer), on_io_thread);
      entry.call->complete(status, {});
    }
  }

  bool dead() const {
    std::lock_guard lk(mu_);
    return dead_;
  }
  Status death() const {
    std::lock_guard lk(mu_);
    return death_;
  }

  transport::WriteResult write(const Buffer& frame, Deadline deadline) {
    std::unique_lock lk(write_mu_, std::defer_lock);
    if (!lk.try_lock_until(deadline)) return {transport::WriteOutcome::timed_out_clean, {}};
    return transport::write_all(fd_, frame.data(), frame.size(), deadline);
  }

 private:
  struct Entry {
    PendingCall* call;
    std::shared_ptr<asio::steady_timer> timer;
  };

  void cancel_timer(std::shared_ptr<asio::steady_timer> timer, bool on_io_thread) {
    if (on_io_thread) {
      timer->cancel();
    } else {
      asio::post(socket_.get_executor(), [t = std::move(timer)] { t->cancel(); });
    }
  }

  asio::generic::stream_protocol::socket socket_;
  int fd_;
  FrameParser parser_;
  DeadlineMutex write_mu_;
  mutable std::mutex mu_;
  std::unordered_map<std::uint64_t, Entry> pending_;
  bool dead_ = false;
  Status death_;
};

class ClientCore {
 public:
  ClientCore(std::string_view uri, ClientOptions options)
      : uri_(uri), options_(std::move(options)), parsed_(transport::parse_uri(uri_)) {
    const auto codec = codec_from_name(options_.codec);
    if (!codec) throw std::invalid_argument("unknown codec '" + options_.codec + "'");
    codec_ = *codec;
    if (options_.max_frame_size < 1024) throw std::invalid_argument("max_frame_size < 1024");
    if (options_.timeout.count() <= 0) throw std::invalid_argument("timeout must be positive");
    thread_ = std::thread([this] { io_.run(); });
  }

  ~ClientCore() {
    close();
    work_.reset();
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }

  const std::string& uri() const { return uri_; }
  const ClientOptions& options() const { return options_; }
  CodecId codec() const { return codec_; }

  Deadline deadline_for(CallOptions opts) const {
    return Clock::now() + (opts.timeout.count() > 0 ? opts.timeout : options_.timeout);
  }

  std::shared_ptr<ClientConn> connection(Deadline deadline, Status& error) {
    {
      std::lock_guard lk(conn_mu_);
      if (conn_ && !conn_->dead()) return conn_;
    }
    std::unique_lock connecting(connect_mu_, std::defer_lock);
    if (!connecting.try_lock_until(deadline)) {
      error = {StatusCode::deadline_exceeded, "timed out waiting to connect to " + uri_};
      return nullptr;
    }
    {
      std::lock_guard lk(conn_mu_);
      if (closed_) {
        error = {StatusCode::cancelled, "client closed"};
        return nullptr;
      }
      if (conn_ && !conn_->dead()) return conn_;  // another thread connected meanwhile
    }
    // Connect without holding conn_mu_: callers on a live connection must not wait for this.
    std::string why;
    std::shared_ptr<ClientConn> conn;
    try {
      const auto addresses = parsed_.transport->resolve(parsed_.rest, false);
      const int fd = transport::connect_stream(*parsed_.transport, addresses, deadline, why);
      if (fd >= 0) {
        sockaddr_storage local{};
        socklen_t len = sizeof local;
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
        const int family = local.ss_family;
        conn = std::make_shared<ClientConn>(
            io_, fd, family, family == AF_UNIX ? 0 : int(IPPROTO_TCP), options_.max_frame_size);
      }
    } catch (const std::exception& e) {
      why = e.what();
    }
    if (!conn) {
      error = {StatusCode::unavailable, "cannot connect to " + uri_ + ": " + why};
      return nullptr;
    }
    {
      std::lock_guard lk(conn_mu_);
      if (closed_) {
        error = {StatusCode::cancelled, "client closed"};
        return nullptr;  // conn's destructor closes the socket
      }
      conn_ = conn;
    }
    read_more(conn);
    return conn;
  }

  void close() {
    std::shared_ptr<ClientConn> conn;
    {
      std::lock_guard lk(conn_mu_);
      closed_ = true;
      conn.swap(conn_);
    }
    if (conn) conn->fail({StatusCode::cancelled, "client closed"}, false);
  }

  // Assigns the call id and finishes the frame; completes the call on failure.
  std::shared_ptr<ClientConn> prepare(Buffer& frame, PendingCall& call, Deadline deadline,
                                      std::uint64_t& id) {
    if (!finish_frame(frame, options_.max_frame_size)) {
      call.complete({StatusCode::resource_exhausted,
                     "request frame of " + std::to_string(frame.size() - kPrefixSize) +
                         " bytes exceeds the limit of " + std::to_string(options_.max_frame_size)},
                    {});
      return nullptr;
    }
    Status error;
    auto conn = connection(deadline, error);
    if (!conn) {
      call.complete(error, {});
      return nullptr;
    }
    id = next_id_.fetch_add(1, std::memory_order_relaxed);
    set_call_id(frame, id);
    if (!conn->add(id, &call)) {
      call.complete(conn->death(), {});
      return nullptr;
    }
    return conn;
  }

  // Sends a registered call's frame; on failure completes it (and, if the stream is broken,
  // fails the connection).
  void send(const std::shared_ptr<ClientConn>& conn, const Buffer& frame, std::uint64_t id,
            Deadline deadline) {
    const auto result = conn->write(frame, deadline);
    switch (result.outcome) {
      case transport::WriteOutcome::done:
        return;
      case transport::WriteOutcome::timed_out_clean:
      case transport::WriteOutcome::timed_out_partial:
        if (PendingCall* call = conn->take(id, false)) {
          call->complete({StatusCode::deadline_exceeded, "timed out sending the request"}, {});
        }
        if (result.outcome == transport::WriteOutcome::timed_out_partial) {
          conn->fail({StatusCode::unavailable,
                      "connection closed: a request could not be written whole before its "
                      "deadline"},
                     false);
        }
        return;
      case transport::WriteOutcome::failed:
        conn->fail({StatusCode::unavailable, "connection lost while sending: " + result.error},
                   false);
        return;
    }
  }

  void call_sync(Buffer&& frame, PendingCall& inner, CallOptions opts) {
    const Deadline deadline = deadline_for(opts);
    Waiter waiter(inner);
    std::uint64_t id = 0;
    auto conn = prepare(frame, waiter, deadline, id);
    if (!conn) return;
    send(conn, frame, id, deadline);
    std::unique_lock lk(waiter.mu);
    if (!waiter.cv.wait_until(lk, deadline, [&] { return waiter.done; })) {
      lk.unlock();
      if (PendingCall* call = conn->take(id, false)) {
        const auto ms = (opts.timeout.count() > 0 ? opts.timeout : options_.timeout).count();
        call->complete(
            {StatusCode::deadline_exceeded,
             "no reply to '" + method_of(frame) + "' within " + std::to_string(ms) + " ms"},
            {});
      }
      lk.lock();
      waiter.cv.wait(lk, [&] { return waiter.done; });  // completion is under way
    }
  }

  void call_async(Buffer&& frame, PendingCall* call, CallOptions opts) {
    const Deadline deadline = deadline_for(opts);
    std::uint64_t id = 0;
    auto conn = prepare(frame, *call, deadline, id);
    if (!conn) return;
    // Timers are touched only on the I/O thread.
    asio::post(io_, [conn, id, deadline] { conn->arm_timer(id, deadline, conn); });
    send(conn, frame, id, deadline);
  }

  Status send_oneway(Buffer&& frame, CallOptions opts) {
    const Deadline deadline = deadline_for(opts);
    if (!finish_frame(frame, options_.max_frame_size)) {
      return {StatusCode::resource_exhausted, "oneway frame exceeds the size limit"};
    }
    Status error;
    auto conn = connection(deadline, error);
    if (!conn) return error;
    set_call_id(frame, next_id_.fetch_add(1, std::memory_order_relaxed));
    const auto result = conn->write(frame, deadline);
    switch (result.outcome) {
      case transport::WriteOutcome::done:
        return {};
      case transport::WriteOutcome::timed_out_partial:
        conn->fail({StatusCode::unavailable, "connection closed: partial write"}, false);
        [[fallthrough]];
      case transport::WriteOutcome::timed_out_clean:
        return {StatusCode::deadline_exceeded, "timed out sending a oneway call"};
      case transport::WriteOutcome::failed:
        conn->fail({StatusCode::unavailable, "connection lost while sending: " + result.error},
                   false);
        return {StatusCode::unavailable, "connection lost while sending: " + result.error};
    }
    return {};
  }

 private:
  // Wraps a blocking caller's slot: wakes the caller after the slot is filled.
  struct Waiter final : PendingCall {
    explicit Waiter(PendingCall& wrapped) : inner(wrapped) {}
    void complete(Status status, std::span<const std::byte> payload) noexcept override {
      inner.complete(std::move(status), payload);
      std::lock_guard lk(mu);  // notify under the lock: the waiter may return at once
      done = true;
      cv.notify_one();
    }
    PendingCall& inner;
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
  };

  static std::string method_of(const Buffer& frame) {
    const std::size_t len = load_be16(frame.data() + 10);
    return {reinterpret_cast<const char*>(frame.data() + kFixedSize), len};
  }

  void read_more(const std::shared_ptr<ClientConn>& conn) {
    conn->socket().async_read_some(
        as_buffer(conn->parser().prepare()), [this, conn](std::error_code ec, std::size_t n) {
          if (ec) {
            conn->fail({StatusCode::unavailable, ec == asio::error::eof
                                                     ? "connection closed by the server"
                                                     : "connection lost: " + ec.message()},
                       true);
            return;
          }
          conn->parser().commit(n);
          if (dispatch(*conn)) read_more(conn);
        });
  }

  // Completes the calls whose replies arrived. False when the connection must close.
  bool dispatch(ClientConn& conn) {
    FrameView f{};
    for (;;) {
      switch (conn.parser().next(&f)) {
        case FrameParser::Next::need_more:
          return true;
        case FrameParser::Next::error: {
          const Status& e = conn.parser().error();
          conn.fail({e.code == StatusCode::resource_exhausted ? e.code : StatusCode::internal,
                     "bad frame from the server: " + e.message},
                    true);
          return false;
        }
        case FrameParser::Next::frame:
          break;
      }
      if (f.kind == FrameKind::reply) {
        if (PendingCall* call = conn.take(f.call_id, true)) call->complete({}, f.payload);
      } else if (f.kind == FrameKind::error) {
        Status s = parse_error_payload(f.payload);
        if (f.call_id == 0) {  // about the connection, not a call
          conn.fail(s, true);
          return false;
        }
        if (PendingCall* call = conn.take(f.call_id, true)) call->complete(std::move(s), {});
      } else {
        conn.fail({StatusCode::internal, "server sent a request frame"}, true);
        return false;
      }
    }
  }

  std::string uri_;
  ClientOptions options_;
  transport::ParsedUri parsed_;
  CodecId codec_ = CodecId::cereal;
  asio::io_context io_{1};
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  std::thread thread_;
  DeadlineMutex connect_mu_;
  std::mutex conn_mu_;
  std::shared_ptr<ClientConn> conn_;
  bool closed_ = false;
  std::atomic<std::uint64_t> next_id_{1};
};

}  // namespace detail

Client::Client(std::string_view uri, ClientOptions options)
    : core_(std::make_unique<detail::ClientCore>(uri, std::move(options))) {}
Client::~Client() = default;
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;

void Client::connect() {
  Status error;
  if (!core_->connection(core_->deadline_for({}), error)) throw RpcError(error);
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

void Client::call_sync(Buffer&& frame, detail::PendingCall& pending, CallOptions opts) {
  core_->call_sync(std::move(frame), pending, opts);
}
void Client::call_async_raw(Buffer&& frame, detail::PendingCall* pending, CallOptions opts) {
  core_->call_async(std::move(frame), pending, opts);
}
Status Client::send_oneway(Buffer&& frame, CallOptions opts) {
  return core_->send_oneway(std::move(frame), opts);
}

}  // namespace brine
