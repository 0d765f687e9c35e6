// Server core: acceptors and connections on an Asio io_context; handlers inline or on a pool.
//
// Each connection reads into its FrameParser and dispatches every complete frame. Replies go
// through a per-connection queue; all queued replies leave in one gather write (writev), and a
// reply produced on the I/O thread is written before the read handler returns.
#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <future>
#include <iostream>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include "brine_asio.hpp"

#include "brine/server.hpp"
#include "client_conn.hpp"
#include "server_core.hpp"
#include "transport/tls/tls.hpp"
#include "transport/transport.hpp"

namespace brine {
namespace detail {
namespace {

using Clock = std::chrono::steady_clock;

// The call the current thread is running, for brine::this_call.
thread_local const CallState* current_call = nullptr;

constexpr std::size_t kCodecSlots = 8;                    // codec ids handled: 0..7
static_assert(std::size_t(CodecId::json) < kCodecSlots);  // the highest id

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};

}  // namespace

// One stream connection, plain or TLS (ServerConn<Stream> below).
class ServerConnBase : public ReplySink {
 public:
  virtual void start() = 0;
  // Sends a connection-level error frame after the queued replies, then closes. Any thread.
  virtual void fail(const Status& status) = 0;
  // Closes at once. On the connection's executor, or after the I/O threads stopped.
  virtual void close_now() = 0;
};

class ServerCore final : public FrameDispatcher {
 public:
  explicit ServerCore(ServerOptions options) : options_(std::move(options)) {
    if (options_.max_frame_size < 1024) throw std::invalid_argument("max_frame_size < 1024");
    if (options_.io_threads == 0) options_.io_threads = 1;
    using std::chrono::milliseconds;
    if (options_.first_frame_timeout <= milliseconds(0) ||
        options_.frame_timeout <= milliseconds(0) || options_.idle_timeout <= milliseconds(0)) {
      throw std::invalid_argument(
          "first_frame_timeout, frame_timeout and idle_timeout must be > 0");
    }
    if (options_.max_connections == 0) throw std::invalid_argument("max_connections must be > 0");
    if (options_.codecs.empty()) {
      for (CodecId c : known_codecs()) served_[std::size_t(c)] = true;
    }
    for (const std::string& name : options_.codecs) {
      const auto id = codec_from_name(name);
      if (!id) throw std::invalid_argument("unknown codec '" + name + "'");
      served_[std::size_t(*id)] = true;
    }
  }
  ~ServerCore() override { shutdown(false); }

  void add_handler(std::string_view method, std::shared_ptr<HandlerBase> handler,
                   HandlerOptions handler_options) {
    std::lock_guard lk(mu_);
    if (started_) throw std::logic_error("handle() after start()");
    std::vector<CodecId> codecs = std::move(handler_options.codecs);
    if (codecs.empty()) {
      for (CodecId c : known_codecs()) {
        if (handler->supports(c)) codecs.push_back(c);
      }
    }
    if (codecs.empty()) {
      throw std::logic_error("method '" + std::string(method) + "' (" + handler->signature() +
                             "): no codec can carry both its request and response types");
    }
    // Check every codec before taking any: a refused registration changes nothing.
    const auto existing = handlers_.find(method);
    for (CodecId c : codecs) {
      if (std::size_t(c) >= kCodecSlots || !handler->supports(c)) {
        throw std::logic_error("method '" + std::string(method) + "' (" + handler->signature() +
                               ") cannot use codec '" + std::string(codec_name(c)) + "'");
      }
      if (existing != handlers_.end() && existing->second[std::size_t(c)]) {
        throw std::logic_error("method '" + std::string(method) + "' already has a handler for " +
                               std::string(codec_name(c)) +
                               " (HandlerOptions::codecs says which codecs a handler serves)");
      }
    }
    auto& slots = handlers_[std::string(method)];
    for (CodecId c : codecs) slots[std::size_t(c)] = handler;
    if (handler_options.idempotent) idempotent_.emplace_back(method);
  }

  void add_object(std::string_view name, std::shared_ptr<void> object,
                  const InterfaceTable& table) {
    const bool well_formed = !name.empty() && std::all_of(name.begin(), name.end(), [](char ch) {
      return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-';
    });
    if (!well_formed) {
      throw std::logic_error("object name '" + std::string(name) +
                             "': use letters, digits, '_' and '-'");
    }
    std::lock_guard lk(mu_);
    if (started_) throw std::logic_error("expose() after start()");
    if (!objects_.emplace(std::string(name), ExposedObject{std::move(object), &table}).second) {
      throw std::logic_error("an object named '" + std::string(name) + "' is already exposed");
    }
  }

  std::string next_object_name() {
    return "@" + std::to_string(next_object_.fetch_add(1, std::memory_order_relaxed));
  }

  std::string listen(std::string_view uri);
  std::string add_message_endpoint(std::string_view uri, bool worker) {
    auto ep = make_zmq_endpoint(*this, uri, worker);
    std::lock_guard lk(mu_);
    if (stop_requested_) throw std::logic_error("listen() after stop()");
    if (started_) ep->start();
    message_endpoints_.push_back(std::move(ep));
    return message_endpoints_.back()->uri();
  }
  std::vector<std::string> endpoints() const {
    std::lock_guard lk(mu_);
    std::vector<std::string> out;
    for (const auto& l : listeners_) out.push_back(l->uri);
    for (const auto& e : message_endpoints_) out.push_back(e->uri());
    return out;
  }
  std::vector<std::string> idempotent_methods() const override {
    std::lock_guard lk(mu_);
    return idempotent_;
  }

  void start() {
    std::lock_guard lk(mu_);
    if (started_ || stop_requested_) return;
    check_codecs();
    started_ = true;
    if (options_.workers > 0) pool_.emplace(options_.workers);
    for (auto& l : listeners_) accept_more(*l);
    for (auto& e : message_endpoints_) e->start();
    for (std::size_t i = 0; i < options_.io_threads; ++i) {
      io_threads_.emplace_back([this] { run_io(); });
    }
  }

  // An I/O thread: sleeps in epoll between events, or with busy_poll first polls for that long.
  void run_io() {
    const auto spin = options_.busy_poll;
    if (spin.count() <= 0) {
      io_.run();
      return;
    }
    auto last = Clock::now();
    while (!io_.stopped()) {
      if (io_.poll() > 0) {
        last = Clock::now();
      } else if (Clock::now() - last >= spin) {
        io_.run_one();  // sleeps until the next event
        last = Clock::now();
      }
    }
  }

  void request_stop() {
    std::lock_guard lk(mu_);
    stop_requested_ = true;
    stop_cv_.notify_all();
  }

  void wait() {
    {
      std::unique_lock lk(mu_);
      stop_cv_.wait(lk, [&] { return stop_requested_; });
    }
    shutdown(true);
  }

  bool on_server_thread() {
    if (pool_ && pool_->get_executor().running_in_this_thread()) return true;
    const auto self = std::this_thread::get_id();
    return std::any_of(io_threads_.begin(), io_threads_.end(),
                       [&](const std::thread& t) { return t.get_id() == self; });
  }

  // Stops the server. With `drain`, first stops accepting and lets running calls finish for up
  // to drain_timeout (new requests get UNAVAILABLE), then fails the rest with UNAVAILABLE.
  void shutdown(bool drain);
  ServerStats stats();

  // With codecs configured, every method must serve each of them.
  void check_codecs() const {
    if (options_.codecs.empty()) return;
    for (const std::string& codec_text : options_.codecs) {
      const CodecId c = *codec_from_name(codec_text);
      for (const auto& [name, slots] : handlers_) {
        if (slots[std::size_t(c)]) continue;
        std::string types;
        for (const auto& h : slots) {
          if (h) types += (types.empty() ? "" : "; ") + h->signature();
        }
        throw std::invalid_argument("method '" + name + "' cannot use the configured codec '" +
                                    codec_text + "': its handlers take " + types);
      }
      std::vector<const InterfaceTable*> seen;
      for (const auto& [name, object] : objects_) check_interface(name, *object.table, c, seen);
    }
  }
  void check_interface(const std::string& object, const InterfaceTable& table, CodecId c,
                       std::vector<const InterfaceTable*>& seen) const {
    if (std::find(seen.begin(), seen.end(), &table) != seen.end()) return;
    seen.push_back(&table);
    for (const auto& [method, h] : table.methods) {
      if (!h->supports(c)) {
        throw std::invalid_argument("method '" + object + "." + std::string(method) + "' (" +
                                    h->signature() + ") cannot use the configured codec '" +
                                    std::string(codec_name(c)) + "'");
      }
      if (const InterfaceTable* next = h->result_interface()) {
        check_interface(object + "." + std::string(method) + "()", *next, c, seen);
      }
    }
  }

  // Runs a request/oneway frame: inline, or on the pool with a copy of the payload.
  void dispatch(const std::shared_ptr<ReplySink>& sink, const FrameView& f) override;
  // What a frame calls: a handler, or a method of an object (which `self` keeps alive).
  struct Target {
    std::shared_ptr<void> self;
    HandlerBase* handler = nullptr;
  };
  // A call waiting for a worker: what the worker needs. Recycled with its payload buffer, so a
  // call handed to the pool allocates nothing of its own.
  struct Queued {
    std::shared_ptr<ReplySink> conn;
    Target target;
    Buffer payload;
    CallState state;
    CallRegistry* calls = nullptr;  // set when a cancel frame can reach the call
  };
  static constexpr std::size_t kSpareQueued = 256;
  static constexpr std::size_t kRecycledPayload = 64 * 1024;
  std::unique_ptr<Queued> take_queued();
  void recycle(std::unique_ptr<Queued> q) noexcept;
  std::mutex spare_mu_;
  std::vector<std::unique_ptr<Queued>> spare_queued_;
  Status resolve_object(ReplySink& sink, std::string_view method, CodecId codec, Target& target);
  void execute(ReplySink& sink, FrameKind kind, CodecId codec, std::uint64_t call_id,
               const Target& target, std::span<const std::byte> payload, const CallState& state);
  // A call admitted by dispatch() has finished (run, skipped or failed).
  void call_done() {
    if (live_calls_.fetch_sub(1, std::memory_order_acq_rel) == 1 &&
        draining_.load(std::memory_order_acquire)) {
      std::lock_guard lk(drain_mu_);
      drain_cv_.notify_all();
    }
  }
  void register_conn(const std::shared_ptr<ServerConnBase>& conn);
  void unregister_conn(ServerConnBase* conn);
  void count_tls_failure() { tls_failed_.fetch_add(1, std::memory_order_relaxed); }
  std::size_t connection_count() {
    std::lock_guard lk(conns_mu_);
    return conns_.size();
  }
  void count_timeout() { timed_out_.fetch_add(1, std::memory_order_relaxed); }
  // The shortest of the stream connection timeouts: the watchdog looks at least this often.
  Clock::duration watchdog_period() const {
    return std::min({options_.first_frame_timeout, options_.frame_timeout, options_.idle_timeout});
  }
  std::atomic<std::size_t>* object_counter() override { return &objects_live_; }

  const ServerOptions& options() const override { return options_; }
  std::chrono::milliseconds peer_timeout() const override { return options_.heartbeat_timeout; }
  asio::io_context& io() { return io_; }

 private:
  struct Listener {
    asio::basic_socket_acceptor<asio::generic::stream_protocol> acceptor;
    transport::SocketAddress address;
    const transport::StreamTransport* transport;
    std::string uri;
    std::optional<asio::steady_timer> retry;
  };

  void accept_more(Listener& l);
  void reply_error(ReplySink& sink, std::uint64_t call_id, Status status);

  ServerOptions options_;
  std::array<bool, 256> served_{};
  std::unordered_map<std::string, std::array<std::shared_ptr<HandlerBase>, kCodecSlots>, StringHash,
                     std::equal_to<>>
      handlers_;
  std::unordered_map<std::string, ExposedObject, StringHash, std::equal_to<>> objects_;
  std::atomic<std::uint64_t> next_object_{1};
  std::atomic<std::size_t> queued_{0};      // calls posted to the pool and not yet finished
  std::atomic<std::size_t> live_calls_{0};  // calls admitted and not yet finished
  std::atomic<std::size_t> objects_live_{0};
  std::atomic<std::uint64_t> skipped_{0};
  std::atomic<std::uint64_t> refused_{0};
  std::atomic<std::uint64_t> timed_out_{0};
  std::atomic<bool> draining_{false};
  std::mutex drain_mu_;
  std::condition_variable drain_cv_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  std::optional<asio::thread_pool> pool_;
  std::vector<std::thread> io_threads_;
  mutable std::mutex mu_;
  std::condition_variable stop_cv_;
  bool started_ = false;
  bool stop_requested_ = false;
  bool shut_down_ = false;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::vector<std::unique_ptr<MessageEndpoint>> message_endpoints_;
  std::vector<std::string> idempotent_;
  std::mutex conns_mu_;
  std::unordered_map<ServerConnBase*, std::weak_ptr<ServerConnBase>> conns_;
  std::shared_ptr<asio::ssl::context> tls_;  // made by the first tls:// listen()
  std::atomic<std::uint64_t> tls_failed_{0};
};

template <class Stream>
class ServerConn final : public ServerConnBase,
                         public std::enable_shared_from_this<ServerConn<Stream>> {
  static constexpr bool kTls = std::is_same_v<Stream, tls::TlsStream>;

 public:
  // `stream` is a connected socket, or one wrapped in TLS (not yet handshaken).
  ServerConn(ServerCore& core, Stream stream)
      : core_(core),
        socket_(std::move(stream)),
        parser_(core.options().max_frame_size),
        watchdog_(socket_.get_executor()),
        session_(core.object_counter()) {}

  // Before any other use; no handler of this connection runs yet. The watchdog's first-frame
  // deadline bounds the TLS handshake too.
  void start() override {
    const auto now = Clock::now();
    connected_at_ = last_received_ = last_write_progress_ = now;
    arm_watchdog(now);
    if constexpr (kTls) {
      handshake();
    } else {
      read_more();
    }
  }

  Session* session() override { return &session_; }
  CallRegistry* calls() override { return &calls_; }
  bool admit(std::size_t limit) override {
    std::size_t n = inflight_.load(std::memory_order_relaxed);
    do {
      if (n >= limit) return false;
    } while (!inflight_.compare_exchange_weak(n, n + 1, std::memory_order_relaxed));
    return true;
  }
  void release() override { inflight_.fetch_sub(1, std::memory_order_relaxed); }

  // Sends a complete frame, or queues it; safe from any thread. On a plain socket with nothing
  // queued the frame is written at once by the calling thread (a worker, usually), without a
  // hand-off to the I/O thread; what the socket does not take is queued for it.
  void send(Buffer&& frame) override {
    {
      std::lock_guard lk(out_mu_);
      if (closed_ || closing_) return;
      if constexpr (!kTls) {
        if (!write_active_ && !corked_ && queue_.empty() && !try_write_now(frame)) return;
      }
      out_bytes_ += frame.size();
      queue_.push_back(std::move(frame));
      if (write_active_ || corked_) return;  // corked: the end of the batch writes it
      write_active_ = true;
    }
    asio::dispatch(socket_.get_executor(),
                   [self = this->shared_from_this()] { self->write_more(); });
  }

  // Sends a connection-level error frame after the replies already queued, then closes (at the
  // latest after one second). Safe from any thread.
  void fail(const Status& status) override {
    Buffer frame;
    make_error_frame(frame, 0, status);
    send(std::move(frame));
    asio::dispatch(socket_.get_executor(), [self = this->shared_from_this()] {
      {
        std::lock_guard lk(self->out_mu_);
        if (self->closing_) return;
        self->closing_ = true;
        if (!self->write_active_) {
          self->close_now();
          return;
        }
      }
      self->linger_.emplace(self->socket_.get_executor(), std::chrono::seconds(1));
      self->linger_->async_wait([self](std::error_code ec) {
        if (!ec) self->close_now();
      });
    });
  }

  // Closes the socket. On the connection's executor, or after the I/O threads stopped.
  void close_now() override {
    if (closed_.exchange(true)) return;
    std::error_code ignored;
    lowest().shutdown(asio::socket_base::shutdown_both, ignored);
    lowest().close(ignored);
    if (linger_) linger_->cancel();
    watchdog_.cancel();
    session_.close();     // the connection's remote references end with it
    calls_.cancel_all();  // and so do its calls: queued ones are not run
    core_.unregister_conn(this);
  }

 private:
  tls::Socket& lowest() {
    if constexpr (kTls) {
      return socket_.next_layer();
    } else {
      return socket_;
    }
  }

  // TLS: a peer whose first byte is not a TLS handshake record is told, in a plain brine error
  // frame, that this endpoint needs TLS (a plaintext client then fails with that message instead
  // of a bare disconnect); otherwise the handshake runs, then the frames.
  void handshake() {
    lowest().async_wait(asio::socket_base::wait_read, [self = this->shared_from_this()](
                                                          std::error_code ec) {
      if (ec) {
        self->close_now();
        return;
      }
      unsigned char first = 0;
      const int fd = self->lowest().native_handle();
      if (::recv(fd, &first, 1, MSG_PEEK | MSG_DONTWAIT) != 1) {
        self->close_now();
        return;
      }
      if (first != tls::kHandshakeRecord) {
        self->core_.count_tls_failure();
        Buffer frame;
        make_error_frame(frame, 0,
                         {StatusCode::invalid_argument,
                          "protocol error: this endpoint speaks TLS; connect with tls://"});
        (void)::send(fd, frame.data(), frame.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        self->close_now();
        return;
      }
      if constexpr (kTls) {
        self->socket_.async_handshake(asio::ssl::stream_base::server, [self](std::error_code e) {
          if (e) {
            self->core_.count_tls_failure();
            self->close_now();
            return;
          }
          self->secured_ = true;
          self->read_more();
        });
      }
    });
  }

  void read_more() {
    const auto space = parser_.prepare();
    socket_.async_read_some(asio::mutable_buffer(space.data(), space.size()),
                            [self = this->shared_from_this()](std::error_code ec, std::size_t n) {
                              self->on_read(ec, n);
                            });
  }

  void on_read(std::error_code ec, std::size_t n) {
    if (ec) {
      close_now();
      return;
    }
    const bool was_partial = parser_.buffered() > 0;
    parser_.commit(n);
    const auto now = Clock::now();
    last_received_ = now;
    bool completed = false;
    FrameView f{};
    // Replies made while this batch of requests is handled (inline, or by quick workers) are
    // queued and leave together, in one gather write, after it.
    set_corked(true);
    for (;;) {
      const auto next = parser_.next(&f);
      if (next == FrameParser::Next::need_more) break;
      if (next == FrameParser::Next::error) {
        set_corked(false);
        const Status& e = parser_.error();
        fail({e.code, "protocol error: " + e.message});
        return;
      }
      completed = true;
      if (f.kind == FrameKind::request || f.kind == FrameKind::oneway ||
          f.kind == FrameKind::cancel) {
        core_.dispatch(this->shared_from_this(), f);
      } else if (f.kind == FrameKind::heartbeat) {
        Buffer pong;
        begin_frame(pong, FrameKind::heartbeat, 0, {});
        (void)finish_frame(pong, parser_max());
        send(std::move(pong));
      } else {
        set_corked(false);
        fail({StatusCode::invalid_argument,
              "protocol error: clients send only requests, oneways, heartbeats and cancels"});
        return;
      }
    }
    set_corked(false);
    seen_frame_ = seen_frame_ || completed;
    // The deadline of a partial frame runs from its first byte.
    if (parser_.buffered() > 0 && (completed || !was_partial)) partial_since_ = now;
    {
      std::lock_guard lk(out_mu_);
      if (closing_) return;
      // Back-pressure: read no more requests until the peer has taken its replies.
      if (out_bytes_ > core_.options().max_outbound_bytes) {
        paused_ = true;
        return;
      }
    }
    read_more();
  }

  std::size_t parser_max() const { return core_.options().max_frame_size; }

  void write_more() {
    {
      std::lock_guard lk(out_mu_);
      if (queue_.empty() || closed_) {
        write_active_ = false;
        if (closing_) close_now();
        return;
      }
      writing_.swap(queue_);
    }
    gather_.clear();
    writing_bytes_ = 0;
    for (const Buffer& b : writing_) {
      gather_.emplace_back(b.data(), b.size());
      writing_bytes_ += b.size();
    }
    last_write_progress_ = Clock::now();
    asio::async_write(socket_, gather_,
                      [self = this->shared_from_this()](std::error_code ec, std::size_t) {
                        self->writing_.clear();
                        if (ec) {
                          {
                            std::lock_guard lk(self->out_mu_);
                            self->write_active_ = false;
                          }
                          self->close_now();
                          return;
                        }
                        self->last_write_progress_ = Clock::now();
                        bool resume = false;
                        {
                          std::lock_guard lk(self->out_mu_);
                          self->out_bytes_ -= self->writing_bytes_;
                          if (self->paused_ && !self->closing_ &&
                              self->out_bytes_ <= self->core_.options().max_outbound_bytes / 2) {
                            self->paused_ = false;
                            resume = true;
                          }
                        }
                        if (resume) self->read_more();
                        self->write_more();
                      });
  }

  // On the connection's executor: while corked, replies are queued, not written; uncorking
  // writes what was queued.
  void set_corked(bool on) {
    {
      std::lock_guard lk(out_mu_);
      corked_ = on;
      if (on || queue_.empty() || write_active_ || closed_) return;
      write_active_ = true;
    }
    write_more();
  }

  // Under out_mu_, nothing queued or being written: writes what the socket takes now. False when
  // all of it went; otherwise `frame` keeps the rest, for the I/O thread (which also reports an
  // error the socket returned).
  bool try_write_now(Buffer& frame) {
    const ssize_t n =
        ::send(socket_.native_handle(), frame.data(), frame.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n == ssize_t(frame.size())) return false;
    if (n > 0) {
      Buffer rest(frame.size() - std::size_t(n));
      rest.append(frame.data() + n, frame.size() - std::size_t(n));
      frame = std::move(rest);
    }
    return true;
  }

  // --- timeouts: one timer per connection, armed for the earliest deadline ---------------------
  void arm_watchdog(Clock::time_point now) {
    const ServerOptions& o = core_.options();
    auto next = now + core_.watchdog_period();
    if (!seen_frame_) next = std::min(next, connected_at_ + o.first_frame_timeout);
    if (parser_.buffered() > 0) next = std::min(next, partial_since_ + o.frame_timeout);
    next = std::min(next, last_received_ + o.idle_timeout);
    next = std::min(next, last_write_progress_ + o.frame_timeout);
    watchdog_.expires_at(next);
    watchdog_.async_wait([self = this->shared_from_this()](std::error_code ec) {
      if (!ec) self->on_watchdog();
    });
  }

  void on_watchdog() {
    if (closed_) return;
    const auto now = Clock::now();
    const ServerOptions& o = core_.options();
    auto ms = [](std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; };
    std::string why;
    bool writing;
    {
      std::lock_guard lk(out_mu_);
      writing = write_active_;
    }
    if (!seen_frame_ && now >= connected_at_ + o.first_frame_timeout) {
      why = "no complete frame within first_frame_timeout (" + ms(o.first_frame_timeout) + ")";
    } else if (parser_.buffered() > 0 && now >= partial_since_ + o.frame_timeout) {
      why = "a frame took longer than frame_timeout (" + ms(o.frame_timeout) + ") to arrive";
    } else if (inflight_.load(std::memory_order_relaxed) == 0 && !writing &&
               now >= last_received_ + o.idle_timeout) {
      why = "nothing received for idle_timeout (" + ms(o.idle_timeout) + ")";
    } else if (writing && now >= last_write_progress_ + o.frame_timeout) {
      // The peer does not read: an error frame would not get through either.
      core_.count_timeout();
      close_now();
      return;
    }
    if (!why.empty()) {
      core_.count_timeout();
      if (!secured_) {
        close_now();  // no TLS session yet to carry an error frame
        return;
      }
      fail({StatusCode::unavailable, "connection closed by the server: " + why});
      return;
    }
    arm_watchdog(now);
  }

  ServerCore& core_;
  Stream socket_;  // a plain socket or a TLS stream over one
  FrameParser parser_;
  std::mutex out_mu_;
  std::vector<Buffer> queue_;
  std::vector<Buffer> writing_;
  std::size_t writing_bytes_ = 0;
  std::vector<asio::const_buffer> gather_;
  std::size_t out_bytes_ = 0;  // queued and being written (out_mu_)
  bool write_active_ = false;
  bool corked_ = false;  // a batch of requests is being handled (out_mu_)
  bool closing_ = false;
  bool paused_ = false;  // reading stopped by back-pressure (out_mu_)
  std::atomic<bool> closed_{false};
  std::optional<asio::steady_timer> linger_;
  asio::steady_timer watchdog_;
  // Connection-executor state for the timeouts.
  Clock::time_point connected_at_{};
  Clock::time_point last_received_{};
  Clock::time_point partial_since_{};
  Clock::time_point last_write_progress_{};
  bool seen_frame_ = false;
  bool secured_ = !kTls;  // TLS: the handshake is done
  Session session_;
  CallRegistry calls_;
  std::atomic<std::size_t> inflight_{0};
};

std::string ServerCore::listen(std::string_view uri) {
  if (is_zmq_uri(uri)) return add_message_endpoint(uri, false);
  const auto parsed = transport::parse_uri(uri);
  auto addresses = parsed.transport->resolve(parsed.rest, true);
  std::lock_guard lk(mu_);
  if (stop_requested_) throw std::logic_error("listen() after stop()");
  if (parsed.transport->secure && !tls_) tls_ = tls::server_context(options_.tls);
  std::optional<std::string> bound_uri;
  std::uint16_t port = 0;
  std::error_code first_error;
  for (auto& address : addresses) {
    if (address.family == AF_INET || address.family == AF_INET6) {
      // Every address of one name shares the port the first bind picked.
      auto* p = address.family == AF_INET
                    ? &reinterpret_cast<sockaddr_in*>(&address.storage)->sin_port
                    : &reinterpret_cast<sockaddr_in6*>(&address.storage)->sin6_port;
      if (port != 0) *p = htons(port);
    }
    auto l = std::make_unique<Listener>(
        Listener{asio::basic_socket_acceptor<asio::generic::stream_protocol>(io_),
                 address,
                 parsed.transport,
                 {},
                 std::nullopt});
    std::error_code ec;
    const asio::generic::stream_protocol::endpoint ep(address.get(), address.length,
                                                      address.protocol);
    parsed.transport->before_listen(address);
    l->acceptor.open(ep.protocol(), ec);
    if (!ec && address.family != AF_UNIX) {
      l->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    }
    if (!ec) l->acceptor.bind(ep, ec);
    if (!ec) {
      if (const int err = parsed.transport->after_bind(address, options_.unix_socket_mode)) {
        ec = std::error_code(err, std::generic_category());
      }
    }
    if (!ec) l->acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      if (!first_error) first_error = ec;
      continue;
    }
    sockaddr_storage local{};
    socklen_t len = sizeof local;
    ::getsockname(l->acceptor.native_handle(), reinterpret_cast<sockaddr*>(&local), &len);
    if (local.ss_family == AF_INET) port = ntohs(reinterpret_cast<sockaddr_in*>(&local)->sin_port);
    if (local.ss_family == AF_INET6) {
      port = ntohs(reinterpret_cast<sockaddr_in6*>(&local)->sin6_port);
    }
    std::memcpy(&l->address.storage, &local, len);
    l->address.length = len;
    if (address.family == AF_UNIX) l->address = address;
    l->uri = parsed.transport->bound_uri(parsed.rest, l->address);
    if (!bound_uri) bound_uri = l->uri;
    if (started_) accept_more(*l);
    listeners_.push_back(std::move(l));
  }
  if (!bound_uri) {
    throw std::system_error(first_error, "cannot listen on " + std::string(uri));
  }
  return *bound_uri;
}

void ServerCore::accept_more(Listener& l) {
  // A connection's handlers must not run concurrently: with several I/O threads a strand sees
  // to it; with one (the default) the io_context alone does, without the strand's cost.
  l.acceptor.async_accept(
      options_.io_threads > 1 ? asio::any_io_executor(asio::make_strand(io_))
                              : asio::any_io_executor(io_.get_executor()),
      [this, &l](std::error_code ec, asio::generic::stream_protocol::socket socket) {
        if (ec == asio::error::operation_aborted) return;
        if (ec) {
          // Out of descriptors or similar: back off instead of spinning.
          l.retry.emplace(io_, std::chrono::milliseconds(100));
          l.retry->async_wait([this, &l](std::error_code e) {
            if (!e) accept_more(l);
          });
          return;
        }
        if (draining_.load(std::memory_order_relaxed)) return;
        if (connection_count() >= options_.max_connections) {
          refused_.fetch_add(1, std::memory_order_relaxed);
          Buffer frame;
          make_error_frame(
              frame, 0,
              {StatusCode::resource_exhausted,
               "the server has its maximum of " + std::to_string(options_.max_connections) +
                   " connections open (max_connections); try again later"});
          // Best effort: the socket is fresh, so 100-odd bytes fit its buffer.
          (void)::send(socket.native_handle(), frame.data(), frame.size(),
                       MSG_NOSIGNAL | MSG_DONTWAIT);
          std::error_code ignored;
          socket.close(ignored);
          accept_more(l);
          return;
        }
        l.transport->configure(socket.native_handle());
        std::shared_ptr<ServerConnBase> conn;
        if (l.transport->secure) {
          conn = std::make_shared<ServerConn<tls::TlsStream>>(
              *this, tls::TlsStream(std::move(socket), *tls_));
        } else {
          conn = std::make_shared<ServerConn<tls::Socket>>(*this, std::move(socket));
        }
        register_conn(conn);
        conn->start();
        accept_more(l);
      });
}

void ServerCore::register_conn(const std::shared_ptr<ServerConnBase>& conn) {
  std::lock_guard lk(conns_mu_);
  conns_.emplace(conn.get(), conn);
}

void ServerCore::unregister_conn(ServerConnBase* conn) {
  std::lock_guard lk(conns_mu_);
  conns_.erase(conn);
}

void ServerCore::reply_error(ReplySink& sink, std::uint64_t call_id, Status status) {
  Buffer frame;
  make_error_frame(frame, call_id, status);
  sink.send(std::move(frame));
}

void ServerCore::dispatch(const std::shared_ptr<ReplySink>& conn, const FrameView& f) {
  if (f.kind == FrameKind::cancel) {
    if (CallRegistry* calls = conn->calls()) calls->cancel(f.call_id);
    return;
  }
  const bool oneway = f.kind == FrameKind::oneway;
  if (draining_.load(std::memory_order_relaxed)) {
    if (!oneway) {
      reply_error(*conn, f.call_id, {StatusCode::unavailable, "the server is shutting down"});
    }
    return;
  }
  if (!served_[f.codec]) {
    if (!oneway) {
      reply_error(*conn, f.call_id,
                  {StatusCode::unimplemented,
                   "codec '" + codec_display(f.codec) + "' is not served by this server"});
    }
    return;
  }
  const auto codec = CodecId(f.codec);
  Target target;
  if (const auto it = handlers_.find(f.method); it != handlers_.end()) {
    target.handler = f.codec < kCodecSlots ? it->second[f.codec].get() : nullptr;
    if (target.handler == nullptr) {
      if (!oneway) {
        reply_error(*conn, f.call_id,
                    {StatusCode::unimplemented, "method '" + std::string(f.method) +
                                                    "' does not accept codec '" +
                                                    codec_display(f.codec) + "'"});
      }
      return;
    }
  } else if (Status s = resolve_object(*conn, f.method, codec, target); !s.ok()) {
    if (!oneway) reply_error(*conn, f.call_id, std::move(s));
    return;
  } else if (target.handler == nullptr) {
    return;  // a reference released
  }
  if (!conn->admit(options_.max_inflight_per_connection)) {
    if (!oneway) {
      reply_error(*conn, f.call_id,
                  {StatusCode::resource_exhausted,
                   "more than " + std::to_string(options_.max_inflight_per_connection) +
                       " calls in flight on this connection"});
    }
    return;
  }
  live_calls_.fetch_add(1, std::memory_order_relaxed);
  const auto deadline = f.timeout_ms == 0 ? Clock::time_point::max()
                                          : Clock::now() + std::chrono::milliseconds(f.timeout_ms);
  if (!pool_) {
    CallState state;
    state.deadline = deadline;
    execute(*conn, f.kind, codec, f.call_id, target, f.payload, state);
    conn->release();
    call_done();
    return;
  }
  if (queued_.fetch_add(1, std::memory_order_relaxed) >= options_.max_queued_calls) {
    queued_.fetch_sub(1, std::memory_order_relaxed);
    conn->release();
    call_done();
    if (!oneway) {
      reply_error(*conn, f.call_id,
                  {StatusCode::resource_exhausted,
                   "server busy: " + std::to_string(options_.max_queued_calls) +
                       " calls are waiting for a worker"});
    }
    return;
  }
  // The payload is copied out of the read buffer (which the next read reuses) into a recycled
  // Queued whose buffer has room already.
  std::unique_ptr<Queued> call = take_queued();
  call->conn = conn;
  call->target = std::move(target);
  call->payload.append(f.payload.data(), f.payload.size());
  call->state.deadline = deadline;
  if (!oneway) {
    CallRegistry* calls = conn->calls();
    if (calls != nullptr && calls->add(f.call_id, &call->state)) call->calls = calls;
  }
  asio::post(
      *pool_, [this, call = std::move(call), kind = f.kind, codec, id = f.call_id]() mutable {
        execute(*call->conn, kind, codec, id, call->target, call->payload.bytes(), call->state);
        if (call->calls != nullptr) call->calls->remove(id);
        queued_.fetch_sub(1, std::memory_order_relaxed);
        call->conn->release();
        call_done();
        recycle(std::move(call));
      });
}

std::unique_ptr<ServerCore::Queued> ServerCore::take_queued() {
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

void ServerCore::recycle(std::unique_ptr<Queued> q) noexcept {
  q->conn.reset();
  q->target = {};
  q->calls = nullptr;
  q->state.deadline = Clock::time_point::max();
  q->state.cancelled.store(false, std::memory_order_relaxed);
  if (q->payload.capacity() > kRecycledPayload) return;  // large: give the memory back
  q->payload.clear();
  std::lock_guard lk(spare_mu_);
  if (spare_queued_.size() < kSpareQueued) spare_queued_.push_back(std::move(q));
}

Status ServerCore::resolve_object(ReplySink& sink, std::string_view method, CodecId codec,
                                  Target& target) {
  const auto dot = method.rfind('.');
  if (dot == std::string_view::npos) {
    return {StatusCode::not_found, "no method '" + std::string(method) + "'"};
  }
  const std::string_view name = method.substr(0, dot);
  const std::string_view member = method.substr(dot + 1);
  ExposedObject object;
  if (!name.empty() && name.front() == '@') {
    Session* session = sink.session();
    if (member == kReleaseMethod) {
      if (session != nullptr) session->release(name);
      return {};
    }
    auto found = session != nullptr ? session->find(name) : std::nullopt;
    if (!found) {
      return {StatusCode::not_found,
              "no object '" + std::string(name) +
                  "' on this connection (a remote reference ends with the connection that made "
                  "it, or when released)"};
    }
    object = std::move(*found);
  } else if (const auto it = objects_.find(name); it != objects_.end()) {
    object = it->second;
  } else {
    return {StatusCode::not_found,
            "no method '" + std::string(method) + "' and no object '" + std::string(name) + "'"};
  }
  HandlerBase* handler = object.table->find(member);
  if (handler == nullptr) {
    return {StatusCode::not_found, "object '" + std::string(name) + "' (" +
                                       std::string(object.table->name) + ") has no method '" +
                                       std::string(member) + "'"};
  }
  if (!handler->supports(codec)) {
    return {StatusCode::unimplemented, "method '" + std::string(method) + "' (" +
                                           handler->signature() + ") cannot use codec '" +
                                           std::string(codec_name(codec)) + "'"};
  }
  target = {std::move(object.self), handler};
  return {};
}

namespace {
// Keeps the objects a factory returns in the calling connection's session.
class ConnContext final : public CallContext {
 public:
  ConnContext(ServerCore& core, ReplySink& sink) : core_(core), sink_(sink) {}
  std::string keep(std::shared_ptr<void> object, const InterfaceTable& table) override {
    Session* session = sink_.session();
    if (session == nullptr) {
      throw RpcError(StatusCode::unimplemented,
                     "remote references need a direct connection to the server (this call came "
                     "through a broker)");
    }
    std::string name = core_.next_object_name();
    session->keep(name, ExposedObject{std::move(object), &table});
    return name;
  }

 private:
  ServerCore& core_;
  ReplySink& sink_;
};
}  // namespace

void ServerCore::execute(ReplySink& conn, FrameKind kind, CodecId codec, std::uint64_t call_id,
                         const Target& target, std::span<const std::byte> payload,
                         const CallState& state) {
  if (state.cancelled.load(std::memory_order_relaxed)) {
    skipped_.fetch_add(1, std::memory_order_relaxed);
    return;  // the caller has given up and completed the call itself: no reply
  }
  if (state.deadline != Clock::time_point::max() && Clock::now() >= state.deadline) {
    skipped_.fetch_add(1, std::memory_order_relaxed);
    if (kind != FrameKind::oneway) {
      reply_error(conn, call_id,
                  {StatusCode::deadline_exceeded,
                   "the caller's deadline passed before the call could start; not run"});
    }
    return;
  }
  Buffer out;
  begin_frame(out, FrameKind::reply, std::uint8_t(codec), {});
  set_call_id(out, call_id);
  Status failure;
  current_call = &state;
  try {
    ConnContext ctx(*this, conn);
    target.handler->invoke(target.self.get(), codec, payload, options_.decode_limits, out, ctx);
  } catch (const RpcError& e) {
    failure = e.status();
    if (failure.ok()) failure.code = StatusCode::unknown;
  } catch (const std::exception& e) {
    failure = {StatusCode::internal, e.what(), type_name(typeid(e))};
  } catch (...) {
    failure = {StatusCode::unknown, "the handler threw something that is not a std::exception"};
  }
  current_call = nullptr;
  if (kind == FrameKind::oneway || state.cancelled.load(std::memory_order_relaxed)) return;
  if (failure.ok() && !finish_frame(out, options_.max_frame_size)) {
    failure = {StatusCode::resource_exhausted,
               "reply of " + std::to_string(out.size() - kPrefixSize) +
                   " bytes exceeds the limit of " + std::to_string(options_.max_frame_size)};
  }
  if (!failure.ok()) make_error_frame(out, call_id, failure);
  conn.send(std::move(out));
}

void ServerCore::shutdown(bool drain) {
  {
    std::lock_guard lk(mu_);
    stop_requested_ = true;
    stop_cv_.notify_all();
    if (shut_down_) return;
    shut_down_ = true;
    drain = drain && started_;
  }
  if (drain) {
    // Stop accepting (acceptors belong to the I/O threads), refuse new calls, let running ones
    // finish; then tell every peer why its connection ends, after the replies already queued.
    draining_.store(true, std::memory_order_release);
    auto closed = std::make_shared<std::promise<void>>();
    asio::post(io_, [this, closed] {
      for (auto& l : listeners_) {
        std::error_code ignored;
        l->acceptor.close(ignored);
        if (l->retry) l->retry->cancel();
      }
      closed->set_value();
    });
    closed->get_future().wait_for(std::chrono::seconds(1));
    bool finished;
    {
      std::unique_lock lk(drain_mu_);
      finished = drain_cv_.wait_for(lk, options_.drain_timeout, [&] {
        return live_calls_.load(std::memory_order_acquire) == 0;
      });
    }
    std::vector<std::shared_ptr<ServerConnBase>> conns;
    {
      std::lock_guard lk(conns_mu_);
      for (auto& [ptr, weak] : conns_) {
        if (auto c = weak.lock()) conns.push_back(std::move(c));
      }
    }
    const Status why =
        finished ? Status{StatusCode::unavailable, "the server shut down"}
                 : Status{StatusCode::unavailable,
                          "the server shut down before the call finished (drain_timeout " +
                              std::to_string(options_.drain_timeout.count()) + " ms)"};
    for (auto& c : conns) c->fail(why);
    conns.clear();
    // Each connection closes once its last frame is written, or after a second.
    const auto until = Clock::now() + std::chrono::milliseconds(1500);
    while (connection_count() > 0 && Clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  // I/O first, so that clients see their connections close at once; then the handlers still
  // running finish (their replies go nowhere).
  work_.reset();
  io_.stop();
  for (auto& t : io_threads_) t.join();
  io_threads_.clear();
  for (auto& e : message_endpoints_) e->stop(drain);
  // No I/O thread runs any more: closing here races with nothing.
  for (auto& l : listeners_) {
    std::error_code ignored;
    l->acceptor.close(ignored);
    if (l->retry) l->retry->cancel();
    l->transport->after_close(l->address);
  }
  std::vector<std::shared_ptr<ServerConnBase>> conns;
  {
    std::lock_guard lk(conns_mu_);
    for (auto& [ptr, weak] : conns_) {
      if (auto c = weak.lock()) conns.push_back(std::move(c));
    }
  }
  for (auto& c : conns) c->close_now();
  if (pool_) {
    pool_->stop();
    pool_->join();
  }
}

ServerStats ServerCore::stats() {
  ServerStats st;
  st.connections = connection_count();
  st.calls_in_flight = live_calls_.load(std::memory_order_relaxed);
  st.remote_objects = objects_live_.load(std::memory_order_relaxed);
  st.calls_skipped = skipped_.load(std::memory_order_relaxed);
  st.connections_refused = refused_.load(std::memory_order_relaxed);
  st.connections_timed_out = timed_out_.load(std::memory_order_relaxed);
  st.tls_handshakes_failed = tls_failed_.load(std::memory_order_relaxed);
  return st;
}

}  // namespace detail

Server::Server(ServerOptions options)
    : core_(std::make_unique<detail::ServerCore>(std::move(options))) {}
Server::~Server() = default;
Server::Server(Server&&) noexcept = default;
Server& Server::operator=(Server&&) noexcept = default;

void Server::add_handler(std::string_view method, std::shared_ptr<detail::HandlerBase> handler,
                         HandlerOptions options) {
  core_->add_handler(method, std::move(handler), std::move(options));
}
void Server::add_object(std::string_view name, std::shared_ptr<void> object,
                        const detail::InterfaceTable& table) {
  core_->add_object(name, std::move(object), table);
}
std::string Server::listen(std::string_view uri) {
  return core_->listen(uri);
}
std::string Server::connect(std::string_view uri) {
  if (!detail::is_zmq_uri(uri)) {
    throw std::invalid_argument("connect() needs a zmq+ URI (a broker's backend), not " +
                                std::string(uri));
  }
  return core_->add_message_endpoint(uri, true);
}
std::vector<std::string> Server::endpoints() const {
  return core_->endpoints();
}
void Server::start() {
  core_->start();
}
void Server::run() {
  core_->start();
  core_->wait();
}
void Server::wait() {
  core_->wait();
}
void Server::stop() {
  core_->request_stop();
  if (!core_->on_server_thread()) core_->shutdown(true);
}
ServerStats Server::stats() const {
  return core_->stats();
}

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
bool cancelled() noexcept {
  const auto* call = detail::current_call;
  if (call == nullptr) return false;
  return call->cancelled.load(std::memory_order_relaxed) ||
         std::chrono::steady_clock::now() >= call->deadline;
}
}  // namespace this_call

}  // namespace brine
