// HttpChannel: the HTTP/1.1 front door as a channel (internal; docs/design.md, "The HTTP front
// door").
//
// It turns each HTTP request into a brine request frame in the json codec (POST /v1/METHOD and
// POST /v1/OBJECT/METHOD call that method; GET /readyz, /metrics, / and /v1 call the built-ins
// ~ready, ~metrics, ~status and ~describe) and each answer back into an HTTP response, in the
// order of the requests (pipelining). GET /healthz is answered by the channel itself. Above it
// the ordinary server connection policy runs unchanged: admission, limits, interceptors, tokens,
// timeouts (first_frame_timeout, frame_timeout for a request that trickles in or a response
// nobody reads, idle_timeout), back-pressure, metrics.
//
// HTTP is parsed by http-parser (Debian's libhttp-parser-dev). All I/O runs on the channel's
// loop; send() from another thread hands over to it.
#pragma once

#include <http_parser.h>

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include "event/loop.hpp"
#include "transport/channel.hpp"
#include "transport/stream/byte_stream.hpp"

namespace brine::transport {

class HttpChannel final : public Channel,
                          public event::Watcher,
                          public std::enable_shared_from_this<HttpChannel> {
 public:
  // The most bytes a request's line and headers may take: beyond it, 431 and the connection
  // closes.
  static constexpr std::size_t kMaxHeaderBytes = 16 * 1024;
  // Requests read ahead of their responses (pipelining) before reading pauses.
  static constexpr std::size_t kMaxPipelined = 64;
  // Response bytes made and not yet written beyond which reading pauses (besides the server's
  // max_outbound_bytes, which counts them too): a client that pipelines requests the channel
  // answers itself and reads nothing cannot grow them.
  static constexpr std::size_t kMaxUnsentBytes = 1024 * 1024;

  HttpChannel(event::EventLoop& loop, std::unique_ptr<ByteStream> stream, PeerInfo peer,
              std::size_t max_frame_size);
  ~HttpChannel() override;

  void start(std::shared_ptr<ChannelSink> sink) override;
  SendStatus send(Buffer&& frame, Deadline deadline, WhenFull when_full) override;
  void close(const Status& why, Deadline linger_until) override;
  void pause_reading(bool paused) override;
  std::size_t queued_bytes() const override;
  ChannelProgress progress() const override;
  const PeerInfo& peer() const override { return peer_; }
  bool carries_streams() const override { return false; }
  std::string why_no_streams() const override {
    return "stream calls need a brine connection; HTTP carries unary calls only";
  }

  void on_ready(std::uint32_t events) override;

 private:
  enum class Route : std::uint8_t { call, ready, metrics, status, describe };
  // One request, answered in order.
  struct Slot {
    std::uint64_t call_id = 0;  // 0: answered by the channel itself
    Route route = Route::call;
    bool head = false;         // a HEAD request: the response without its body
    bool close_after = false;  // the connection ends after this response
    bool ready = false;
    std::string response;
  };
  // The request being parsed.
  struct Request {
    std::string url;
    std::string field;  // the header name being read (lower case)
    std::string value;
    bool in_value = false;
    std::string authorization;
    std::string timeout;
    std::vector<std::pair<std::string, std::string>> metadata;
    std::string body;
    std::size_t header_bytes = 0;
    bool headers_done = false;  // what follows are a chunked body's trailers
    bool expect_continue = false;
    int refuse = 0;  // an HTTP status the request gets without a call (413, 431)
  };

  // http-parser's callbacks.
  static int on_message_begin(http_parser* p);
  static int on_url(http_parser* p, const char* at, std::size_t n);
  static int on_header_field(http_parser* p, const char* at, std::size_t n);
  static int on_header_value(http_parser* p, const char* at, std::size_t n);
  static int on_headers_complete(http_parser* p);
  static int on_body(http_parser* p, const char* at, std::size_t n);
  static int on_message_complete(http_parser* p);
  bool end_header();
  int complete();

  // --- the loop thread ---
  void read_some();
  void parse();
  // Whether another request may be read or taken from the parser now.
  bool may_read() const;
  bool may_read_locked() const;
  bool may_take_request() const;
  // Whether anything is still owed to the peer (answers, output, requests read ahead).
  bool owed() const;
  // Shows the server's policy that the peer is alive when no call is made for a request.
  void tell_alive();
  void answer_now(std::string response, bool close_after);
  void refuse_request(int status, std::string_view message, bool head, bool close_after);
  void call(std::string_view method, Route route, bool head, bool close_after);
  void rearm();
  void flush();
  void close_on_loop(const Status& why, Deadline linger_until);
  // After a response that ends the connection: half-closes, drains, then ends.
  void linger_close();
  void end();

  // Moves the answered slots at the head of the queue to the output (under mu_).
  void advance_locked();
  // Posts a flush to the loop unless one is pending (under mu_).
  void request_flush_locked();
  std::string render(const Slot& slot, const detail::FrameView& f) const;

  event::EventLoop& loop_;
  const std::unique_ptr<ByteStream> stream_;
  const PeerInfo peer_;
  const std::size_t max_frame_size_;
  std::shared_ptr<ChannelSink> sink_;
  event::EventLoop::Registration registration_;
  std::uint32_t armed_ = 0;

  // Reading (loop thread).
  http_parser parser_{};
  http_parser_settings settings_{};
  std::string in_;  // received, not yet parsed
  Request request_;
  bool broken_ = false;                       // a bad request: nothing more is read
  bool peer_closed_ = false;                  // the client's end arrived (it may still read)
  bool read_wants_write_ = false;             // TLS: a read waits for the socket to be writable
  bool lingering_ = false;                    // our end is sent; what arrives is dropped
  std::atomic<bool> close_requested_{false};  // close() was called: nothing more is delivered
  std::atomic<bool> any_request_{false};      // a request has begun on this connection
  std::uint64_t next_call_ = 1;
  std::atomic<bool> paused_{false};
  std::atomic<Clock::rep> partial_since_{0};

  // Answers and output (any thread, under mu_).
  mutable std::mutex mu_;
  std::deque<Slot> slots_;
  std::deque<std::string> out_;
  std::size_t out_head_ = 0;  // bytes of out_.front() written
  std::size_t out_bytes_ = 0;
  std::size_t ready_bytes_ = 0;        // of answered slots waiting behind an unanswered one
  bool closing_after_output_ = false;  // a close_after response is queued: end once it is out
  bool flush_posted_ = false;
  Clock::time_point last_progress_{};

  // The end (loop thread; ended_ is written under mu_ too, for send()).
  bool closing_ = false;
  bool ended_ = false;
  Status close_why_;
  event::EventLoop::TimerId linger_timer_ = 0;
};

}  // namespace brine::transport
