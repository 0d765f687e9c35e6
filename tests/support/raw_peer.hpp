// A hand-driven peer on a raw socket: sends exactly the bytes a test chooses, reads frames with
// timeouts. For tests of how a server treats slow, silent, greedy or abusive peers.
#pragma once

#include <brine/brine.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <thread>

namespace brine_test {

class RawPeer {
 public:
  // Connects (blocking) to a tcp:// or unix:// URI. Throws std::runtime_error on failure.
  explicit RawPeer(const std::string& uri);
  ~RawPeer();
  RawPeer(const RawPeer&) = delete;
  RawPeer& operator=(const RawPeer&) = delete;

  int fd() const { return fd_; }
  // Sends all of `bytes` (blocking). False if the connection is gone.
  bool send_all(const brine::Buffer& bytes);
  bool send_all(const void* data, std::size_t size);
  // The next frame, or nullopt on timeout; `closed` set when the server closed the connection.
  struct Frame {
    brine::detail::FrameKind kind;
    std::uint64_t call_id;
    std::string payload;
  };
  std::optional<Frame> read_frame(std::chrono::milliseconds timeout);
  // Waits for the server to close the connection (EOF or reset), skipping frames. True if it
  // did within the timeout.
  bool wait_closed(std::chrono::milliseconds timeout);
  bool closed() const { return closed_; }
  void close();

 private:
  int fd_ = -1;
  bool closed_ = false;
  brine::detail::FrameParser parser_;
};

// A complete request frame for `method` with a cereal payload of `request`.
template <class Resp, class Req>
brine::Buffer request_frame(std::string_view method, const Req& request, std::uint64_t id,
                            std::chrono::milliseconds timeout = std::chrono::milliseconds(0)) {
  brine::Buffer frame;
  const auto s = brine::detail::encode_request<Resp>(
      brine::CodecId::cereal, frame, brine::detail::FrameKind::request, {}, method, request);
  if (!s.ok()) throw brine::RpcError(s);
  brine::detail::set_call_id(frame, id);
  brine::detail::set_timeout(frame, timeout.count() > 0 ? timeout : std::chrono::hours(1));
  (void)brine::detail::finish_frame(frame, brine::detail::kDefaultMaxFrameSize);
  return frame;
}

brine::Buffer control_frame(brine::detail::FrameKind kind, std::uint64_t id = 0);

// A loopback TCP port that looks like a dead server (`refusing`: bound, not listening, so a
// connect is refused), a stopped one (`silent`: listening, connections complete in the backlog
// and nothing is ever read or written), or a server that is not brine (`http`: every connection
// is answered "HTTP/1.1 400 Bad Request" and closed, as a web server answers bytes it cannot
// parse).
class LoopbackPort {
 public:
  enum Kind { refusing, silent, http };
  explicit LoopbackPort(Kind kind);
  ~LoopbackPort();
  LoopbackPort(const LoopbackPort&) = delete;
  LoopbackPort& operator=(const LoopbackPort&) = delete;
  // "tcp://127.0.0.1:PORT" (or another scheme: "tls").
  std::string uri(const std::string& scheme = "tcp") const;

 private:
  int fd_ = -1;
  int port_ = 0;
  std::jthread answerer_;  // http only
};

}  // namespace brine_test
