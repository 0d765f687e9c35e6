// Client: typed calls to a brine server over one connection.
//
//   brine::Client client("tcp://127.0.0.1:7000", {.codec = "cereal"});
//   AddReply r = client.call<AddReply>("add", AddRequest{2, 3});          // throws RpcError
//   brine::Result<AddReply> res = client.try_call<AddReply>("add", req);  // never throws
//   std::future<AddReply> f = client.call_async<AddReply>("add", req);    // get() may throw
//   client.notify("log", LogLine{...});                                   // oneway, no reply
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
#include <future>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "brine/buffer.hpp"
#include "brine/codec.hpp"
#include "brine/detail/frame.hpp"
#include "brine/method.hpp"
#include "brine/result.hpp"
#include "brine/status.hpp"

namespace brine {

struct ClientOptions {
  // Codec name for every call of this client: "cereal" or "protobuf". Unknown names make the
  // constructor throw std::invalid_argument.
  std::string codec = "cereal";
  // Default timeout of a call, from the moment it is made (connecting included).
  std::chrono::milliseconds timeout{5000};
  // Largest frame sent or accepted (bytes after the length prefix). Minimum 1024.
  std::size_t max_frame_size = detail::kDefaultMaxFrameSize;
  DecodeLimits decode_limits{};
};

struct CallOptions {
  // 0 means ClientOptions::timeout.
  std::chrono::milliseconds timeout{0};
};

namespace detail {

// One call waiting for its outcome. complete() is called exactly once, from any thread; `payload`
// is borrowed for the duration of the call only.
class PendingCall {
 public:
  virtual void complete(Status status, std::span<const std::byte> payload) noexcept = 0;

 protected:
  ~PendingCall() = default;
};

class ClientCore;

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

// Owns itself: deleted after completion.
template <class Resp, class F>
class CallbackCall final : public PendingCall {
 public:
  CallbackCall(CodecId codec, const DecodeLimits& limits, F&& f)
      : codec_(codec), limits_(limits), f_(std::move(f)) {}
  void complete(Status status, std::span<const std::byte> payload) noexcept override {
    std::unique_ptr<CallbackCall> self(this);
    f_(decode_reply<Resp>(codec_, limits_, status, payload));
  }

 private:
  CodecId codec_;
  DecodeLimits limits_;
  F f_;
};

}  // namespace detail

class Client {
 public:
  // Parses the URI (tcp://host:port, tcp://[v6]:port, unix:///path, unix://@abstract) and
  // checks the options; does not connect. Throws std::invalid_argument on a bad URI or codec.
  explicit Client(std::string_view uri, ClientOptions options = {});
  // Closes (see close()). A moved-from Client may only be destroyed or assigned to.
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

  CodecId codec() const noexcept;
  const std::string& uri() const noexcept;
  const ClientOptions& options() const noexcept;

  // --- typed calls -----------------------------------------------------------------------------

  template <class Resp, class Req>
  Result<Resp> try_call(std::string_view method, const Req& request, CallOptions opts = {}) {
    Buffer frame;
    if (Status s = encode_request<Resp, Req>(frame, detail::FrameKind::request, method, request);
        !s.ok()) {
      return s;
    }
    detail::SyncCall<Resp> pending(codec(), options().decode_limits);
    call_sync(std::move(frame), method, pending, opts);
    return std::move(pending).take();
  }

  template <class Resp, class Req>
  Resp call(std::string_view method, const Req& request, CallOptions opts = {}) {
    return try_call<Resp>(method, request, opts).value_or_throw();
  }

  // `f` is called exactly once with a Result<Resp>, on a client thread (do not block in it).
  template <class Resp, class Req, class F>
  requires std::invocable<F&, Result<Resp>>
  void call_async(std::string_view method, const Req& request, F&& f, CallOptions opts = {}) {
    using Call = detail::CallbackCall<Resp, std::decay_t<F>>;
    Buffer frame;
    if (Status s = encode_request<Resp, Req>(frame, detail::FrameKind::request, method, request);
        !s.ok()) {
      f(Result<Resp>(std::move(s)));
      return;
    }
    call_async_raw(std::move(frame), new Call(codec(), options().decode_limits, std::forward<F>(f)),
                   opts);
  }

  // The future's get() returns the reply or throws RpcError.
  template <class Resp, class Req>
  std::future<Resp> call_async(std::string_view method, const Req& request, CallOptions opts = {}) {
    auto promise = std::make_shared<std::promise<Resp>>();
    std::future<Resp> future = promise->get_future();
    call_async<Resp>(
        method, request,
        [promise](Result<Resp> r) {
          if (r.ok()) {
            promise->set_value(std::move(r).value());
          } else {
            promise->set_exception(std::make_exception_ptr(RpcError(r.status())));
          }
        },
        opts);
    return future;
  }

  // Oneway: sends and returns once the frame is written; the server sends no reply. Returns the
  // status of sending (a handler's failure is not reported).
  template <class Req>
  Status notify(std::string_view method, const Req& request, CallOptions opts = {}) {
    Buffer frame;
    if (Status s = encode_request<void, Req>(frame, detail::FrameKind::oneway, method, request);
        !s.ok()) {
      return s;
    }
    return send_oneway(std::move(frame), opts);
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
  template <class Resp, class Req>
  Status encode_request(Buffer& frame, detail::FrameKind kind, std::string_view method,
                        const Req& request) {
    static_assert(Serializable<Req>, "no codec header included handles this request type");
    const CodecId c = codec();
    bool ok = Serialization<Req>::supports(c);
    if constexpr (!std::is_void_v<Resp>) {
      static_assert(Serializable<Resp>, "no codec header included handles this response type");
      ok = ok && Serialization<Resp>::supports(c);
    }
    if (!ok) {
      return Status{StatusCode::unimplemented, "the request or response type of '" +
                                                   std::string(method) + "' cannot use codec '" +
                                                   std::string(codec_name(c)) + "'"};
    }
    try {
      detail::begin_frame(frame, kind, std::uint8_t(c), method);
      Serialization<Req>::encode(c, request, frame);
    } catch (const RpcError& e) {
      return e.status();
    } catch (const std::exception& e) {
      return Status{StatusCode::internal, std::string("request does not encode: ") + e.what()};
    }
    return {};
  }

  void call_sync(Buffer&& frame, std::string_view method, detail::PendingCall& pending,
                 CallOptions opts);
  void call_async_raw(Buffer&& frame, detail::PendingCall* pending, CallOptions opts);
  Status send_oneway(Buffer&& frame, CallOptions opts);

  std::unique_ptr<detail::ClientCore> core_;
};

}  // namespace brine
