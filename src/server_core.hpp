// What the server core offers to the transports that feed it (internal).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "brine/buffer.hpp"
#include "brine/detail/frame.hpp"
#include "brine/server.hpp"

namespace brine::detail {

// Where the replies to one peer's requests go. send() is safe from any thread; frames sent after
// the peer is gone are dropped.
class ReplySink {
 public:
  virtual ~ReplySink() = default;
  virtual void send(Buffer&& frame) = 0;
};

// Runs request and oneway frames (inline or on the pool) and sends their replies to `sink`.
// `f` is borrowed for the duration of the call.
class FrameDispatcher {
 public:
  virtual ~FrameDispatcher() = default;
  virtual void dispatch(const std::shared_ptr<ReplySink>& sink, const FrameView& f) = 0;
  virtual const ServerOptions& options() const = 0;
  // Names of the methods registered as idempotent.
  virtual std::vector<std::string> idempotent_methods() const = 0;
};

// An endpoint whose transport carries whole frames as messages (ZeroMQ). It binds (or connects,
// as a broker's worker) in its constructor, runs its own thread between start() and stop().
class MessageEndpoint {
 public:
  virtual ~MessageEndpoint() = default;
  virtual const std::string& uri() const = 0;
  virtual void start() = 0;
  virtual void stop() = 0;
};

// Throws std::invalid_argument for a bad URI, std::system_error when it cannot bind/connect.
std::unique_ptr<MessageEndpoint> make_zmq_endpoint(FrameDispatcher& dispatcher,
                                                   std::string_view uri, bool worker);

}  // namespace brine::detail
