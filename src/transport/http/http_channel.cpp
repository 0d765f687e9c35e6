#include "transport/http/http_channel.hpp"

#include <rapidjson/document.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "brine/context.hpp"
#include "brine/detail/frame.hpp"
#include "wire/control.hpp"
#include "wire/json_string.hpp"

namespace brine::transport {
namespace {

using wire::append_json_string;

Clock::rep rep(Clock::time_point t) {
  return t.time_since_epoch().count();
}

// grpc-gateway's mapping of status codes to HTTP statuses.
int http_status(StatusCode code) {
  switch (code) {
    case StatusCode::ok:
      return 200;
    case StatusCode::cancelled:
      return 499;
    case StatusCode::invalid_argument:
    case StatusCode::failed_precondition:
    case StatusCode::out_of_range:
      return 400;
    case StatusCode::deadline_exceeded:
      return 504;
    case StatusCode::not_found:
      return 404;
    case StatusCode::already_exists:
    case StatusCode::aborted:
      return 409;
    case StatusCode::permission_denied:
      return 403;
    case StatusCode::unauthenticated:
      return 401;
    case StatusCode::resource_exhausted:
      return 429;
    case StatusCode::unimplemented:
      return 501;
    case StatusCode::unavailable:
      return 503;
    case StatusCode::unknown:
    case StatusCode::internal:
    case StatusCode::data_loss:
      return 500;
  }
  return 500;
}

std::string_view reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 413:
      return "Content Too Large";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 499:
      return "Client Closed Request";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Unknown";
  }
}

// A header value may hold no CR, LF or other control bytes.
bool printable(std::string_view v) {
  return std::all_of(v.begin(), v.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u >= 0x20 && u != 0x7F;
  });
}

std::string response(int status, std::string_view content_type, std::string_view extra_headers,
                     std::string_view body, bool head, bool close_after) {
  std::string r = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason(status)) +
                  "\r\nContent-Type: " + std::string(content_type) +
                  "\r\nContent-Length: " + std::to_string(body.size()) +
                  "\r\nCache-Control: no-store\r\n";
  r += extra_headers;
  if (close_after) r += "Connection: close\r\n";
  r += "\r\n";
  if (!head) r += body;
  return r;
}

// The JSON error body: {"code": 3, "status": "INVALID_ARGUMENT", "message": "...", "type": "..."}
std::string error_body(const Status& s) {
  std::string b = "{\"code\":" + std::to_string(unsigned(s.code)) + ",\"status\":";
  append_json_string(b, status_name(s.code));
  b += ",\"message\":";
  append_json_string(b, s.message);
  if (!s.type.empty()) {
    b += ",\"type\":";
    append_json_string(b, s.type);
  }
  b += "}\n";
  return b;
}

HttpChannel* self_of(http_parser* p) {
  return static_cast<HttpChannel*>(p->data);
}

}  // namespace

HttpChannel::HttpChannel(event::EventLoop& loop, std::unique_ptr<ByteStream> stream, PeerInfo peer,
                         std::size_t max_frame_size)
    : loop_(loop),
      stream_(std::move(stream)),
      peer_(std::move(peer)),
      max_frame_size_(max_frame_size) {
  http_parser_init(&parser_, HTTP_REQUEST);
  parser_.data = this;
  http_parser_settings_init(&settings_);
  settings_.on_message_begin = &HttpChannel::on_message_begin;
  settings_.on_url = &HttpChannel::on_url;
  settings_.on_header_field = &HttpChannel::on_header_field;
  settings_.on_header_value = &HttpChannel::on_header_value;
  settings_.on_headers_complete = &HttpChannel::on_headers_complete;
  settings_.on_body = &HttpChannel::on_body;
  settings_.on_message_complete = &HttpChannel::on_message_complete;
}

HttpChannel::~HttpChannel() = default;

void HttpChannel::start(std::shared_ptr<ChannelSink> sink) {
  sink_ = std::move(sink);
  loop_.post([self = shared_from_this()] {
    if (self->ended_) return;
    try {
      self->armed_ = EPOLLIN;
      self->registration_ = self->loop_.watch(self->stream_->fd(), EPOLLIN, self);
    } catch (const std::system_error& e) {
      self->close_why_ = {StatusCode::unavailable, e.what()};
      self->end();
      return;
    }
    self->read_some();
  });
}

// --- reading ----------------------------------------------------------------------------------

void HttpChannel::on_ready(std::uint32_t events) {
  if (ended_) return;
  if ((events & (EPOLLHUP | EPOLLERR)) != 0) {
    // Reset, or closed both ways: nobody reads what is owed. (Level-triggered, these would be
    // reported again at once, whatever the channel waits for.)
    if (close_why_.ok()) close_why_ = {StatusCode::unavailable, "the HTTP client went away"};
    end();
    return;
  }
  if ((events & EPOLLOUT) != 0) flush();
  if (!ended_) read_some();  // EPOLLIN, or a TLS read that waited for the socket to be writable
}

bool HttpChannel::may_read_locked() const {
  return !close_requested_.load(std::memory_order_relaxed) && !broken_ && !peer_closed_ &&
         !closing_after_output_ && !paused_.load(std::memory_order_relaxed) &&
         slots_.size() < kMaxPipelined && out_bytes_ + ready_bytes_ <= kMaxUnsentBytes;
}

bool HttpChannel::may_read() const {
  std::lock_guard lk(mu_);
  return may_read_locked();
}

void HttpChannel::read_some() {
  // Reads at most a few buffers per wake-up, so one connection cannot hold the loop.
  for (int round = 0; round < 4 && !ended_; ++round) {
    if (!lingering_ && !may_read()) break;
    const auto space = loop_.scratch();
    IoResult r = stream_->read(space);
    if (r.kind == IoResult::would_block) {
      read_wants_write_ = r.wants_write;
      break;
    }
    read_wants_write_ = false;
    if (r.kind != IoResult::done) {
      if (lingering_) {
        end();  // the client saw our close
        return;
      }
      // The peer has gone, or half-closed: what it is owed still goes out; then the end.
      peer_closed_ = true;
      if (close_why_.ok()) {
        close_why_ = r.kind == IoResult::closed
                         ? Status{StatusCode::unavailable, "the HTTP client closed the connection"}
                         : Status{StatusCode::unavailable, r.error};
      }
      break;
    }
    if (lingering_) continue;  // after our last response: read and dropped
    in_.append(reinterpret_cast<const char*>(space.data()), r.bytes);
    parse();
    if (r.drained) break;
  }
  if (ended_) return;
  if (peer_closed_ && !owed()) {
    end();
    return;
  }
  rearm();
}

bool HttpChannel::owed() const {
  std::lock_guard lk(mu_);
  // Answers pending, responses unwritten, or requests not yet parsed (paused behind others).
  return !slots_.empty() || !out_.empty() || (!in_.empty() && !broken_);
}

void HttpChannel::parse() {
  std::size_t used = 0;
  while (used < in_.size() && !broken_ && !lingering_) {
    if (HTTP_PARSER_ERRNO(&parser_) == HPE_PAUSED) {
      if (!may_take_request()) break;
      http_parser_pause(&parser_, 0);
    } else if (close_requested_.load(std::memory_order_relaxed)) {
      break;
    }
    const std::size_t n =
        http_parser_execute(&parser_, &settings_, in_.data() + used, in_.size() - used);
    used += n;
    const auto err = HTTP_PARSER_ERRNO(&parser_);
    if (err == HPE_PAUSED) continue;
    if (err != HPE_OK) {
      broken_ = true;
      const bool head = parser_.method == HTTP_HEAD;
      if (request_.refuse != 0) {
        refuse_request(request_.refuse,
                       request_.refuse == 431
                           ? "the request's line and headers exceed " +
                                 std::to_string(kMaxHeaderBytes) + " bytes"
                           : "the request's body exceeds the server's max_frame_size (" +
                                 std::to_string(max_frame_size_) + ")",
                       head, true);
      } else {
        refuse_request(400, std::string("malformed HTTP request: ") + http_errno_description(err),
                       false, true);
      }
      break;
    }
    if (n == 0) break;
  }
  in_.erase(0, used);
}

bool HttpChannel::may_take_request() const {
  std::lock_guard lk(mu_);
  return !close_requested_.load(std::memory_order_relaxed) && !closing_after_output_ &&
         !paused_.load(std::memory_order_relaxed) && slots_.size() < kMaxPipelined &&
         out_bytes_ + ready_bytes_ <= kMaxUnsentBytes;
}

void HttpChannel::tell_alive() {
  // The server's policy sees a heartbeat (which it answers and the channel drops): the peer is
  // alive although no call was made (first_frame_timeout, idle_timeout).
  const Buffer hb = wire::heartbeat_frame();
  detail::FrameView f{};
  if (sink_ && detail::frame_from_message(hb.bytes(), max_frame_size_, &f).ok()) sink_->on_frame(f);
}

int HttpChannel::on_message_begin(http_parser* p) {
  HttpChannel* self = self_of(p);
  self->request_ = Request{};
  self->any_request_ = true;
  self->partial_since_.store(rep(Clock::now()), std::memory_order_relaxed);
  return 0;
}

int HttpChannel::on_url(http_parser* p, const char* at, std::size_t n) {
  HttpChannel* self = self_of(p);
  Request& r = self->request_;
  r.header_bytes += n;
  if (r.header_bytes > kMaxHeaderBytes) {
    r.refuse = 431;
    return 1;
  }
  r.url.append(at, n);
  return 0;
}

bool HttpChannel::end_header() {
  Request& r = request_;
  if (!r.in_value) return true;
  r.in_value = false;
  std::string& name = r.field;
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return char(std::tolower(c)); });
  constexpr std::string_view kPrefix = "brine-metadata-";
  if (r.headers_done) {
    // A chunked body's trailers: not headers of the call.
  } else if (name == "authorization") {
    r.authorization = std::move(r.value);
  } else if (name == "expect") {
    std::string& v = r.value;
    std::transform(v.begin(), v.end(), v.begin(),
                   [](unsigned char c) { return char(std::tolower(c)); });
    r.expect_continue = v == "100-continue";
  } else if (name == "brine-timeout-ms") {
    r.timeout = std::move(r.value);
  } else if (name.compare(0, kPrefix.size(), kPrefix) == 0) {
    r.metadata.emplace_back(name.substr(kPrefix.size()), std::move(r.value));
  }
  name.clear();
  r.value.clear();
  return true;
}

int HttpChannel::on_header_field(http_parser* p, const char* at, std::size_t n) {
  HttpChannel* self = self_of(p);
  Request& r = self->request_;
  r.header_bytes += n;
  if (r.header_bytes > kMaxHeaderBytes) {
    r.refuse = 431;
    return 1;
  }
  self->end_header();
  r.field.append(at, n);
  return 0;
}

int HttpChannel::on_header_value(http_parser* p, const char* at, std::size_t n) {
  HttpChannel* self = self_of(p);
  Request& r = self->request_;
  r.header_bytes += n;
  if (r.header_bytes > kMaxHeaderBytes) {
    r.refuse = 431;
    return 1;
  }
  r.in_value = true;
  r.value.append(at, n);
  return 0;
}

int HttpChannel::on_headers_complete(http_parser* p) {
  HttpChannel* self = self_of(p);
  self->end_header();
  self->request_.headers_done = true;
  // The frame around the body takes a few hundred bytes at most.
  const std::uint64_t limit = self->max_frame_size_ > 1024 ? self->max_frame_size_ - 1024 : 0;
  if (p->content_length != ULLONG_MAX && p->content_length > limit) {
    self->request_.refuse = 413;
    return -1;
  }
  if (self->request_.expect_continue) {
    // The client waits for this before it sends the body; when earlier answers are still owed
    // it is not sent (it would come before them), and the client sends the body after its wait.
    std::lock_guard lk(self->mu_);
    if (self->slots_.empty() && self->out_.empty()) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      self->out_.emplace_back(kContinue);
      self->out_bytes_ += kContinue.size();
      self->request_flush_locked();
    }
  }
  return 0;
}

int HttpChannel::on_body(http_parser* p, const char* at, std::size_t n) {
  HttpChannel* self = self_of(p);
  Request& r = self->request_;
  const std::size_t limit = self->max_frame_size_ > 1024 ? self->max_frame_size_ - 1024 : 0;
  if (r.body.size() + n > limit) {
    r.refuse = 413;
    return 1;
  }
  r.body.append(at, n);
  return 0;
}

int HttpChannel::on_message_complete(http_parser* p) {
  HttpChannel* self = self_of(p);
  self->end_header();  // (a trailer's last value)
  return self->complete();
}

int HttpChannel::complete() {
  partial_since_.store(0, std::memory_order_relaxed);
  if (close_requested_.load(std::memory_order_relaxed)) return 0;  // closing: nothing more runs
  Request& r = request_;
  const bool close_after = http_should_keep_alive(&parser_) == 0;
  const auto method = static_cast<http_method>(parser_.method);
  std::string_view path = r.url;
  path = path.substr(0, path.find('?'));
  const bool get = method == HTTP_GET || method == HTTP_HEAD;
  const bool head = method == HTTP_HEAD;
  const auto not_allowed = [&](std::string_view allow) {
    tell_alive();
    answer_now(response(405, "application/json", "Allow: " + std::string(allow) + "\r\n",
                        error_body({StatusCode::unimplemented,
                                    "use " + std::string(allow) + " for " + std::string(path)}),
                        head, close_after),
               close_after);
  };
  if (path == "/healthz") {
    tell_alive();
    if (!get) {
      not_allowed("GET, HEAD");
    } else {
      answer_now(
          response(200, "application/json", {}, "{\"status\":\"serving\"}\n", head, close_after),
          close_after);
    }
  } else if (path == "/readyz" || path == "/metrics" || path == "/" || path == "/v1" ||
             path == "/v1/") {
    const Route route = path == "/readyz"    ? Route::ready
                        : path == "/metrics" ? Route::metrics
                        : path == "/"        ? Route::status
                                             : Route::describe;
    const std::string_view builtin = route == Route::ready     ? "~ready"
                                     : route == Route::metrics ? "~metrics"
                                     : route == Route::status  ? "~status"
                                                               : "~describe";
    if (!get) {
      not_allowed("GET, HEAD");
    } else {
      call(builtin, route, head, close_after);
    }
  } else if (path.substr(0, 4) == "/v1/") {
    std::string target(path.substr(4));
    // /v1/OBJECT/METHOD calls OBJECT.METHOD.
    const auto slash = target.find('/');
    bool routed = true;
    if (slash != std::string::npos) {
      routed = target.find('/', slash + 1) == std::string::npos && slash != 0 &&
               slash + 1 != target.size();
      if (routed) target[slash] = '.';
    }
    if (method != HTTP_POST) {
      not_allowed("POST");
    } else if (!routed) {
      refuse_request(404, "no route " + std::string(path) + ": use /v1/METHOD or /v1/OBJECT/METHOD",
                     head, close_after);
    } else if (target.empty() || target.front() == '~') {
      refuse_request(404, "no method '" + target + "'", head, close_after);
    } else {
      if (r.body.empty()) r.body = "[]";  // no body: no arguments
      call(target, Route::call, false, close_after);
    }
  } else {
    refuse_request(404,
                   "no route " + std::string(path) +
                       " (routes: GET /healthz, /readyz, /metrics, /, /v1; POST /v1/METHOD, "
                       "/v1/OBJECT/METHOD)",
                   head, close_after);
  }
  // Reads ahead no further than the answers allow (kMaxPipelined, kMaxUnsentBytes).
  if (!may_take_request()) http_parser_pause(&parser_, 1);
  return 0;
}

void HttpChannel::answer_now(std::string response, bool close_after) {
  Slot s;
  s.close_after = close_after;
  s.ready = true;
  s.response = std::move(response);
  std::lock_guard lk(mu_);
  ready_bytes_ += s.response.size();
  slots_.push_back(std::move(s));
  advance_locked();
}

void HttpChannel::refuse_request(int status, std::string_view message, bool head,
                                 bool close_after) {
  tell_alive();
  const StatusCode code = status == 404   ? StatusCode::not_found
                          : status == 413 ? StatusCode::resource_exhausted
                          : status == 431 ? StatusCode::resource_exhausted
                                          : StatusCode::invalid_argument;
  answer_now(response(status, "application/json", {}, error_body({code, std::string(message)}),
                      head, close_after),
             close_after);
}

void HttpChannel::call(std::string_view method, Route route, bool head, bool close_after) {
  Request& r = request_;
  Metadata md;
  try {
    if (!r.authorization.empty()) md.add("authorization", r.authorization);
    for (auto& [k, v] : r.metadata) md.add(k, v);
  } catch (const std::exception& e) {
    refuse_request(400, std::string("bad metadata header: ") + e.what(), head, close_after);
    return;
  }
  std::uint32_t timeout_ms = 0;
  if (!r.timeout.empty()) {
    const auto [end, ec] =
        std::from_chars(r.timeout.data(), r.timeout.data() + r.timeout.size(), timeout_ms);
    if (ec != std::errc{} || end != r.timeout.data() + r.timeout.size() || timeout_ms == 0) {
      refuse_request(400, "Brine-Timeout-Ms must be a whole number of milliseconds above 0", head,
                     close_after);
      return;
    }
  }
  Buffer frame;
  const auto json = std::uint8_t(CodecId::json);
  if (timeout_ms != 0) {
    detail::begin_request(frame, detail::FrameKind::request, json, {}, method);
    detail::set_timeout(frame, std::chrono::milliseconds(timeout_ms));
  } else {
    detail::begin_frame(frame, detail::FrameKind::request, json, method);  // no deadline
  }
  const std::uint64_t id = next_call_++;
  detail::set_call_id(frame, id);
  detail::open_metadata(frame);
  frame.append(r.body.data(), r.body.size());
  detail::attach_metadata(frame, md, true);
  if (!detail::finish_frame(frame, max_frame_size_)) {
    refuse_request(413, "the request does not fit the server's max_frame_size", head, close_after);
    return;
  }
  {
    Slot s;
    s.call_id = id;
    s.route = route;
    s.head = head;
    s.close_after = close_after;
    std::lock_guard lk(mu_);
    slots_.push_back(std::move(s));
  }
  detail::FrameView f{};
  if (Status s = detail::frame_from_message(frame.bytes(), max_frame_size_, &f); !s.ok()) {
    // (What this channel builds is well-formed: this would be a bug here, not the peer's.)
    sink_->on_bad_frame(s, false);
    return;
  }
  sink_->on_frame(f);
}

// --- answers ----------------------------------------------------------------------------------

std::string HttpChannel::render(const Slot& slot, const detail::FrameView& f) const {
  std::string headers;
  Metadata md;
  if (!f.metadata.empty()) detail::read_metadata(f.metadata, md);
  for (const auto& [k, v] : md) {
    if (!printable(v)) continue;  // (binary values have no place in a header)
    // brine's own keys ("brine-retry") as themselves, the handler's under Brine-Metadata-.
    headers += (k.compare(0, 6, "brine-") == 0 ? k : "brine-metadata-" + k) + ": " + v + "\r\n";
  }
  const std::string_view payload(reinterpret_cast<const char*>(f.payload.data()), f.payload.size());
  if (f.kind == detail::FrameKind::error) {
    const Status s = detail::parse_error(f);
    headers += "Brine-Status: " + std::string(status_name(s.code)) + "\r\n";
    if (slot.route == Route::ready && s.code == StatusCode::unavailable) {
      return response(503, "application/json", headers, "{\"status\":\"draining\"}\n", slot.head,
                      slot.close_after);
    }
    return response(http_status(s.code), "application/json", headers, error_body(s), slot.head,
                    slot.close_after);
  }
  if (slot.route == Route::metrics || slot.route == Route::status) {
    // The built-in answers one JSON string: the page itself.
    rapidjson::Document d;
    d.Parse(payload.data(), payload.size());
    std::string text = !d.HasParseError() && d.IsString()
                           ? std::string(d.GetString(), d.GetStringLength())
                           : std::string();
    return response(200,
                    slot.route == Route::metrics ? "text/plain; version=0.0.4; charset=utf-8"
                                                 : "text/html; charset=utf-8",
                    headers, text, slot.head, slot.close_after);
  }
  std::string body(payload);
  body += '\n';
  return response(200, "application/json", headers, body, slot.head, slot.close_after);
}

SendStatus HttpChannel::send(Buffer&& frame, Deadline, WhenFull) {
  const auto bytes = frame.bytes();
  const auto kind = detail::frame_kind(bytes);
  if (kind != detail::FrameKind::reply && kind != detail::FrameKind::error) {
    return SendStatus::sent;  // heartbeat answers: nothing an HTTP client reads
  }
  detail::FrameView f{};
  if (!detail::frame_from_message(bytes, SIZE_MAX >> 1, &f).ok()) return SendStatus::sent;
  std::lock_guard lk(mu_);
  if (ended_) return SendStatus::closed;
  if (f.call_id == 0) {
    // About the connection itself (a limit, a timeout, the server stopping): told as the
    // answer to the request in progress, or to a connection that has made none; else to nobody
    // (a keep-alive client would take it for the answer to its next request).
    const Status s = detail::parse_error(f);
    const bool partial = partial_since_.load(std::memory_order_relaxed) != 0;
    if (slots_.empty() && (partial || !any_request_)) {
      Slot slot;
      slot.ready = true;
      slot.close_after = true;
      const int status = partial ? 408 : http_status(s.code);
      slot.response = response(status, "application/json", {}, error_body(s), false, true);
      ready_bytes_ += slot.response.size();
      slots_.push_back(std::move(slot));
      advance_locked();
    }
    return SendStatus::sent;
  }
  for (Slot& slot : slots_) {
    if (slot.call_id != f.call_id || slot.ready) continue;
    slot.response = render(slot, f);
    slot.ready = true;
    ready_bytes_ += slot.response.size();
    advance_locked();
    break;
  }
  return SendStatus::sent;
}

void HttpChannel::advance_locked() {
  bool moved = false;
  while (!slots_.empty() && slots_.front().ready && !closing_after_output_) {
    Slot& s = slots_.front();
    ready_bytes_ -= s.response.size();
    out_bytes_ += s.response.size();
    out_.push_back(std::move(s.response));
    if (s.close_after) closing_after_output_ = true;
    slots_.pop_front();
    moved = true;
  }
  if (moved) request_flush_locked();
}

void HttpChannel::request_flush_locked() {
  if (flush_posted_) return;
  flush_posted_ = true;
  if (last_progress_ == Clock::time_point{}) last_progress_ = Clock::now();
  loop_.post([self = shared_from_this()] {
    {
      std::lock_guard lk(self->mu_);
      self->flush_posted_ = false;
    }
    // Requests read ahead and waiting for room first, then the output, then more reading.
    if (!self->ended_) self->parse();
    self->flush();
    if (!self->ended_) self->read_some();
  });
}

void HttpChannel::flush() {
  if (ended_) return;
  std::unique_lock lk(mu_);
  while (!out_.empty()) {
    iovec parts[16];
    std::size_t n = 0;
    for (std::size_t i = 0; i < out_.size() && n < 16; ++i, ++n) {
      const std::string& s = out_[i];
      const std::size_t skip = i == 0 ? out_head_ : 0;
      parts[n] = {const_cast<char*>(s.data() + skip), s.size() - skip};
    }
    IoResult r = stream_->write({parts, n});
    if (r.kind == IoResult::would_block) break;
    if (r.kind != IoResult::done) {
      lk.unlock();
      if (close_why_.ok()) {
        close_why_ = {StatusCode::unavailable, "the HTTP client went away: " + r.error};
      }
      end();
      return;
    }
    last_progress_ = Clock::now();
    std::size_t left = r.bytes;
    out_bytes_ -= left;
    while (left > 0) {
      const std::size_t rest = out_.front().size() - out_head_;
      if (left >= rest) {
        left -= rest;
        out_.pop_front();
        out_head_ = 0;
      } else {
        out_head_ += left;
        left = 0;
      }
    }
  }
  const bool drained = out_.empty();
  if (drained) last_progress_ = {};
  const bool last_response_out = drained && closing_after_output_;
  const std::size_t queued = out_bytes_ + ready_bytes_;
  lk.unlock();
  if (last_response_out) {
    linger_close();
    return;
  }
  if (drained && closing_) {
    end();
    return;
  }
  if (drained && peer_closed_ && !owed()) {
    end();
    return;
  }
  rearm();
  if (sink_) sink_->on_sent(queued);
}

void HttpChannel::linger_close() {
  if (lingering_ || ended_) return;
  if (close_why_.ok()) {
    close_why_ = {StatusCode::unavailable, "the HTTP connection was closed after a response"};
  }
  if (!stream_->any_thread() || peer_closed_) {
    end();  // (TLS: its close_notify is the stream's business)
    return;
  }
  // Closing with requests unread would reset the connection, and a reset can destroy the last
  // response before the client reads it: send the end, then drop what still arrives until the
  // client closes too, or a second passes.
  ::shutdown(stream_->fd(), SHUT_WR);
  lingering_ = true;
  if (linger_timer_ != 0) loop_.cancel(linger_timer_);
  linger_timer_ =
      loop_.after(std::chrono::seconds(1), [self = shared_from_this()] { self->end(); });
  rearm();
}

void HttpChannel::rearm() {
  if (ended_ || !registration_) return;
  std::uint32_t want = 0;
  {
    std::lock_guard lk(mu_);
    if (!out_.empty() || read_wants_write_) want |= EPOLLOUT;
    if (lingering_ || may_read_locked()) want |= EPOLLIN;
  }
  if (want != armed_) {
    armed_ = want;
    (void)loop_.rearm(registration_, stream_->fd(), want);
  }
}

// --- the end ----------------------------------------------------------------------------------

void HttpChannel::close(const Status& why, Deadline linger_until) {
  // From now on nothing more is read or handed to the sink, whichever thread asks.
  close_requested_.store(true, std::memory_order_relaxed);
  loop_.post(
      [self = shared_from_this(), why, linger_until] { self->close_on_loop(why, linger_until); });
}

void HttpChannel::close_on_loop(const Status& why, Deadline linger_until) {
  if (ended_) return;
  if (!closing_) {
    closing_ = true;
    if (close_why_.ok()) close_why_ = why;  // an end detected before wins
  }
  bool empty;
  {
    std::lock_guard lk(mu_);
    empty = out_.empty();
  }
  if (empty || Clock::now() >= linger_until) {
    end();
    return;
  }
  rearm();
  flush();
  if (!ended_ && !lingering_) {
    if (linger_timer_ != 0) loop_.cancel(linger_timer_);
    linger_timer_ = loop_.at(linger_until, [self = shared_from_this()] { self->end(); });
  }
}

void HttpChannel::end() {
  if (ended_) return;
  {
    std::lock_guard lk(mu_);
    ended_ = true;
    slots_.clear();
    out_.clear();
    out_bytes_ = 0;
    ready_bytes_ = 0;
  }
  if (linger_timer_ != 0) loop_.cancel(linger_timer_);
  if (registration_) loop_.unwatch(registration_, stream_->fd());
  stream_->shutdown();
  if (close_why_.ok()) close_why_ = {StatusCode::unavailable, "the HTTP connection closed"};
  if (auto sink = std::move(sink_)) sink->on_close(close_why_);
}

void HttpChannel::pause_reading(bool paused) {
  paused_.store(paused, std::memory_order_relaxed);
  if (!paused) {
    loop_.post([self = shared_from_this()] {
      if (self->ended_) return;
      self->parse();
      self->read_some();
    });
  }
}

std::size_t HttpChannel::queued_bytes() const {
  std::lock_guard lk(mu_);
  return out_bytes_ + ready_bytes_;
}

ChannelProgress HttpChannel::progress() const {
  ChannelProgress p;
  if (const auto r = partial_since_.load(std::memory_order_relaxed); r != 0) {
    p.partial_since = Clock::time_point(Clock::duration(r));
  }
  std::lock_guard lk(mu_);
  if (!out_.empty() && last_progress_ != Clock::time_point{}) p.stalled_since = last_progress_;
  return p;
}

}  // namespace brine::transport
