// The server's lifecycle (internal): its loops and threads, listeners, accepting connections,
// start, the graceful stop, and the public Server, which forwards here.
//
// Parts: Registry (what can be called), Dispatcher (running calls), ServerConnection (the policy
// of one channel), the loops that carry the channels, and the listeners that accept them. The
// server owns them all and is the ListenerSink every listener hands its channels to.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "brine/server.hpp"
#include "event/loop.hpp"
#include "server/builtins.hpp"
#include "server/connection.hpp"
#include "server/dispatcher.hpp"
#include "server/registry.hpp"
#include "transport/registry.hpp"

namespace brine {
namespace detail {
namespace {

void check_options(ServerOptions& o) {
  if (o.max_frame_size < 1024 || o.max_frame_size > kMaxFrameSizeLimit) {
    throw std::invalid_argument("max_frame_size must be in [1024, 2147483647]");
  }
  if (o.io_threads == 0) o.io_threads = 1;
  using std::chrono::milliseconds;
  if (o.first_frame_timeout <= milliseconds(0) || o.frame_timeout <= milliseconds(0) ||
      o.idle_timeout <= milliseconds(0)) {
    throw std::invalid_argument("first_frame_timeout, frame_timeout and idle_timeout must be > 0");
  }
  if (o.max_connections == 0) throw std::invalid_argument("max_connections must be > 0");
}

// A parent that waits for this server (brine::testing, or any program) passes a pipe in
// BRINE_READY_FD as "<descriptor>:<pid>": once the server accepts calls, its endpoints and
// "ready" are written there and the pipe is closed. The pid keeps a grandchild, which inherits
// the variable but not the descriptor, from writing to an unrelated descriptor; only the first
// server started in a process announces.
void announce_ready(const std::vector<std::string>& endpoints) {
  static std::atomic<bool> announced{false};
  const char* value = std::getenv("BRINE_READY_FD");
  if (value == nullptr || announced.load()) return;
  const std::string_view v(value);
  const auto colon = v.find(':');
  int fd = -1;
  long pid = -1;
  if (colon == std::string_view::npos ||
      std::from_chars(v.data(), v.data() + colon, fd).ec != std::errc{} ||
      std::from_chars(v.data() + colon + 1, v.data() + v.size(), pid).ec != std::errc{} ||
      pid != long(::getpid()) || fd < 0 || announced.exchange(true)) {
    return;
  }
  std::string text;
  for (const auto& e : endpoints) text += "listening " + e + "\n";
  text += "ready\n";
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // nobody listens any more: nothing to tell
    done += std::size_t(n);
  }
  ::close(fd);
}

}  // namespace

class ServerCore final : public transport::ListenerSink {
 public:
  explicit ServerCore(ServerOptions options)
      : options_((check_options(options), std::move(options))),
        metrics_(options_.metrics),
        dispatcher_(options_, registry_, counters_, metrics_) {
    registry_.serve(options_.codecs);
    for (std::size_t i = 0; i < options_.io_threads; ++i) {
      loops_.push_back(std::make_shared<event::EventLoop>());
    }
  }
  ~ServerCore() { shutdown(false); }

  template <class F>
  void register_before_start(const char* what, F&& add) {
    std::lock_guard lk(mu_);
    if (started_) throw std::logic_error(std::string(what) + " after start()");
    add(registry_);
  }

  std::string listen(std::string_view uri, bool as_worker);
  std::vector<std::string> endpoints() const {
    std::lock_guard lk(mu_);
    return endpoints_locked();
  }
  std::vector<std::string> endpoints_locked() const {
    std::vector<std::string> out;
    for (const auto& l : listeners_) out.push_back(l->uri());
    return out;
  }

  void start();
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
  // On a thread of the server's own, or inside a handler: stop() must only ask there.
  bool on_server_thread() const {
    if (Dispatcher::in_handler() || dispatcher_.on_worker_thread()) return true;
    return std::any_of(loops_.begin(), loops_.end(),
                       [](const auto& l) { return l->on_loop_thread(); });
  }
  // Stops the server. With `drain`, first stops accepting and lets running calls finish for up
  // to drain_timeout (new requests get UNAVAILABLE), then fails the rest with UNAVAILABLE.
  void shutdown(bool drain);
  ServerStats stats() const;
  ServerMetrics metrics() const;

  // transport::ListenerSink
  void on_channel(std::shared_ptr<transport::Channel> channel) override;
  void on_handshake_failed(bool timed_out) override {
    (timed_out ? counters_.timed_out : counters_.tls_failed)
        .fetch_add(1, std::memory_order_relaxed);
  }

 private:
  transport::ServerSide side();
  void drain_and_fail();
  void close_listeners(bool linger, bool only_independent);

  ServerOptions options_;
  const std::chrono::steady_clock::time_point born_ = std::chrono::steady_clock::now();
  Counters counters_;
  Registry registry_;
  Metrics metrics_;
  Dispatcher dispatcher_;
  // Shared: a client's object that the server's code keeps past the server holds the loop its
  // calls back use (not running then: they fail).
  std::vector<std::shared_ptr<event::EventLoop>> loops_;
  std::vector<std::thread> threads_;
  ConnectionSet connections_;
  std::atomic<std::size_t> next_loop_{0};
  std::atomic<bool> closing_{false};  // no new connections
  mutable std::mutex mu_;
  std::condition_variable stop_cv_;
  bool started_ = false;
  bool stop_requested_ = false;
  bool shut_down_ = false;
  std::vector<std::unique_ptr<transport::Listener>> listeners_;
};

transport::ServerSide ServerCore::side() {
  // Listeners take turns on the loops (a ZeroMQ endpoint lives on the first one it is given).
  std::vector<event::EventLoop*> loops;
  const std::size_t first = next_loop_.fetch_add(1, std::memory_order_relaxed);
  for (std::size_t i = 0; i < loops_.size(); ++i) {
    loops.push_back(loops_[(first + i) % loops_.size()].get());
  }
  return {options_, std::move(loops), [this] { return registry_.idempotent_methods(); }};
}

std::string ServerCore::listen(std::string_view uri, bool as_worker) {
  const transport::Scheme& scheme = transport::scheme_of(uri);
  if (as_worker && scheme.work_for == nullptr) {
    throw std::invalid_argument("connect() needs a broker's backend (a zmq+ URI), not " +
                                std::string(uri));
  }
  std::lock_guard lk(mu_);
  if (stop_requested_) throw std::logic_error("listen() after stop()");
  auto listener = as_worker ? scheme.work_for(uri, side()) : scheme.listen(uri, side());
  if (started_) listener->start(*this);
  listeners_.push_back(std::move(listener));
  return listeners_.back()->uri();
}

void ServerCore::start() {
  std::lock_guard lk(mu_);
  if (started_ || stop_requested_) return;
  add_builtins(registry_, options_, {[this] { return metrics(); }, [this] { return endpoints(); }});
  registry_.check_served();
  registry_.check_threads(options_.workers);
  if (metrics_.enabled()) metrics_.build(registry_);
  started_ = true;
  dispatcher_.start();
  for (auto& loop : loops_) {
    threads_.emplace_back([l = loop.get(), spin = options_.busy_poll] { l->run(spin); });
  }
  for (auto& l : listeners_) l->start(*this);
  announce_ready(endpoints_locked());
}

void ServerCore::on_channel(std::shared_ptr<transport::Channel> channel) {
  const auto& timers = loops_[next_loop_.fetch_add(1, std::memory_order_relaxed) % loops_.size()];
  auto conn = std::make_shared<ServerConnection>(std::move(channel), options_, dispatcher_,
                                                 counters_, connections_, *timers, timers);
  if (closing_.load(std::memory_order_acquire)) {
    conn->start();
    conn->close_now({StatusCode::unavailable, "the server is shutting down"});
    return;
  }
  if (connections_.size() >= options_.max_connections) {
    // Accepted only to be told why, which a client reports better than a refused connect.
    counters_.refused.fetch_add(1, std::memory_order_relaxed);
    conn->start();
    conn->fail({StatusCode::resource_exhausted,
                "the server has its maximum of " + std::to_string(options_.max_connections) +
                    " connections open (max_connections); try again later"});
    return;
  }
  counters_.connections_total.fetch_add(1, std::memory_order_relaxed);
  connections_.add(conn);
  conn->start();
}

void ServerCore::close_listeners(bool linger, bool only_independent) {
  std::lock_guard lk(mu_);
  for (auto& l : listeners_) {
    if (!only_independent || l->channels_outlive_listener()) l->close(linger);
  }
}

void ServerCore::drain_and_fail() {
  // Stop accepting, refuse new calls, let running ones finish; then tell every peer why its
  // connection ends, after the replies already queued.
  close_listeners(false, true);
  const bool finished = dispatcher_.drain(options_.drain_timeout);
  const Status why = finished
                         ? Status{StatusCode::unavailable, "the server shut down"}
                         : Status{StatusCode::unavailable,
                                  "the server shut down before the call finished (drain_timeout " +
                                      std::to_string(options_.drain_timeout.count()) + " ms)"};
  for (auto& c : connections_.all()) c->fail(why);
  // Each connection closes once its last frame is written, or after a second.
  (void)connections_.wait_empty(std::chrono::milliseconds(1500));
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
  if (drain) drain_and_fail();
  closing_.store(true, std::memory_order_release);
  close_listeners(drain, false);
  for (auto& c : connections_.all())
    c->close_now({StatusCode::unavailable, "the server shut down"});
  // Closing is done by the loops (which still run) or, over mem://, by the thread delivering
  // to the connection: wait for every connection to have ended, so that none outlives the
  // server's parts.
  while (!connections_.wait_empty(std::chrono::seconds(1))) {
    if (!started_) break;  // nothing runs the loops: nothing can be waiting on them
  }
  for (auto& loop : loops_) loop->stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
  // Handlers still running finish; their replies go nowhere.
  dispatcher_.stop();
}

ServerStats ServerCore::stats() const {
  ServerStats st;
  st.connections = connections_.size();
  st.calls_in_flight = dispatcher_.live_calls();
  st.remote_objects = counters_.objects_live.load(std::memory_order_relaxed);
  st.calls_skipped = counters_.skipped.load(std::memory_order_relaxed);
  st.connections_refused = counters_.refused.load(std::memory_order_relaxed);
  st.connections_timed_out = counters_.timed_out.load(std::memory_order_relaxed);
  st.tls_handshakes_failed = counters_.tls_failed.load(std::memory_order_relaxed);
  st.calls_inline = counters_.inline_calls.load(std::memory_order_relaxed);
  st.inline_demotions = counters_.inline_demotions.load(std::memory_order_relaxed);
  return st;
}

ServerMetrics ServerCore::metrics() const {
  ServerMetrics m;
  m.uptime = std::chrono::steady_clock::now() - born_;
  {
    // The per-method counters exist once the server has started.
    std::lock_guard lk(mu_);
    if (started_ && metrics_.enabled()) metrics_.snapshot(m);
  }
  m.calls_in_flight = dispatcher_.live_calls();
  m.calls_refused = counters_.calls_refused.load(std::memory_order_relaxed);
  m.connections_open = connections_.size();
  m.connections_total = counters_.connections_total.load(std::memory_order_relaxed);
  m.bytes_received = counters_.bytes_in.load(std::memory_order_relaxed);
  m.bytes_sent = counters_.bytes_out.load(std::memory_order_relaxed);
  m.streams_open = counters_.streams_open.load(std::memory_order_relaxed);
  m.streams_total = counters_.streams_total.load(std::memory_order_relaxed);
  m.remote_objects = counters_.objects_live.load(std::memory_order_relaxed);
  return m;
}

}  // namespace detail

Server::Server(ServerOptions options)
    : core_(std::make_unique<detail::ServerCore>(std::move(options))) {}
Server::~Server() = default;
Server::Server(Server&&) noexcept = default;
Server& Server::operator=(Server&&) noexcept = default;

void Server::add_handler(std::string_view method, std::shared_ptr<detail::HandlerBase> handler,
                         HandlerOptions options) {
  if (detail::Registry::is_builtin(method)) {
    throw std::logic_error("method '" + std::string(method) +
                           "': names beginning with '~' are brine's own");
  }
  core_->register_before_start("handle()", [&](detail::Registry& r) {
    r.add_handler(method, std::move(handler), std::move(options));
  });
}
void Server::add_object(std::string_view name, std::shared_ptr<void> object,
                        const detail::InterfaceTable& table) {
  core_->register_before_start(
      "expose()", [&](detail::Registry& r) { r.add_object(name, std::move(object), table); });
}
std::string Server::listen(std::string_view uri) {
  return core_->listen(uri, false);
}
std::string Server::connect(std::string_view uri) {
  return core_->listen(uri, true);
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
ServerMetrics Server::metrics() const {
  return core_->metrics();
}

}  // namespace brine
