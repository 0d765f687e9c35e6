// THE TRANSPORT CONTRACT (internal). Every transport is a folder below src/transport/ that
// provides a Scheme; registry.cpp lists the schemes, and is the only list. Everything above (the
// client's and the server's connection policy: heartbeats, timeouts, limits, back-pressure,
// sessions) is written once against this header.
//
//   Scheme    names a URI prefix ("tcp" for tcp://...) and knows how to check a URI, prepare a
//             Dialer for it (client), and listen on it (server).
//   Dialer    makes Channels to one URI, one attempt at a time.
//   Listener  accepts Channels on one bound URI and hands them to a ListenerSink.
//   Channel   carries whole frames to and from one peer. Started with a ChannelSink, which
//             receives every frame and exactly one close notification.
//
// Frames are complete and checked on arrival (header, length against the receiver's limit): a
// channel never delivers a partial or malformed frame; a stream channel that meets a protocol
// error closes with that error (INVALID_ARGUMENT, or RESOURCE_EXHAUSTED for an oversized
// length). A frame handed to send() is already finished (length written) and within the limit.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "brine/buffer.hpp"
#include "brine/client.hpp"
#include "brine/detail/frame.hpp"
#include "brine/server.hpp"
#include "brine/status.hpp"
#include "event/completion.hpp"

namespace brine::event {
class EventLoop;
}

namespace brine::transport {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;

// Who is at the other end of a channel.
struct PeerInfo : Peer {
  using Peer::Peer;

  // The frames were relayed (by a broker): calls of one client may reach other workers, so
  // nothing that must follow one client (remote references) can be kept for this peer.
  bool relayed = false;
  // The peer's departure shows only as silence, no close ever arrives (ZeroMQ peers): the policy
  // gives up on it after heartbeat_timeout instead of idle_timeout.
  bool silent_departure = false;
};

// What a channel delivers to. The channel holds the sink (shared) from start() until it has
// delivered on_close(), and calls it on the channel's threads (a loop thread; for a channel that
// a caller may read, the caller's thread; for mem://, the sender's thread).
class ChannelSink {
 public:
  virtual ~ChannelSink() = default;
  // A whole frame, header checked; `frame` views the channel's buffer during the call. Calls
  // never overlap.
  virtual void on_frame(const detail::FrameView& frame) = 0;
  // Exactly once, after the last on_frame() has returned; nothing follows. `why`: what ended it
  // (UNAVAILABLE for a lost or closed connection, the protocol error, or close()'s status).
  virtual void on_close(const Status& why) = 0;
  // The peer sent something that is not a valid frame (`why`: the protocol error,
  // INVALID_ARGUMENT, or RESOURCE_EXHAUSTED for an oversized length). A stream channel cannot
  // find the next frame after it and delivers nothing more (`recoverable` false); a message
  // channel skipped just that message. The sink decides what the peer is told and whether the
  // channel closes.
  virtual void on_bad_frame(const Status& why, bool recoverable) = 0;
  // Frames that had to be queued have left; `queued_bytes` are still waiting.
  virtual void on_sent(std::size_t queued_bytes) { (void)queued_bytes; }
  // Whether frames are awaited: a channel that reads on demand (CallerReads) keeps its loop
  // reading while this says so.
  virtual bool awaiting_frames() const { return true; }
};

enum class SendStatus {
  sent,       // written, or queued to be written in order
  timed_out,  // none of it left before the deadline: dropped (WhenFull::wait only)
  closed,     // the channel is closed or closing: not sent (at most a part of it, which the
              // peer cannot take for a frame); the frame is left to the caller, untouched
};

enum class WhenFull {
  // Wait for room until the deadline; a frame none of which has left by then is dropped. (Part
  // of a frame that has left is always followed by the rest: the stream stays whole.)
  wait,
  // Never wait: what the transport does not take now is queued. The caller bounds the queue by
  // watching queued_bytes() (and pausing the peer).
  queue,
};

struct ChannelProgress {
  // Since when a partly received frame waits for its rest (streams only).
  std::optional<Clock::time_point> partial_since;
  // Since when queued frames have made no progress (nullopt: nothing queued).
  std::optional<Clock::time_point> stalled_since;
};

// Optional capability: a thread that waits for a frame reads the channel itself, instead of a
// loop reading it and waking that thread (plain sockets: one wake-up per call instead of two;
// docs/performance.md). The frames it reads go to the sink on that thread.
class CallerReads {
 public:
  // Reads and delivers frames until `done` is set (true), `deadline` passes (false) or the
  // channel closes (true once on_close was delivered; `done` is set by then). Spins for `spin`
  // before it sleeps. If another thread is reading, sleeps on `done` instead.
  virtual bool read_until(event::Completion& done, Deadline deadline,
                          std::chrono::microseconds spin) = 0;
  // Before a call on a channel nobody has read for a while: takes in what arrived meanwhile (a
  // close, late heartbeat answers). Nothing is read within a millisecond of the last frame.
  virtual void refresh() = 0;
  // Frames are awaited that no caller will read (asynchronous calls): the channel's loop reads
  // them for as long as the sink's awaiting_frames() says so.
  virtual void expect() = 0;
  // The Completion of a caller sleeping in read_until() was set by another thread: wake it.
  virtual void wake_reader() = 0;

 protected:
  ~CallerReads() = default;
};

class Channel {
 public:
  virtual ~Channel() = default;
  // Starts delivering to `sink` (frames that arrived before wait). Once, before any send().
  virtual void start(std::shared_ptr<ChannelSink> sink) = 0;
  // Sends one finished frame. Any thread; frames leave in the order of their send() calls.
  // `frame` is taken only when the status is `sent`.
  virtual SendStatus send(Buffer&& frame, Deadline deadline, WhenFull when_full) = 0;
  // Closes the channel: no frame is delivered after it; frames already sent still leave until
  // `linger_until` (now or earlier: they are dropped; a channel that callers read always drops
  // them), then the connection ends and the sink gets on_close(why) (an end detected before
  // wins). Idempotent; any thread, the sink's callbacks included (on_close then follows after
  // the callback has returned).
  virtual void close(const Status& why, Deadline linger_until) = 0;
  // Stops (true) or resumes (false) delivering frames: a stream stops reading (its peer is held
  // back by the transport); a message channel whose peer cannot be held back discards what
  // arrives meanwhile.
  virtual void pause_reading(bool paused) = 0;
  // Bytes accepted by send() and not yet handed to the transport.
  virtual std::size_t queued_bytes() const = 0;
  virtual ChannelProgress progress() const = 0;
  virtual const PeerInfo& peer() const = 0;
  virtual CallerReads* caller_reads() { return nullptr; }
  // The largest frame `length` the channel can carry whatever max_frame_size says (a datagram
  // transport's limit); a sender checks its frames against the smaller of the two.
  virtual std::size_t max_frame_length() const { return SIZE_MAX; }
  // Whether stream calls can run over the channel: not over datagrams, which may lose or
  // reorder items (docs/design.md, "Streams").
  virtual bool carries_streams() const { return true; }
  // Why not, when carries_streams() is false: the refusal's message.
  virtual std::string why_no_streams() const {
    return "streams need a stream transport (tcp, unix, tls, zmq, mem), not " + peer().transport +
           "://, which may lose or reorder their items";
  }
};

// Receives what a listener accepts. Called on the listener's threads.
class ListenerSink {
 public:
  // A new channel, not started yet.
  virtual void on_channel(std::shared_ptr<Channel> channel) = 0;
  // A connection that failed before it became a channel: its TLS handshake failed, or did not
  // finish within the server's first_frame_timeout (`timed_out`).
  virtual void on_handshake_failed(bool timed_out) { (void)timed_out; }

 protected:
  ~ListenerSink() = default;
};

class Listener {
 public:
  virtual ~Listener() = default;
  // The bound URI, with the real port or name.
  virtual const std::string& uri() const = 0;
  // Starts accepting; connections made before were held (the kernel's backlog, or queued).
  // `sink` must stay valid until close() has returned.
  virtual void start(ListenerSink& sink) = 0;
  // Stops accepting and releases the address (a unix socket file is removed). Channels already
  // handed out are not affected, except where they share the listener's socket (ZeroMQ peers:
  // they end with it). With `linger`, frames already handed to the transport get a moment to
  // reach their peers first (ZeroMQ has no close handshake). Idempotent; after it returns,
  // on_channel() is not called.
  virtual void close(bool linger = false) = 0;
  // False where the channels end with the listener (ZeroMQ peers share its socket): a server
  // that drains keeps such a listener open until its peers are done.
  virtual bool channels_outlive_listener() const { return true; }
};

class Dialer {
 public:
  virtual ~Dialer() = default;
  // One attempt, bounded by `deadline`: a channel (not started), or nullptr with `error` set.
  virtual std::shared_ptr<Channel> dial(Deadline deadline, std::string& error) = 0;
};

// What a dialer needs from the client: its options and the loop its channels run on.
struct ClientSide {
  const ClientOptions& options;
  event::EventLoop& loop;
};

// What a listener needs from the server.
struct ServerSide {
  const ServerOptions& options;
  // The server's I/O loops; a listener spreads its channels over them.
  std::vector<event::EventLoop*> loops;
  // The methods registered as idempotent (a broker's worker announces them). Called when they
  // are needed, after the server started.
  std::function<std::vector<std::string>()> idempotent_methods;
};

// A URI scheme and what it can do. Constants, one per scheme, listed in registry.cpp.
struct Scheme {
  std::string_view name;  // "tcp" for tcp://...
  // Checks the whole URI without resolving or touching anything. Throws std::invalid_argument.
  void (*check)(std::string_view uri);
  // Prepares dialing `uri` (parses it, loads TLS files): throws std::invalid_argument.
  std::unique_ptr<Dialer> (*dialer)(std::string_view uri, const ClientSide& client);
  // Binds `uri` now (so that the real port is known and errors surface at once). Throws
  // std::invalid_argument for a bad URI or TLS setup, std::system_error when it cannot bind.
  std::unique_ptr<Listener> (*listen)(std::string_view uri, const ServerSide& server);
  // Serves as a worker of a broker at `uri` (connects to its backend); nullptr where the scheme
  // has no brokers.
  std::unique_ptr<Listener> (*work_for)(std::string_view uri, const ServerSide& server);
};

}  // namespace brine::transport
