#include "brine/detail/frame.hpp"

#include <algorithm>
#include <cstring>
#include <string>

namespace brine::detail {

void begin_frame(Buffer& out, FrameKind kind, std::uint8_t codec, std::string_view object,
                 std::string_view method) {
  out.clear();
  const std::size_t length = object.empty() ? method.size() : object.size() + 1 + method.size();
  if (length > kMaxMethodLength) {
    throw RpcError(StatusCode::invalid_argument,
                   "method name of " + std::to_string(length) + " bytes exceeds 65535");
  }
  std::byte* p = out.extend(kFixedSize + length);
  store_be32(p, 0);
  p[4] = std::byte{kMagic0};
  p[5] = std::byte{kMagic1};
  p[6] = std::byte{kVersion};
  p[7] = std::byte(kind);
  p[8] = std::byte(codec);
  p[9] = std::byte{0};
  store_be16(p + 10, std::uint16_t(length));
  store_be64(p + 12, 0);
  p += kFixedSize;
  if (!object.empty()) {
    std::memcpy(p, object.data(), object.size());
    p[object.size()] = std::byte{'.'};
    p += object.size() + 1;
  }
  if (!method.empty()) std::memcpy(p, method.data(), method.size());
}

void begin_frame(Buffer& out, FrameKind kind, std::uint8_t codec, std::string_view method) {
  begin_frame(out, kind, codec, {}, method);
}

void begin_request(Buffer& out, FrameKind kind, std::uint8_t codec, std::string_view object,
                   std::string_view method) {
  begin_frame(out, kind, codec, object, method);
  out.data()[9] = std::byte{kFlagTimeout};
  store_be32(out.extend(kTimeoutFieldSize), 0);
}

bool has_timeout(const Buffer& frame) noexcept {
  return (std::uint8_t(frame.data()[9]) & kFlagTimeout) != 0;
}

void set_timeout(Buffer& frame, std::chrono::milliseconds timeout) noexcept {
  const auto ms = std::clamp<std::int64_t>(timeout.count(), 1, 0xFFFFFFFF);
  store_be32(frame.data() + kFixedSize + load_be16(frame.data() + 10), std::uint32_t(ms));
}

void set_call_id(Buffer& frame, std::uint64_t call_id) noexcept {
  store_be64(frame.data() + 12, call_id);
}

bool finish_frame(Buffer& frame, std::size_t max_frame_size) noexcept {
  const std::size_t length = frame.size() - kPrefixSize;
  if (length > max_frame_size || length > 0xFFFFFFFFu) return false;
  store_be32(frame.data(), std::uint32_t(length));
  return true;
}

void make_error_frame(Buffer& out, std::uint64_t call_id, const Status& status) {
  constexpr std::size_t kMaxMessage = 64 * 1024;
  const std::size_t msg_len = std::min(status.message.size(), kMaxMessage);
  const std::size_t type_len = std::min<std::size_t>(status.type.size(), 0xFFFF);
  begin_frame(out, FrameKind::error, 0, {});
  set_call_id(out, call_id);
  std::byte* p = out.extend(4 + 4 + msg_len + 2 + type_len);
  store_be32(p, std::uint32_t(status.code));
  store_be32(p + 4, std::uint32_t(msg_len));
  std::memcpy(p + 8, status.message.data(), msg_len);
  store_be16(p + 8 + msg_len, std::uint16_t(type_len));
  std::memcpy(p + 10 + msg_len, status.type.data(), type_len);
  // An error frame is at most ~128 KiB, far below any sane limit; the minimum limit is enforced
  // by the options, so this cannot fail.
  (void)finish_frame(out, 0xFFFFFFFFu);
}

Status parse_error_payload(std::span<const std::byte> payload) {
  auto malformed = [](const char* what) {
    return Status{
        StatusCode::invalid_argument, std::string("malformed error payload: ") + what, {}};
  };
  if (payload.size() < 10) return malformed("shorter than 10 bytes");
  const std::uint32_t code = load_be32(payload.data());
  const std::uint32_t msg_len = load_be32(payload.data() + 4);
  if (msg_len > payload.size() - 10) return malformed("message length exceeds the payload");
  const std::byte* after = payload.data() + 8 + msg_len;
  const std::uint16_t type_len = load_be16(after);
  if (type_len != payload.size() - 10 - msg_len) return malformed("type length mismatch");
  Status s;
  s.code = status_from_wire(code);
  if (s.code == StatusCode::ok) return malformed("status code 0 in an error frame");
  s.message.assign(reinterpret_cast<const char*>(payload.data() + 8), msg_len);
  s.type.assign(reinterpret_cast<const char*>(after + 2), type_len);
  return s;
}

Status check_header(const std::byte* p, std::uint32_t length) noexcept {
  auto err = [](const char* what) { return Status{StatusCode::invalid_argument, what, {}}; };
  if (p[4] != std::byte{kMagic0} || p[5] != std::byte{kMagic1}) return err("bad magic");
  if (p[6] != std::byte{kVersion}) return err("unsupported protocol version");
  const auto kind = std::uint8_t(p[7]);
  if (kind < 1 || kind > 7) return err("unknown frame kind");
  const auto flags = std::uint8_t(p[9]);
  if ((flags & ~kFlagTimeout) != 0) return err("reserved flag bits set");
  const bool timed = (flags & kFlagTimeout) != 0;
  if (timed && kind != std::uint8_t(FrameKind::request)) {
    return err("a timeout field in a frame that is not a request");
  }
  if (load_be16(p + 10) + (timed ? kTimeoutFieldSize : 0) > length - kHeaderSize) {
    return err("method length exceeds the frame");
  }
  return {};
}

namespace {
// Fills *out from a complete frame of `total` bytes (prefix included) whose header is checked.
void view_frame(const std::byte* p, std::size_t total, FrameView* out) noexcept {
  const std::uint16_t method_len = load_be16(p + 10);
  out->kind = FrameKind(p[7]);
  out->codec = std::uint8_t(p[8]);
  out->call_id = load_be64(p + 12);
  out->method = {reinterpret_cast<const char*>(p + kFixedSize), method_len};
  std::size_t offset = kFixedSize + method_len;
  out->timeout_ms = 0;
  if ((std::uint8_t(p[9]) & kFlagTimeout) != 0) {
    out->timeout_ms = load_be32(p + offset);
    offset += kTimeoutFieldSize;
  }
  out->payload = {p + offset, total - offset};
}
}  // namespace

Status frame_from_message(std::span<const std::byte> message, std::size_t max_frame_size,
                          FrameView* out) {
  if (message.size() < kFixedSize) {
    return {StatusCode::invalid_argument, "message shorter than the 20-byte frame header"};
  }
  const std::uint32_t length = load_be32(message.data());
  if (length > max_frame_size) {
    return {StatusCode::resource_exhausted, "frame of " + std::to_string(length) +
                                                " bytes exceeds the limit of " +
                                                std::to_string(max_frame_size)};
  }
  if (std::size_t(length) != message.size() - kPrefixSize) {
    return {StatusCode::invalid_argument, "frame length does not match the message size"};
  }
  if (Status s = check_header(message.data(), length); !s.ok()) return s;
  view_frame(message.data(), message.size(), out);
  return {};
}

FrameParser::FrameParser(std::size_t max_frame_size) : max_frame_size_(max_frame_size) {}

std::span<std::byte> FrameParser::prepare(std::size_t min_free) {
  // Compact: move the unconsumed tail to the front (it is at most one partial frame).
  if (begin_ != 0) {
    const std::size_t n = end_ - begin_;
    if (n != 0) std::memmove(buf_.data(), buf_.data() + begin_, n);
    begin_ = 0;
    end_ = n;
  }
  std::size_t want = end_ + min_free;
  // A validated prefix of a frame larger than the buffer: make room for the whole frame at once.
  if (end_ >= kPrefixSize) {
    const std::size_t total = kPrefixSize + std::size_t(load_be32(buf_.data()));
    if (total <= kPrefixSize + max_frame_size_) want = std::max(want, total);
  }
  if (buf_.capacity() < want) {
    Buffer bigger(want);
    bigger.append(buf_.data(), end_);
    buf_ = std::move(bigger);
  }
  return {buf_.data() + end_, buf_.capacity() - end_};
}

bool FrameParser::fail(StatusCode code, std::string message) {
  error_ = Status{code, std::move(message), {}};
  return false;
}

FrameParser::Next FrameParser::next(FrameView* out) {
  if (!error_.ok()) return Next::error;
  const std::size_t avail = end_ - begin_;
  if (avail < kPrefixSize) return Next::need_more;
  const std::byte* p = buf_.data() + begin_;
  const std::uint32_t length = load_be32(p);
  if (length < kHeaderSize) {
    fail(StatusCode::invalid_argument,
         "frame length " + std::to_string(length) + " is shorter than the 16-byte header");
    return Next::error;
  }
  if (length > max_frame_size_) {
    fail(StatusCode::resource_exhausted, "frame of " + std::to_string(length) +
                                             " bytes exceeds the limit of " +
                                             std::to_string(max_frame_size_));
    return Next::error;
  }
  if (avail < kFixedSize) return Next::need_more;
  // Check the header as soon as it is here, not after the whole body arrived.
  if (Status s = check_header(p, length); !s.ok()) {
    error_ = std::move(s);
    return Next::error;
  }
  const std::size_t total = kPrefixSize + std::size_t(length);
  if (avail < total) return Next::need_more;
  view_frame(p, total, out);
  begin_ += total;
  return Next::frame;
}

}  // namespace brine::detail
