// Server: serves typed handlers on any number of endpoints.
//
//   brine::Server server({.workers = 4});
//   server.handle("add", [](const AddRequest& r) { return AddReply{r.a + r.b}; });
//   std::string uri = server.listen("tcp://127.0.0.1:0");   // the real port is in `uri`
//   server.start();        // returns; or run() to block until stop()
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

#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "brine/buffer.hpp"
#include "brine/codec.hpp"
#include "brine/detail/frame.hpp"
#include "brine/method.hpp"
#include "brine/status.hpp"

namespace brine {

struct ServerOptions {
  // Threads that run handlers; 0 runs them inline on the I/O thread.
  std::size_t workers = 4;
  // Threads that run socket I/O. Minimum 1.
  std::size_t io_threads = 1;
  // Largest frame accepted or sent (bytes after the length prefix). Minimum 1024.
  std::size_t max_frame_size = detail::kDefaultMaxFrameSize;
  // Codec names served; empty serves every codec this build knows. A request in another codec
  // gets UNIMPLEMENTED naming the codec.
  std::vector<std::string> codecs;
  DecodeLimits decode_limits{};
};

struct HandlerOptions {
  // Safe to run twice: a broker may send the call again to another worker when the first one
  // died while running it. (Non-idempotent calls then fail with UNAVAILABLE instead.)
  bool idempotent = false;
};

namespace detail {

// A registered handler, type-erased. invoke() decodes the request, runs the user's callable and
// appends the encoded response to `out`; it throws whatever decoding or the callable throws.
class HandlerBase {
 public:
  virtual ~HandlerBase() = default;
  virtual void invoke(CodecId codec, std::span<const std::byte> request, const DecodeLimits& limits,
                      Buffer& out) = 0;
};

template <class F>
struct callable_traits : callable_traits<decltype(&std::remove_cvref_t<F>::operator())> {};
template <class R, class A>
struct callable_traits<R (*)(A)> {
  using request = std::remove_cvref_t<A>;
  using response = R;
};
template <class R, class A>
struct callable_traits<R (*)(A) noexcept> : callable_traits<R (*)(A)> {};
template <class C, class R, class A>
struct callable_traits<R (C::*)(A) const> : callable_traits<R (*)(A)> {};
template <class C, class R, class A>
struct callable_traits<R (C::*)(A) const noexcept> : callable_traits<R (*)(A)> {};
template <class C, class R, class A>
struct callable_traits<R (C::*)(A)> : callable_traits<R (*)(A)> {};
template <class C, class R, class A>
struct callable_traits<R (C::*)(A) noexcept> : callable_traits<R (*)(A)> {};

template <class Req, class Resp, class F>
class TypedHandler final : public HandlerBase {
 public:
  explicit TypedHandler(F f) : f_(std::move(f)) {}
  void invoke(CodecId codec, std::span<const std::byte> request, const DecodeLimits& limits,
              Buffer& out) override {
    const Req req = Serialization<Req>::decode(codec, request, limits);
    Serialization<Resp>::encode(codec, f_(req), out);
  }

 private:
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
  template <class F>
  Server& handle(std::string_view method, F f, HandlerOptions options = {}) {
    using traits = detail::callable_traits<F>;
    return handle_typed<typename traits::request, typename traits::response>(method, std::move(f),
                                                                             options);
  }

  template <class Req, class Resp, class F>
  Server& handle(const Method<Req, Resp>& m, F f, HandlerOptions options = {}) {
    static_assert(std::is_invocable_r_v<Resp, F&, const Req&>,
                  "handler does not match the Method's request/response types");
    return handle_typed<Req, Resp>(m.name, std::move(f), options);
  }

  // Starts listening on `uri` and returns it with the real port (tcp://127.0.0.1:0 ->
  // tcp://127.0.0.1:41234). Connections are accepted once the server is started. Throws
  // std::invalid_argument for a bad URI, std::system_error when the address cannot be bound.
  // URIs: tcp://host:port, tcp://[v6]:port, unix:///path, unix://@name, zmq+tcp://host:port,
  // zmq+ipc:///path, zmq+inproc://name.
  std::string listen(std::string_view uri);
  // Serves as a worker of a brine-broker: connects to the broker's backend (a zmq+ URI), says
  // which methods are idempotent, and sends heartbeats. Reconnects by itself. Returns `uri`.
  std::string connect(std::string_view uri);
  // The URIs listened on so far, with real ports.
  std::vector<std::string> endpoints() const;

  // Starts the I/O threads and workers; returns at once. Idempotent.
  void start();
  // start(), then blocks until stop() is called (from another thread or a handler).
  void run();
  // Blocks until stop() is called.
  void wait();
  // Stops accepting, closes every connection, waits for running handlers, joins the threads.
  // Idempotent; safe from any thread, including a handler.
  void stop();

 private:
  template <class Req, class Resp, class F>
  Server& handle_typed(std::string_view method, F f, HandlerOptions options) {
    static_assert(Serializable<Req>, "no codec header included handles the request type");
    static_assert(Serializable<Resp>, "no codec header included handles the response type");
    std::vector<CodecId> codecs;
    for (CodecId c : known_codecs()) {
      if (Serialization<Req>::supports(c) && Serialization<Resp>::supports(c)) codecs.push_back(c);
    }
    add_handler(method, codecs, std::make_shared<detail::TypedHandler<Req, Resp, F>>(std::move(f)),
                options);
    return *this;
  }

  void add_handler(std::string_view method, const std::vector<CodecId>& codecs,
                   std::shared_ptr<detail::HandlerBase> handler, HandlerOptions options);

  std::unique_ptr<detail::ServerCore> core_;
};

}  // namespace brine
