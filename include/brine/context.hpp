// What travels with a call besides its arguments: metadata (headers), who is calling, and the
// interceptors that see every call (docs/wire-format.md, "Metadata"; docs/design.md, "Call
// context").
//
//   brine::CallOptions opts;
//   opts.metadata.add("trace-id", "4bf92f35");              // per call; ClientOptions::metadata
//   brine::Metadata reply;                                  // for every call of a client
//   opts.reply_metadata = &reply;
//   client.call<Number>("add", req, opts);
//
//   // in a handler:
//   auto trace = brine::this_call::metadata().get("trace-id");
//   brine::this_call::add_reply_metadata("served-by", "node-3");
//   const brine::Peer& who = brine::this_call::peer();        // address, transport, certificate
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "brine/status.hpp"

namespace brine {

// Key/value pairs, in order, keys repeatable. Keys are 1 to 255 bytes of lowercase ASCII
// letters, digits, '-', '_' and '.' (HTTP/2 header names, as gRPC's); keys beginning "brine-" are
// brine's own. Values are any bytes, at most 65535 of them.
class Metadata {
 public:
  using Entry = std::pair<std::string, std::string>;

  Metadata() = default;
  Metadata(std::initializer_list<Entry> entries);

  // Appends an entry. Throws std::invalid_argument for a malformed key or a value over 65535.
  Metadata& add(std::string key, std::string value);
  // Replaces every entry of `key` with one.
  Metadata& set(std::string key, std::string value);
  // Removes every entry of `key`.
  void erase(std::string_view key);
  // The first value of `key`.
  std::optional<std::string_view> get(std::string_view key) const noexcept;
  std::vector<std::string_view> get_all(std::string_view key) const;
  bool contains(std::string_view key) const noexcept { return get(key).has_value(); }

  bool empty() const noexcept { return entries_.empty(); }
  std::size_t size() const noexcept { return entries_.size(); }
  void clear() noexcept { entries_.clear(); }
  auto begin() const noexcept { return entries_.begin(); }
  auto end() const noexcept { return entries_.end(); }
  // The bytes of the entries on the wire (3 + key + value each).
  std::size_t wire_size() const noexcept;
  // Appends other's entries.
  Metadata& merge(const Metadata& other);

  // Whether `key` may be a key.
  static bool valid_key(std::string_view key) noexcept;

  friend bool operator==(const Metadata&, const Metadata&) = default;

 private:
  std::vector<Entry> entries_;
};

// The most entries and bytes (Metadata::wire_size) a call's metadata may have; a request over
// the server's limits is answered RESOURCE_EXHAUSTED (Retry::never), a reply over the client's
// fails its call the same way.
struct MetadataLimits {
  std::size_t max_entries = 64;
  std::size_t max_bytes = 16 * 1024;
};

// Who is at the other end of a call's connection.
struct Peer {
  Peer() = default;
  Peer(std::string transport_name, std::string peer_address)
      : transport(std::move(transport_name)), address(std::move(peer_address)) {}

  std::string transport;  // the scheme: "tcp", "unix", "tls", "zmq+tcp", "mem", ...
  // The peer's address as the scheme writes it: "127.0.0.1:40312", "[::1]:7000", a unix path
  // (empty for an unnamed client socket), a ZeroMQ routing id in hex, a mem:// name.
  std::string address;
  // TLS: the subject of the peer's verified certificate ("CN=client-1,O=brine") and the DNS names
  // and IP addresses it carries; empty without TLS or when the peer presented no certificate.
  std::string certificate_subject;
  std::vector<std::string> certificate_names;
};

// What an interceptor sees of a call. The same shape on both sides: `metadata` is the request's
// (an interceptor's before() may add to it), `reply_metadata` the answer's.
struct CallInfo {
  std::string_view object;  // empty for a handler's method
  std::string_view method;
  bool stream = false;  // a stream call (Client::stream/upload/bidi)
  bool oneway = false;
  Metadata* metadata = nullptr;
  Metadata* reply_metadata = nullptr;
  const Peer* peer = nullptr;  // the server (on a client) or the client (on a server)
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
};

// Sees every call and stream of a Server (ServerOptions::interceptors) or a Client
// (ClientOptions::interceptors), in order: before() in the order listed, after() in reverse.
// Called on the threads that run the calls: make them thread-safe.
class Interceptor {
 public:
  virtual ~Interceptor() = default;
  // Before the call is sent (client) or run (server). Return a failure to refuse it: the client
  // fails it with that status without sending it (Retry::not_sent); the server answers it with
  // that status without running it (Retry::not_run unless the status says otherwise). Later
  // interceptors are not asked, and after() is called only for those asked before.
  virtual Status before(CallInfo& call) {
    (void)call;
    return {};
  }
  // Once the call has ended: its outcome (OK or the failure the caller gets) and how long it
  // took from before(). May add to call.reply_metadata on a server (not to call.metadata: the
  // handler may still be reading it when a deadline ends the call).
  virtual void after(CallInfo& call, const Status& outcome, std::chrono::nanoseconds duration) {
    (void)call, (void)outcome, (void)duration;
  }
};

using Interceptors = std::vector<std::shared_ptr<Interceptor>>;

namespace detail {
// The chain's before() in order, for a client's call or a server's; `asked` counts those that let
// the call in. The first refusal is returned, with `hint` as its retry hint when it gives none;
// an interceptor that throws refuses with INTERNAL (UNKNOWN for a non-std exception).
Status run_before(const Interceptors& chain, CallInfo& call, std::size_t& asked, Retry hint,
                  std::string_view side);
// The after() of the `asked` first, in reverse; what they throw is dropped. Resets `asked`.
void run_after(const Interceptors& chain, CallInfo& call, std::size_t& asked, const Status& outcome,
               std::chrono::nanoseconds took) noexcept;
}  // namespace detail

// Writes one line per call to `sink` (default: stderr): side, peer, method, outcome, duration,
// the number of metadata entries. ServerOptions::log_calls and ClientOptions::log_calls (config
// keys server.log_calls, client.log_calls) add one.
//   server  tcp 127.0.0.1:40312  calc.add  OK  0.041 ms  md=1
class LoggingInterceptor final : public Interceptor {
 public:
  using Sink = std::function<void(std::string_view line)>;
  explicit LoggingInterceptor(std::string side, Sink sink = {});
  Status before(CallInfo& call) override;
  void after(CallInfo& call, const Status& outcome, std::chrono::nanoseconds duration) override;

 private:
  std::string side_;
  Sink sink_;
};

// Lets in only calls whose metadata carries "authorization: Bearer <token>" with one of `tokens`
// (compared in constant time); the others are answered UNAUTHENTICATED unrun. Calls of a method
// in `open_methods` (its method field: "health", "calc.add") need no token. ServerOptions::tokens
// (config key server.tokens) adds one; a client sends its token with ClientOptions::token
// (client.token).
class TokenCheck final : public Interceptor {
 public:
  explicit TokenCheck(std::vector<std::string> tokens, std::vector<std::string> open_methods = {});
  Status before(CallInfo& call) override;

 private:
  std::vector<std::string> tokens_;
  std::vector<std::string> open_;
};

}  // namespace brine
