// Client core: one connection, calls matched to replies by call id.
//
// Writes happen on the calling thread, straight to the socket under a write lock (no hand-off to
// the I/O thread on the way out). On plain stream sockets a blocking caller then reads the socket
// itself until its reply is in (spinning first in low-latency mode), completing any other replies
// it meets; the I/O thread reads only while asynchronous calls are pending and nobody else does.
// So a blocking call costs one wake-up, as a hand-written blocking client does. TLS and ZeroMQ
// replies are read by the I/O thread, which wakes the caller. Per-call timers exist only for
// asynchronous calls; a blocking caller times out by itself.
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fcntl.h>

#include <cerrno>
#include <cstring>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include "backoff.hpp"
#include "brine/client.hpp"
#include "brine_asio.hpp"
#include "client_conn.hpp"
#include "transport/tls/tls.hpp"
#include "transport/transport.hpp"

namespace brine {
namespace detail {

using Clock = std::chrono::steady_clock;

// One stream connection: Stream is a plain socket, or a TLS stream over one.
//
// Plain: callers write straight to the socket (under a lock). TLS: an SSL object must not be
// used by two threads at once, and the I/O thread reads from it, so callers queue their frames
// and the I/O thread writes them (several in one gather write).
template <class Stream>
class StreamClientConn final : public ClientConn {
  static constexpr bool kTls = std::is_same_v<Stream, tls::TlsStream>;

 public:
  StreamClientConn(asio::io_context& io, int fd, int family, int protocol,
                   const ClientOptions& options, asio::ssl::context* tls_context = nullptr)
      : ClientConn(io.get_executor()),
        io_(io),
        socket_(make_stream(io, fd, family, protocol, tls_context)),
        fd_(fd),
        parser_(options.max_frame_size),
        heartbeat_interval_(options.heartbeat_interval),
        heartbeat_timeout_(options.heartbeat_timeout),
        heartbeat_timer_(io) {
    if constexpr (!kTls) {
      wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
      if (wake_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
    }
  }
  ~StreamClientConn() override {
    if (wake_fd_ >= 0) ::close(wake_fd_);
    if constexpr (!kTls) ::close(fd_);  // plain: no Asio socket owns it
  }

  // TLS: the client handshake, on the I/O thread, waited for here until the deadline. False with
  // `why` set when it fails (the connection is then unusable).
  bool handshake(const std::string& host, Deadline deadline, std::string& why) {
    static_assert(kTls);
    tls::expect_host(socket_, host);
    auto done = std::make_shared<std::promise<std::error_code>>();
    auto outcome = done->get_future();
    asio::post(heartbeat_timer_.get_executor(), [this, done] {
      socket_.async_handshake(asio::ssl::stream_base::client,
                              [done](std::error_code ec) { done->set_value(ec); });
    });
    if (outcome.wait_until(deadline) == std::future_status::timeout) {
      ::shutdown(fd_, SHUT_RDWR);  // ends the handshake; then wait for it to let go of `this`
      outcome.wait();
      why = "the TLS handshake did not finish before the deadline";
      return false;
    }
    const std::error_code ec = outcome.get();
    if (ec) why = tls::describe_failure(socket_, ec);
    return !ec;
  }

  void start(std::shared_ptr<ClientConn> self) override {
    auto conn = std::static_pointer_cast<StreamClientConn>(std::move(self));
    self_ = conn;
    const auto now = Clock::now().time_since_epoch().count();
    last_received_ = now;
    last_sent_ = now;
    // The timer belongs to the I/O thread.
    asio::post(heartbeat_timer_.get_executor(),
               [weak = std::weak_ptr<StreamClientConn>(conn)] { arm_heartbeat(weak); });
    if constexpr (kTls) read_more(std::move(conn));  // plain: read on demand (wait_for, watch)
  }

  bool wait_for(Waiter& w, Deadline deadline, std::chrono::microseconds spin) override {
    if constexpr (kTls) {
      return ClientConn::wait_for(w, deadline, spin);
    } else {
      for (;;) {
        if (w.settled()) return true;
        if (take_reading()) {
          read_until(w, deadline, spin);
          release_reading();
          if (w.settled()) return true;
          if (Clock::now() >= deadline) return false;
          continue;  // being completed by another thread (cancel) right now
        }
        // Another thread reads: it completes this call, or hands the reading on when it stops.
        return w.sleep_until(deadline);
      }
    }
  }

  void expect_reply() override {
    if constexpr (!kTls) watch();  // TLS: the I/O thread always reads
  }

  bool refresh() override {
    if constexpr (!kTls) {
      // Skipped right after a reply (back-to-back calls): a close in that instant is as likely as
      // one just after the check, and both fail the call with UNAVAILABLE. After a pause, the
      // check (one recv) makes a call reconnect to a server that closed or restarted meanwhile.
      const auto since =
          Clock::now().time_since_epoch().count() - last_received_.load(std::memory_order_relaxed);
      if (since > kFreshFor.count() && !watching_.load(std::memory_order_relaxed) &&
          take_reading()) {
        (void)read_available(false);
        release_reading();
      }
    }
    return !dead();
  }

  transport::WriteResult write(Buffer&& frame, Deadline deadline) override {
    if constexpr (kTls) {
      (void)deadline;  // the call's own timer bounds it: the frame is queued
      return queue(std::move(frame));
    } else {
      std::unique_lock lk(write_mu_, std::defer_lock);
      if (!lk.try_lock_until(deadline)) return {transport::WriteOutcome::timed_out_clean, {}};
      auto result = transport::write_all(fd_, frame.data(), frame.size(), deadline);
      if (result.outcome == transport::WriteOutcome::done) {
        last_sent_.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
      }
      return result;
    }
  }

 private:
  // Every heartbeat_interval: declare the connection dead if nothing arrived for
  // heartbeat_timeout, else send a heartbeat if nothing was sent for an interval.
  static void arm_heartbeat(const std::weak_ptr<StreamClientConn>& weak) {
    auto conn = weak.lock();
    if (!conn || conn->dead()) return;
    conn->heartbeat_timer_.expires_after(conn->heartbeat_interval_);
    conn->heartbeat_timer_.async_wait([weak](std::error_code ec) {
      if (ec) return;
      auto c = weak.lock();
      if (!c || c->dead()) return;
      if (c->beat()) arm_heartbeat(weak);
    });
  }

  // TLS: the Asio stream the I/O thread reads. Plain: nothing; the descriptor is not registered
  // with the I/O thread's epoll at all (it would wake that thread at every reply a caller reads
  // itself), only watched through a duplicate while asynchronous calls are pending (watch()).
  using Socket = std::conditional_t<kTls, Stream, int>;
  static Socket make_stream(asio::io_context& io, int fd, int family, int protocol,
                            asio::ssl::context* tls_context) {
    if constexpr (kTls) {
      tls::Socket socket(io, asio::generic::stream_protocol(family, protocol), fd);
      return Stream(std::move(socket), *tls_context);
    } else {
      (void)io, (void)family, (void)protocol, (void)tls_context;
      return fd;
    }
  }

  // TLS: queues a frame for the I/O thread.
  transport::WriteResult queue(Buffer&& frame) {
    {
      std::lock_guard lk(out_mu_);
      if (dead()) return {transport::WriteOutcome::failed, "connection closed"};
      out_.push_back(std::move(frame));
      if (writing_) return {transport::WriteOutcome::done, {}};
      writing_ = true;
    }
    asio::post(heartbeat_timer_.get_executor(), [weak = self_] {
      if (auto c = weak.lock()) c->flush();
    });
    return {transport::WriteOutcome::done, {}};
  }

  // TLS, on the I/O thread: writes everything queued, in one gather write, until none is left.
  void flush() {
    {
      std::lock_guard lk(out_mu_);
      if (out_.empty()) {
        writing_ = false;
        return;
      }
      sending_.swap(out_);
    }
    gather_.clear();
    for (const Buffer& b : sending_) gather_.emplace_back(b.data(), b.size());
    asio::async_write(socket_, gather_, [weak = self_](std::error_code ec, std::size_t) {
      auto c = weak.lock();
      if (!c) return;
      c->sending_.clear();
      if (ec) {
        c->fail({StatusCode::unavailable, "connection lost while sending: " + ec.message()}, true);
        return;
      }
      c->last_sent_.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
      c->flush();
    });
  }

  // --- plain sockets: whoever holds the reading role reads (a blocking caller, or the I/O thread)
  bool take_reading() { return !reading_.exchange(true, std::memory_order_acquire); }

  // Lets go of the reading role; calls still pending are then read by the I/O thread. (Both
  // sides are sequentially consistent: see on_readable.)
  void release_reading() {
    reading_.store(false, std::memory_order_seq_cst);
    if (!watching_.load(std::memory_order_seq_cst) && pending_count() > 0) watch();
  }

  // Has the I/O thread read the socket when it becomes readable, until no call is pending.
  void watch() {
    if (watching_.exchange(true, std::memory_order_seq_cst)) return;
    asio::post(heartbeat_timer_.get_executor(), [self = self_.lock()] {
      if (!self) return;
      if (!self->watcher_) {
        const int dup = ::fcntl(self->fd_, F_DUPFD_CLOEXEC, 0);
        if (dup < 0) {
          self->watching_ = false;
          self->fail({StatusCode::unavailable,
                      "cannot watch the connection: " + std::string(std::strerror(errno))},
                     true);
          return;
        }
        self->watcher_.emplace(self->io_, dup);
      }
      // The reactor's epoll registration is edge-triggered: a reply that arrived while the
      // watcher stayed registered with no wait queued (a caller held the reading role) raised
      // its edge already, and a wait queued now would sleep past it. So look first.
      pollfd readable{self->fd_, POLLIN, 0};
      if (::poll(&readable, 1, 0) > 0) {
        self->on_readable({});
        return;
      }
      self->watcher_->async_wait(asio::posix::stream_descriptor::wait_read,
                                 [self](std::error_code ec) { self->on_readable(ec); });
    });
  }

  // On the I/O thread.
  void on_readable(std::error_code ec) {
    // Cleared before trying the role: a caller that holds it sees this when it lets go and calls
    // watch() again, so a pending reply is never left unread.
    watching_.store(false, std::memory_order_seq_cst);
    if (!ec && take_reading()) {
      (void)read_available(true);
      release_reading();
    }
    // Nobody asked to go on watching: stop being woken by this socket.
    if (!watching_.load(std::memory_order_seq_cst)) watcher_.reset();
  }

  // Holding the role: takes in `n` bytes just received. False when the connection closed.
  bool took(std::size_t n, bool on_io) {
    parser_.commit(n);
    last_received_.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
    return drain(on_io);
  }

  void lost(ssize_t n, int err, bool on_io) {
    fail({StatusCode::unavailable, n == 0 ? std::string("connection closed by the server")
                                          : "connection lost: " + std::string(std::strerror(err))},
         on_io);
  }

  // Holding the role: reads what the socket has now. False when the connection closed.
  bool read_available(bool on_io) {
    for (;;) {
      const auto space = parser_.prepare();
      const ssize_t n = ::recv(fd_, space.data(), space.size(), MSG_DONTWAIT);
      if (n > 0) {
        if (!took(std::size_t(n), on_io)) return false;
        if (std::size_t(n) < space.size()) return true;  // drained; a later arrival is polled for
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
      lost(n, errno, on_io);
      return false;
    }
  }

  // Holding the role, on a blocking caller's thread: reads until `w` is completed, the deadline
  // passes or the connection closes; spins for `spin` before sleeping in poll().
  void read_until(Waiter& w, Deadline deadline, std::chrono::microseconds spin) {
    const auto spin_until = Clock::now() + spin;
    // Not spinning: the reply is rarely in yet, so sleep in poll() before the first recv().
    bool wait_first = spin.count() <= 0;
    while (!w.is_finished()) {
      if (wait_first) {
        wait_first = false;
        if (!sleep_until_readable(deadline)) return;
        continue;
      }
      const auto space = parser_.prepare();
      const ssize_t n = ::recv(fd_, space.data(), space.size(), MSG_DONTWAIT);
      if (n > 0) {
        if (!took(std::size_t(n), false)) return;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        lost(n, errno, false);
        return;
      }
      if (Clock::now() < spin_until) continue;
      if (!sleep_until_readable(deadline)) return;
    }
  }

  // Sleeps until the socket is readable, the wake eventfd is written (cancel) or the deadline
  // passes (false).
  bool sleep_until_readable(Deadline deadline) {
    const auto now = Clock::now();
    if (now >= deadline) return false;
    pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
    (void)::poll(fds, 2, int(std::min<std::int64_t>(ms, 60000)));
    if ((fds[1].revents & POLLIN) != 0) {
      std::uint64_t count = 0;
      (void)!::read(wake_fd_, &count, sizeof count);
    }
    return true;
  }

  void wake_reader() override {
    if (wake_fd_ < 0) return;
    const std::uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
  }

  // False when the connection was declared dead.
  bool beat() {
    if constexpr (!kTls) {
      // Heartbeat answers (and a close) that arrived while nobody read.
      if (!watching_.load(std::memory_order_relaxed) && take_reading()) {
        const bool open = read_available(true);
        release_reading();
        if (!open) return false;
      }
    }
    const auto now = Clock::now();
    const auto since = [&](const std::atomic<Clock::rep>& t) {
      return now - Clock::time_point(Clock::duration(t.load(std::memory_order_relaxed)));
    };
    if (since(last_received_) >= heartbeat_timeout_) {
      fail({StatusCode::unavailable,
            "nothing arrived from the server for " + std::to_string(heartbeat_timeout_.count()) +
                " ms (heartbeat_timeout): it is stopped, hung or unreachable"},
           true);
      return false;
    }
    if (since(last_sent_) < heartbeat_interval_) return true;
    if constexpr (kTls) {
      Buffer frame;
      begin_frame(frame, FrameKind::heartbeat, 0, {});
      (void)finish_frame(frame, 0xFFFFFFFFu);
      (void)queue(std::move(frame));
      return true;
    } else {
      return beat_plain(now);
    }
  }

  bool beat_plain(Clock::time_point now) {
    // Never block the I/O thread: a writer busy on the socket is activity enough.
    std::unique_lock lk(write_mu_, std::defer_lock);
    if (!lk.try_lock_until(now)) return true;
    Buffer frame;
    begin_frame(frame, FrameKind::heartbeat, 0, {});
    (void)finish_frame(frame, 0xFFFFFFFFu);
    const ssize_t n = ::send(fd_, frame.data(), frame.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0 && std::size_t(n) < frame.size()) {
      // Rare: the buffer had room for part of it. Finish it, briefly, or the stream is broken.
      const auto rest = transport::write_all(fd_, frame.data() + n, frame.size() - std::size_t(n),
                                             now + heartbeat_interval_);
      if (rest.outcome != transport::WriteOutcome::done) {
        lk.unlock();
        fail({StatusCode::unavailable, "connection closed: partial heartbeat write"}, true);
        return false;
      }
    }
    if (n > 0) last_sent_.store(now.time_since_epoch().count(), std::memory_order_relaxed);
    return true;
  }

  // Wakes the reader; the socket closes when the last reference goes. (The heartbeat timer
  // stops by itself: it sees the connection dead.)
  void close_transport() override { ::shutdown(fd_, SHUT_RDWR); }

  static void read_more(std::shared_ptr<StreamClientConn> conn) {
    const auto space = conn->parser_.prepare();
    auto& socket = conn->socket_;
    socket.async_read_some(
        asio::mutable_buffer(space.data(), space.size()),
        [conn = std::move(conn)](std::error_code ec, std::size_t n) mutable {
          if (ec) {
            conn->fail({StatusCode::unavailable, ec == asio::error::eof
                                                     ? "connection closed by the server"
                                                     : "connection lost: " + ec.message()},
                       true);
            return;
          }
          conn->parser_.commit(n);
          conn->last_received_.store(Clock::now().time_since_epoch().count(),
                                     std::memory_order_relaxed);
          if (conn->drain(true)) read_more(std::move(conn));
        });
  }

  // Completes the calls whose replies arrived. False when the connection must close.
  bool drain(bool on_io) {
    FrameView f{};
    for (;;) {
      switch (parser_.next(&f)) {
        case FrameParser::Next::need_more:
          return true;
        case FrameParser::Next::error: {
          const Status& e = parser_.error();
          fail({e.code == StatusCode::resource_exhausted ? e.code : StatusCode::internal,
                "bad frame from the server: " + e.message},
               on_io);
          return false;
        }
        case FrameParser::Next::frame:
          if (!deliver(f, on_io)) return false;
      }
    }
  }

  asio::io_context& io_;
  Socket socket_;
  int fd_;
  std::optional<asio::posix::stream_descriptor> watcher_;  // plain, I/O thread only
  FrameParser parser_;
  DeadlineMutex write_mu_;  // plain: one writer at a time
  // TLS: frames waiting for the I/O thread, and those it is writing.
  std::mutex out_mu_;
  std::vector<Buffer> out_;
  bool writing_ = false;
  std::vector<Buffer> sending_;
  std::vector<asio::const_buffer> gather_;
  std::weak_ptr<StreamClientConn> self_;
  std::chrono::milliseconds heartbeat_interval_;
  std::chrono::milliseconds heartbeat_timeout_;
  asio::steady_timer heartbeat_timer_;
  std::atomic<Clock::rep> last_received_{0};
  std::atomic<Clock::rep> last_sent_{0};
  // Plain sockets: the reading role (parser_ belongs to its holder), whether the I/O thread
  // waits for the socket to be readable, and the eventfd that wakes a caller sleeping in poll().
  std::atomic<bool> reading_{false};
  static constexpr Clock::duration kFreshFor = std::chrono::milliseconds(1);
  std::atomic<bool> watching_{false};
  int wake_fd_ = -1;
};

class ClientCore {
 public:
  ClientCore(std::string_view uri, ClientOptions options)
      : uri_(uri), options_(std::move(options)) {
    if (is_zmq_uri(uri_)) {
      check_zmq_uri(uri_);
    } else {
      parsed_ = transport::parse_uri(uri_);
      if (parsed_.transport->secure) tls_ = tls::client_context(options_.tls);
    }
    const auto codec = codec_from_name(options_.codec);
    if (!codec) throw std::invalid_argument("unknown codec '" + options_.codec + "'");
    codec_ = *codec;
    if (options_.max_frame_size < 1024) throw std::invalid_argument("max_frame_size < 1024");
    if (options_.timeout.count() <= 0) throw std::invalid_argument("timeout must be positive");
    if (options_.heartbeat_interval.count() <= 0 ||
        options_.heartbeat_timeout <= options_.heartbeat_interval) {
      throw std::invalid_argument(
          "heartbeat_interval must be positive and heartbeat_timeout longer than it");
    }
    if (options_.reconnect_backoff_initial.count() <= 0 ||
        options_.reconnect_backoff_max < options_.reconnect_backoff_initial) {
      throw std::invalid_argument("reconnect backoff: need 0 < initial <= max");
    }
    thread_ = std::thread([this] {
      on_client_thread = true;
      io_.run();
    });
  }

  ~ClientCore() {
    close();
    work_.reset();
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }

  const std::string& uri() const { return uri_; }
  const ClientOptions& options() const { return options_; }

  // Frees a remote reference on the server, on the connection that made it (a new connection
  // has nothing to free: the server freed it with the old one). Never connects, never throws.
  void release(const std::string& object) noexcept {
    try {
      std::shared_ptr<ClientConn> conn;
      {
        std::lock_guard lk(conn_mu_);
        if (!conn_ || conn_->dead()) return;
        conn = conn_;
      }
      Buffer frame;
      begin_frame(frame, FrameKind::oneway, std::uint8_t(codec_), object, kReleaseMethod);
      (void)finish_frame(frame, options_.max_frame_size);
      set_call_id(frame, next_id_.fetch_add(1, std::memory_order_relaxed));
      conn->send_control(std::move(frame));
    } catch (...) {
      // Out of memory: the server frees the object with the connection instead.
    }
  }
  CodecId codec() const { return codec_; }

  bool wait_for_ready(const CallOptions& opts) const {
    return opts.wait_for_ready.value_or(options_.wait_for_ready);
  }

  Deadline deadline_for(const CallOptions& opts) const {
    return Clock::now() + (opts.timeout.count() > 0 ? opts.timeout : options_.timeout);
  }

  // The live connection, or a new one. `wait`: wait out the reconnection backoff (until the
  // deadline) instead of failing at once.
  std::shared_ptr<ClientConn> connection(Deadline deadline, Status& error, bool wait) {
    {
      std::shared_ptr<ClientConn> live;
      {
        std::lock_guard lk(conn_mu_);
        if (conn_ && !conn_->dead()) live = conn_;
      }
      if (live && live->refresh()) return live;
    }
    std::unique_lock connecting(connect_mu_, std::defer_lock);
    if (!connecting.try_lock_until(deadline)) {
      error = {StatusCode::deadline_exceeded, "timed out waiting to connect to " + uri_};
      return nullptr;
    }
    for (;;) {
      Deadline next_attempt;
      {
        std::unique_lock lk(conn_mu_);
        if (closed_) {
          error = {StatusCode::cancelled, "client closed"};
          return nullptr;
        }
        if (conn_ && !conn_->dead()) return conn_;  // another thread connected meanwhile
        next_attempt = next_attempt_;
        if (Clock::now() < next_attempt) {
          // Backing off after a failed attempt.
          if (!wait) {
            const auto ms =
                std::chrono::ceil<std::chrono::milliseconds>(next_attempt - Clock::now()).count();
            error = {StatusCode::unavailable, "cannot connect to " + uri_ + ": " + last_error_ +
                                                  " (next attempt in " + std::to_string(ms) +
                                                  " ms)"};
            return nullptr;
          }
          if (next_attempt >= deadline) {
            error = {StatusCode::deadline_exceeded,
                     "not connected to " + uri_ + " before the deadline: " + last_error_};
            return nullptr;
          }
          closed_cv_.wait_until(lk, next_attempt, [&] { return closed_; });
          continue;
        }
      }
      std::string why;
      auto conn = connect_once(deadline, why);
      std::lock_guard lk(conn_mu_);
      if (closed_) {
        error = {StatusCode::cancelled, "client closed"};
        return nullptr;  // conn's destructor closes the socket
      }
      if (conn) {
        backoff_.reset();
        next_attempt_ = {};
        connections_made_.fetch_add(1, std::memory_order_relaxed);
        conn_ = conn;
        conn->start(conn);
        return conn;
      }
      last_error_ = why;
      next_attempt_ = Clock::now() + backoff_.next();
      if (!wait || Clock::now() >= deadline) {
        error = {StatusCode::unavailable, "cannot connect to " + uri_ + ": " + why};
        return nullptr;
      }
    }
  }

  // One attempt, without holding conn_mu_ (callers on a live connection must not wait for it).
  std::shared_ptr<ClientConn> connect_once(Deadline deadline, std::string& why) {
    connect_attempts_.fetch_add(1, std::memory_order_relaxed);
    std::shared_ptr<ClientConn> conn;
    try {
      if (parsed_.transport == nullptr) {
        Status zmq_error;
        conn = make_zmq_client_conn(io_, uri_, options_, zmq_error);
        why = zmq_error.message;
      } else {
        const auto addresses = parsed_.transport->resolve(parsed_.rest, false);
        const int fd = transport::connect_stream(*parsed_.transport, addresses, deadline, why);
        if (fd >= 0) {
          sockaddr_storage local{};
          socklen_t len = sizeof local;
          ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
          const int family = local.ss_family;
          const int protocol = family == AF_UNIX ? 0 : int(IPPROTO_TCP);
          if (tls_) {
            auto secure = std::make_shared<StreamClientConn<tls::TlsStream>>(
                io_, fd, family, protocol, options_, tls_.get());
            const std::string host = options_.tls.server_name.empty()
                                         ? parsed_.transport->host(parsed_.rest)
                                         : options_.tls.server_name;
            if (secure->handshake(host, deadline, why)) conn = std::move(secure);
          } else {
            conn = std::make_shared<StreamClientConn<tls::Socket>>(io_, fd, family, protocol,
                                                                   options_);
          }
        }
      }
    } catch (const std::exception& e) {
      why = e.what();
    }
    return conn;
  }

  ClientStats stats() const {
    ClientStats st;
    st.connect_attempts = connect_attempts_.load(std::memory_order_relaxed);
    st.connections = connections_made_.load(std::memory_order_relaxed);
    std::lock_guard lk(conn_mu_);
    if (conn_) st.calls_pending = conn_->pending_count();
    return st;
  }

  void close() {
    std::shared_ptr<ClientConn> conn;
    {
      std::lock_guard lk(conn_mu_);
      closed_ = true;
      conn.swap(conn_);
    }
    closed_cv_.notify_all();
    if (conn) conn->fail({StatusCode::cancelled, "client closed"}, false);
  }

  // Assigns the call id and the timeout and finishes the frame, registers the call (and its
  // cancel token); completes the call on failure.
  std::shared_ptr<ClientConn> prepare(Buffer& frame, PendingCall& call, Deadline deadline,
                                      const CallOptions& opts, std::uint64_t& id) {
    const std::stop_token& cancel = opts.cancel;
    if (cancel.stop_requested()) {
      call.complete({StatusCode::cancelled, "cancelled by the caller"}, {});
      return nullptr;
    }
    if (!finish_frame(frame, options_.max_frame_size)) {
      call.complete({StatusCode::resource_exhausted,
                     "request frame of " + std::to_string(frame.size() - kPrefixSize) +
                         " bytes exceeds the limit of " + std::to_string(options_.max_frame_size)},
                    {});
      return nullptr;
    }
    Status error;
    auto conn = connection(deadline, error, wait_for_ready(opts));
    if (!conn) {
      call.complete(error, {});
      return nullptr;
    }
    id = next_id_.fetch_add(1, std::memory_order_relaxed);
    set_call_id(frame, id);
    if (has_timeout(frame)) {
      set_timeout(frame, std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()));
    }
    if (!conn->add(id, &call)) {
      call.complete(conn->death(), {});
      return nullptr;
    }
    conn->watch_cancel(id, cancel, conn);
    return conn;
  }

  // Sends a registered call's frame; on failure completes it (and, if the stream is broken,
  // fails the connection).
  void send(const std::shared_ptr<ClientConn>& conn, Buffer&& frame, std::uint64_t id,
            Deadline deadline) {
    const auto result = conn->write(std::move(frame), deadline);
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

  void call_sync(Buffer&& frame, std::string_view method, PendingCall& inner, CallOptions opts) {
    const Deadline deadline = deadline_for(opts);
    Waiter waiter(inner);
    std::uint64_t id = 0;
    auto conn = prepare(frame, waiter, deadline, opts, id);
    if (!conn) return;
    send(conn, std::move(frame), id, deadline);
    if (!conn->wait_for(waiter, deadline, options_.busy_poll)) {
      if (PendingCall* call = conn->take(id, false)) {
        const auto ms = (opts.timeout.count() > 0 ? opts.timeout : options_.timeout).count();
        call->complete(
            {StatusCode::deadline_exceeded,
             "no reply to '" + std::string(method) + "' within " + std::to_string(ms) + " ms"},
            {});
      }
      waiter.sleep();  // completion is under way
    }
  }

  void call_async(Buffer&& frame, PendingCall* call, CallOptions opts) {
    const Deadline deadline = deadline_for(opts);
    std::uint64_t id = 0;
    auto conn = prepare(frame, *call, deadline, opts, id);
    if (!conn) return;
    // Timers are touched only on the I/O thread.
    asio::post(io_, [conn, id, deadline] { conn->arm_timer(id, deadline, conn); });
    send(conn, std::move(frame), id, deadline);
    conn->expect_reply();
  }

  Status send_oneway(Buffer&& frame, CallOptions opts) {
    const Deadline deadline = deadline_for(opts);
    if (!finish_frame(frame, options_.max_frame_size)) {
      return {StatusCode::resource_exhausted, "oneway frame exceeds the size limit"};
    }
    Status error;
    auto conn = connection(deadline, error, wait_for_ready(opts));
    if (!conn) return error;
    set_call_id(frame, next_id_.fetch_add(1, std::memory_order_relaxed));
    const auto result = conn->write(std::move(frame), deadline);
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
  std::string uri_;
  ClientOptions options_;
  transport::ParsedUri parsed_{nullptr, {}};
  std::shared_ptr<asio::ssl::context> tls_;  // for tls:// URIs
  CodecId codec_ = CodecId::cereal;
  asio::io_context io_{1};
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  std::thread thread_;
  DeadlineMutex connect_mu_;
  mutable std::mutex conn_mu_;
  std::condition_variable closed_cv_;  // wakes a caller waiting out a backoff on close()
  std::shared_ptr<ClientConn> conn_;
  bool closed_ = false;
  // Reconnection (under connect_mu_ and conn_mu_).
  Backoff backoff_{options_.reconnect_backoff_initial, options_.reconnect_backoff_max};
  Deadline next_attempt_{};
  std::string last_error_;
  std::atomic<std::uint64_t> connect_attempts_{0};
  std::atomic<std::uint64_t> connections_made_{0};
  std::atomic<std::uint64_t> next_id_{1};
};

}  // namespace detail

namespace detail {

void core_call_sync(ClientCore& core, Buffer&& frame, std::string_view method, PendingCall& pending,
                    CallOptions opts) {
  core.call_sync(std::move(frame), method, pending, opts);
}
void core_call_async(ClientCore& core, Buffer&& frame, PendingCall* pending, CallOptions opts) {
  core.call_async(std::move(frame), pending, opts);
}
Status core_send_oneway(ClientCore& core, Buffer&& frame, CallOptions opts) {
  return core.send_oneway(std::move(frame), opts);
}
CodecId core_codec(const ClientCore& core) noexcept {
  return core.codec();
}
const DecodeLimits& core_limits(const ClientCore& core) noexcept {
  return core.options().decode_limits;
}
void core_release(ClientCore& core, const std::string& object) noexcept {
  core.release(object);
}

}  // namespace detail

namespace {
// The last owner of a core may be a callback running on one of the core's own threads (a Remote
// captured in it): that thread cannot join itself, so another one finishes the job.
void delete_core(detail::ClientCore* core) {
  if (detail::on_client_thread) {
    std::thread([core] { delete core; }).detach();
  } else {
    delete core;
  }
}
}  // namespace

Client::Client(std::string_view uri, ClientOptions options)
    : core_(new detail::ClientCore(uri, std::move(options)), delete_core) {}
Client::~Client() = default;
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;

void Client::connect() {
  Status error;
  if (!core_->connection(core_->deadline_for({}), error, core_->options().wait_for_ready)) {
    throw RpcError(error);
  }
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
