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
#include "transport/transport.hpp"

namespace brine {
namespace detail {
namespace {

constexpr std::size_t kCodecSlots = 8;                    // codec ids handled: 0..7
static_assert(std::size_t(CodecId::json) < kCodecSlots);  // the highest id

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};

}  // namespace

class ServerConn;

class ServerCore final : public FrameDispatcher {
 public:
  explicit ServerCore(ServerOptions options) : options_(std::move(options)) {
    if (options_.max_frame_size < 1024) throw std::invalid_argument("max_frame_size < 1024");
    if (options_.io_threads == 0) options_.io_threads = 1;
    if (options_.codecs.empty()) {
      for (CodecId c : known_codecs()) served_[std::size_t(c)] = true;
    }
    for (const std::string& name : options_.codecs) {
      const auto id = codec_from_name(name);
      if (!id) throw std::invalid_argument("unknown codec '" + name + "'");
      served_[std::size_t(*id)] = true;
    }
  }
  ~ServerCore() override { shutdown(); }

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
      io_threads_.emplace_back([this] { io_.run(); });
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
    shutdown();
  }

  bool on_server_thread() {
    if (pool_ && pool_->get_executor().running_in_this_thread()) return true;
    const auto self = std::this_thread::get_id();
    return std::any_of(io_threads_.begin(), io_threads_.end(),
                       [&](const std::thread& t) { return t.get_id() == self; });
  }

  void shutdown();

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
  Status resolve_object(ReplySink& sink, std::string_view method, CodecId codec, Target& target);
  void execute(ReplySink& sink, FrameKind kind, CodecId codec, std::uint64_t call_id,
               const Target& target, std::span<const std::byte> payload);
  void register_conn(const std::shared_ptr<ServerConn>& conn);
  void unregister_conn(ServerConn* conn);

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
  std::atomic<std::size_t> queued_{0};  // calls posted to the pool and not yet finished
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
  std::unordered_map<ServerConn*, std::weak_ptr<ServerConn>> conns_;
};

class ServerConn final : public ReplySink, public std::enable_shared_from_this<ServerConn> {
 public:
  ServerConn(ServerCore& core, asio::generic::stream_protocol::socket socket)
      : core_(core), socket_(std::move(socket)), parser_(core.options().max_frame_size) {}

  void start() { read_more(); }

  Session* session() override { return &session_; }
  bool admit(std::size_t limit) override {
    std::size_t n = inflight_.load(std::memory_order_relaxed);
    do {
      if (n >= limit) return false;
    } while (!inflight_.compare_exchange_weak(n, n + 1, std::memory_order_relaxed));
    return true;
  }
  void release() override { inflight_.fetch_sub(1, std::memory_order_relaxed); }

  // Queues a complete frame; safe from any thread.
  void send(Buffer&& frame) override {
    {
      std::lock_guard lk(out_mu_);
      if (closed_ || closing_) return;
      queue_.push_back(std::move(frame));
      if (write_active_) return;
      write_active_ = true;
    }
    asio::dispatch(socket_.get_executor(), [self = shared_from_this()] { self->write_more(); });
  }

  // Sends a connection-level error frame, then closes (at the latest after one second).
  void fail(const Status& status) {
    Buffer frame;
    make_error_frame(frame, 0, status);
    send(std::move(frame));
    {
      std::lock_guard lk(out_mu_);
      closing_ = true;
      if (!write_active_) {
        close_now();
        return;
      }
    }
    linger_.emplace(socket_.get_executor(), std::chrono::seconds(1));
    linger_->async_wait([self = shared_from_this()](std::error_code ec) {
      if (!ec) self->close_now();
    });
  }

  // Closes the socket. On the connection's executor, or after the I/O threads stopped.
  void close_now() {
    if (closed_.exchange(true)) return;
    std::error_code ignored;
    socket_.shutdown(asio::socket_base::shutdown_both, ignored);
    socket_.close(ignored);
    if (linger_) linger_->cancel();
    session_.close();  // the connection's remote references end with it
    core_.unregister_conn(this);
  }

 private:
  void read_more() {
    const auto space = parser_.prepare();
    socket_.async_read_some(
        asio::mutable_buffer(space.data(), space.size()),
        [self = shared_from_this()](std::error_code ec, std::size_t n) { self->on_read(ec, n); });
  }

  void on_read(std::error_code ec, std::size_t n) {
    if (ec) {
      close_now();
      return;
    }
    parser_.commit(n);
    FrameView f{};
    for (;;) {
      const auto next = parser_.next(&f);
      if (next == FrameParser::Next::need_more) break;
      if (next == FrameParser::Next::error) {
        const Status& e = parser_.error();
        fail({e.code, "protocol error: " + e.message});
        return;
      }
      if (f.kind != FrameKind::request && f.kind != FrameKind::oneway) {
        fail({StatusCode::invalid_argument, "protocol error: clients send only requests"});
        return;
      }
      core_.dispatch(shared_from_this(), f);
    }
    {
      std::lock_guard lk(out_mu_);
      if (closing_) return;
    }
    read_more();
  }

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
    for (const Buffer& b : writing_) gather_.emplace_back(b.data(), b.size());
    asio::async_write(socket_, gather_,
                      [self = shared_from_this()](std::error_code ec, std::size_t) {
                        self->writing_.clear();
                        if (ec) {
                          {
                            std::lock_guard lk(self->out_mu_);
                            self->write_active_ = false;
                          }
                          self->close_now();
                          return;
                        }
                        self->write_more();
                      });
  }

  ServerCore& core_;
  asio::generic::stream_protocol::socket socket_;
  FrameParser parser_;
  std::mutex out_mu_;
  std::vector<Buffer> queue_;
  std::vector<Buffer> writing_;
  std::vector<asio::const_buffer> gather_;
  bool write_active_ = false;
  bool closing_ = false;
  std::atomic<bool> closed_{false};
  std::optional<asio::steady_timer> linger_;
  Session session_;
  std::atomic<std::size_t> inflight_{0};
};

std::string ServerCore::listen(std::string_view uri) {
  if (is_zmq_uri(uri)) return add_message_endpoint(uri, false);
  const auto parsed = transport::parse_uri(uri);
  auto addresses = parsed.transport->resolve(parsed.rest, true);
  std::lock_guard lk(mu_);
  if (stop_requested_) throw std::logic_error("listen() after stop()");
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
  l.acceptor.async_accept(
      asio::make_strand(io_),
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
        l.transport->configure(socket.native_handle());
        auto conn = std::make_shared<ServerConn>(*this, std::move(socket));
        register_conn(conn);
        conn->start();
        accept_more(l);
      });
}

void ServerCore::register_conn(const std::shared_ptr<ServerConn>& conn) {
  std::lock_guard lk(conns_mu_);
  conns_.emplace(conn.get(), conn);
}

void ServerCore::unregister_conn(ServerConn* conn) {
  std::lock_guard lk(conns_mu_);
  conns_.erase(conn);
}

void ServerCore::reply_error(ReplySink& sink, std::uint64_t call_id, Status status) {
  Buffer frame;
  make_error_frame(frame, call_id, status);
  sink.send(std::move(frame));
}

void ServerCore::dispatch(const std::shared_ptr<ReplySink>& conn, const FrameView& f) {
  const bool oneway = f.kind == FrameKind::oneway;
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
  if (!pool_) {
    execute(*conn, f.kind, codec, f.call_id, target, f.payload);
    conn->release();
    return;
  }
  if (queued_.fetch_add(1, std::memory_order_relaxed) >= options_.max_queued_calls) {
    queued_.fetch_sub(1, std::memory_order_relaxed);
    conn->release();
    if (!oneway) {
      reply_error(*conn, f.call_id,
                  {StatusCode::resource_exhausted,
                   "server busy: " + std::to_string(options_.max_queued_calls) +
                       " calls are waiting for a worker"});
    }
    return;
  }
  Buffer payload(f.payload.size());
  payload.append(f.payload.data(), f.payload.size());
  asio::post(*pool_, [this, conn, kind = f.kind, codec, id = f.call_id, target = std::move(target),
                      payload = std::move(payload)] {
    execute(*conn, kind, codec, id, target, payload.bytes());
    queued_.fetch_sub(1, std::memory_order_relaxed);
    conn->release();
  });
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
                         const Target& target, std::span<const std::byte> payload) {
  Buffer out;
  begin_frame(out, FrameKind::reply, std::uint8_t(codec), {});
  set_call_id(out, call_id);
  Status failure;
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
  if (kind == FrameKind::oneway) return;
  if (failure.ok() && !finish_frame(out, options_.max_frame_size)) {
    failure = {StatusCode::resource_exhausted,
               "reply of " + std::to_string(out.size() - kPrefixSize) +
                   " bytes exceeds the limit of " + std::to_string(options_.max_frame_size)};
  }
  if (!failure.ok()) make_error_frame(out, call_id, failure);
  conn.send(std::move(out));
}

void ServerCore::shutdown() {
  {
    std::lock_guard lk(mu_);
    stop_requested_ = true;
    stop_cv_.notify_all();
    if (shut_down_) return;
    shut_down_ = true;
  }
  // I/O first, so that clients see their connections close at once; then the handlers still
  // running finish (their replies go nowhere).
  work_.reset();
  io_.stop();
  for (auto& t : io_threads_) t.join();
  io_threads_.clear();
  for (auto& e : message_endpoints_) e->stop();
  // No I/O thread runs any more: closing here races with nothing.
  for (auto& l : listeners_) {
    std::error_code ignored;
    l->acceptor.close(ignored);
    if (l->retry) l->retry->cancel();
    l->transport->after_close(l->address);
  }
  std::vector<std::shared_ptr<ServerConn>> conns;
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
  if (!core_->on_server_thread()) core_->shutdown();
}

}  // namespace brine
