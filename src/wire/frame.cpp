#include "brine/detail/frame.hpp"

#include <algorithm>
#include <cstring>
#include <string>

namespace brine::detail {

namespace {
template <class F>
void each_entry(std::span<const std::byte> e, F&& f) {
  for (std::size_t i = 0; i < e.size();) {
    const std::size_t klen = std::uint8_t(e[i]);
    const std::size_t vlen = load_be16(e.data() + i + 1 + klen);
    f(std::string_view(reinterpret_cast<const char*>(e.data() + i + 1), klen),
      std::string_view(reinterpret_cast<const char*>(e.data() + i + 3 + klen), vlen));
    i += 3 + klen + vlen;
  }
}
}  // namespace

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

void mark_stream(Buffer& frame) noexcept {
  frame.data()[9] |= std::byte{kFlagStream};
}

bool is_stream_request(std::span<const std::byte> frame) noexcept {
  return (std::uint8_t(frame[9]) & kFlagStream) != 0;
}

bool has_timeout(const Buffer& frame) noexcept {
  return (std::uint8_t(frame.data()[9]) & kFlagTimeout) != 0;
}

void set_timeout(Buffer& frame, std::chrono::milliseconds timeout) noexcept {
  const auto ms = std::clamp<std::int64_t>(timeout.count(), 1, 0xFFFFFFFF);
  store_be32(frame.data() + kFixedSize + load_be16(frame.data() + 10), std::uint32_t(ms));
}

std::string_view frame_method(const Buffer& frame) noexcept {
  return {reinterpret_cast<const char*>(frame.data() + kFixedSize), load_be16(frame.data() + 10)};
}

bool has_contract(const Buffer& frame) noexcept {
  return (std::uint8_t(frame.data()[9]) & kFlagContract) != 0;
}

void attach_contract(Buffer& frame, const Contract& contract) {
  if (has_contract(frame) || contract.text.empty() || contract.text.size() > kMaxContractText) {
    return;
  }
  const std::size_t at =
      kFixedSize + load_be16(frame.data() + 10) + (has_timeout(frame) ? kTimeoutFieldSize : 0);
  const std::size_t field = 2 + 8 + contract.text.size();
  const std::size_t tail = frame.size() - at;
  (void)frame.extend(field);
  std::byte* p = frame.data() + at;
  if (tail != 0) std::memmove(p + field, p, tail);
  store_be16(p, std::uint16_t(8 + contract.text.size()));
  store_be64(p + 2, contract.fingerprint);
  std::memcpy(p + 10, contract.text.data(), contract.text.size());
  frame.data()[9] |= std::byte{kFlagContract};
}

bool has_metadata(std::span<const std::byte> frame) noexcept {
  return (std::uint8_t(frame[9]) & kFlagMetadata) != 0;
}

bool has_encoding(std::span<const std::byte> frame) noexcept {
  return (std::uint8_t(frame[9]) & kFlagEncoding) != 0;
}

std::size_t payload_offset(std::span<const std::byte> frame) noexcept {
  const std::byte* p = frame.data();
  const auto flags = std::uint8_t(p[9]);
  std::size_t at = kFixedSize + load_be16(p + 10);
  if ((flags & kFlagTimeout) != 0) at += kTimeoutFieldSize;
  if ((flags & kFlagContract) != 0) at += 2 + load_be16(p + at);
  if ((flags & kFlagMetadata) != 0) at += 4 + load_be32(p + at);
  if ((flags & kFlagEncoding) != 0) at += p[at] != std::byte{0} ? 6 : 2;
  return at;
}

void attach_metadata(Buffer& frame, const Metadata& md) {
  attach_metadata(frame, md, false);
}

void open_metadata(Buffer& frame) {
  store_be32(frame.extend(4), 0);
  frame.data()[9] |= std::byte{kFlagMetadata};
}

void attach_metadata(Buffer& frame, const Metadata& md, bool even_empty) {
  if (md.empty() && !even_empty) return;
  std::size_t at = kFixedSize + load_be16(frame.data() + 10);
  if (has_timeout(frame)) at += kTimeoutFieldSize;
  if (has_contract(frame)) at += 2 + load_be16(frame.data() + at);
  // A field opened empty (open_metadata) is filled; one with entries is left alone.
  const bool opened = has_metadata(frame.bytes());
  if (opened && (load_be32(frame.data() + at) != 0 || md.empty())) return;
  const std::size_t field = (opened ? 0 : 4) + md.wire_size();
  if (opened) at += 4;
  const std::size_t tail = frame.size() - at;
  const bool finished = load_be32(frame.data()) != 0;
  (void)frame.extend(field);
  std::byte* p = frame.data() + at;
  if (tail != 0) std::memmove(p + field, p, tail);
  if (opened) {
    store_be32(p - 4, std::uint32_t(md.wire_size()));
  } else {
    store_be32(p, std::uint32_t(field - 4));
    p += 4;
  }
  for (const auto& [k, v] : md) {
    *p++ = std::byte(k.size());
    std::memcpy(p, k.data(), k.size());
    p += k.size();
    store_be16(p, std::uint16_t(v.size()));
    if (!v.empty()) std::memcpy(p + 2, v.data(), v.size());
    p += 2 + v.size();
  }
  frame.data()[9] |= std::byte{kFlagMetadata};
  if (finished) store_be32(frame.data(), std::uint32_t(frame.size() - kPrefixSize));
}

void read_metadata(std::span<const std::byte> entries, Metadata& out) {
  each_entry(entries, [&](std::string_view k, std::string_view v) {
    out.add(std::string(k), std::string(v));
  });
}

std::size_t metadata_entries(std::span<const std::byte> entries) noexcept {
  std::size_t n = 0;
  each_entry(entries, [&](std::string_view, std::string_view) { ++n; });
  return n;
}

Status check_metadata_limits(std::span<const std::byte> entries, const MetadataLimits& limits) {
  if (entries.size() > limits.max_bytes) {
    return {StatusCode::resource_exhausted,
            "metadata of " + std::to_string(entries.size()) + " bytes exceeds the limit of " +
                std::to_string(limits.max_bytes) + " (max_metadata_bytes)",
            Retry::never};
  }
  if (const std::size_t n = metadata_entries(entries); n > limits.max_entries) {
    return {StatusCode::resource_exhausted,
            "metadata of " + std::to_string(n) + " entries exceeds the limit of " +
                std::to_string(limits.max_entries) + " (max_metadata_entries)",
            Retry::never};
  }
  return {};
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

namespace {
// The longest prefix of `text` of at most `limit` bytes that does not end inside a UTF-8
// sequence (a receiver in another language may decode the message strictly).
std::size_t utf8_cut(std::string_view text, std::size_t limit) noexcept {
  if (text.size() <= limit) return text.size();
  std::size_t n = limit;
  while (n > 0 && (std::uint8_t(text[n]) & 0xC0) == 0x80) --n;
  return n;
}

// The length of the well-formed UTF-8 sequence at text[i] (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF), or 0.
std::size_t utf8_sequence(std::string_view text, std::size_t i) noexcept {
  const auto b = [&](std::size_t k) { return std::uint8_t(text[i + k]); };
  const std::size_t left = text.size() - i;
  const std::uint8_t c = b(0);
  if (c < 0x80) return 1;
  auto cont = [&](std::size_t k) { return k < left && (b(k) & 0xC0) == 0x80; };
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if ((c == 0xE0 && b(1) < 0xA0) || (c == 0xED && b(1) > 0x9F)) return 0;
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if ((c == 0xF0 && b(1) < 0x90) || (c == 0xF4 && b(1) > 0x8F)) return 0;
    return 4;
  }
  return 0;
}

// `text` itself when it is UTF-8; else a copy in `storage` with every byte that is not part of a
// well-formed sequence written as the four characters \xNN (a method name echoed raw).
std::string_view as_utf8(std::string_view text, std::string& storage) {
  std::size_t i = 0;
  while (i < text.size()) {
    const std::size_t n = utf8_sequence(text, i);
    if (n == 0) break;
    i += n;
  }
  if (i == text.size()) return text;
  storage.assign(text.substr(0, i));
  static constexpr char kHex[] = "0123456789ABCDEF";
  while (i < text.size()) {
    const std::size_t n = utf8_sequence(text, i);
    if (n != 0) {
      storage.append(text.substr(i, n));
      i += n;
    } else {
      const auto c = std::uint8_t(text[i++]);
      storage += {'\\', 'x', kHex[c >> 4], kHex[c & 15]};
    }
  }
  return storage;
}
}  // namespace

namespace {
constexpr std::string_view kRetryKey = "brine-retry";
std::string_view retry_word(Retry r) noexcept {
  switch (r) {
    case Retry::not_run:
      return "not-run";
    case Retry::later:
      return "later";
    case Retry::never:
      return "never";
    default:
      return {};  // not_sent and maybe_ran are the client's own findings; unknown is the default
  }
}
}  // namespace

void make_error_frame(Buffer& out, std::uint64_t call_id, const Status& status,
                      std::size_t max_frame_size, const Metadata* extra) {
  // No metadata at all for a peer that sent none (it may not know the field).
  std::string message_copy;
  std::string type_copy;
  const std::string_view message = as_utf8(status.message, message_copy);
  const std::string_view type = as_utf8(status.type, type_copy);
  // The metadata: the server's retry hint, then what the handler added if it fits.
  Metadata md;
  const auto word = retry_word(status.retry);
  if (extra != nullptr && !word.empty()) md.add(std::string(kRetryKey), std::string(word));
  constexpr std::size_t kMaxMessage = 64 * 1024;
  constexpr std::size_t kFixed = kHeaderSize + 4 + 4 + 2;  // header, code, msg_len, type_len
  if (extra != nullptr && !extra->empty() &&
      kFixed + 4 + md.wire_size() + extra->wire_size() + 256 <= max_frame_size) {
    md.merge(*extra);
  }
  const std::size_t md_size = metadata_field_size(md);
  const std::size_t budget =
      max_frame_size > kFixed + md_size ? max_frame_size - kFixed - md_size : 0;
  const std::size_t type_len = utf8_cut(type, std::min<std::size_t>({0xFFFF, budget}));
  const std::size_t msg_len = utf8_cut(message, std::min(kMaxMessage, budget - type_len));
  begin_frame(out, FrameKind::error, 0, {});
  set_call_id(out, call_id);
  std::byte* p = out.extend(4 + 4 + msg_len + 2 + type_len);
  store_be32(p, std::uint32_t(status.code));
  store_be32(p + 4, std::uint32_t(msg_len));
  std::memcpy(p + 8, message.data(), msg_len);
  store_be16(p + 8 + msg_len, std::uint16_t(type_len));
  std::memcpy(p + 10 + msg_len, type.data(), type_len);
  attach_metadata(out, md);
  (void)finish_frame(out, 0xFFFFFFFFu);  // within max_frame_size by construction
}

Status parse_error(const FrameView& f) {
  Status s = parse_error_payload(f.payload);
  if (f.metadata.empty() || s.code == StatusCode::invalid_argument) return s;
  each_entry(f.metadata, [&](std::string_view k, std::string_view v) {
    if (k != kRetryKey) return;
    if (v == "not-run") s.retry = Retry::not_run;
    if (v == "later") s.retry = Retry::later;
    if (v == "never") s.retry = Retry::never;
  });
  return s;
}

FrameKind frame_kind(std::span<const std::byte> frame) noexcept {
  return FrameKind(frame[7]);
}

std::uint8_t frame_codec(std::span<const std::byte> frame) noexcept {
  return std::uint8_t(frame[8]);
}

std::uint64_t frame_call_id(std::span<const std::byte> frame) noexcept {
  return load_be64(frame.data() + 12);
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

namespace {
bool has_magic(const std::byte* p) noexcept {
  return p[4] == std::byte{kMagic0} && p[5] == std::byte{kMagic1};
}

// "not a brine peer (it sent "HTTP/1.1 400 Bad Request")": the peer's first bytes up to the end
// of their first line, at most 40 of them, anything unprintable as \xNN.
Status not_brine(const std::byte* p, std::size_t avail) {
  std::string shown;
  const std::size_t n = std::min<std::size_t>(avail, 40);
  std::size_t i = 0;
  for (; i < n; ++i) {
    const auto c = static_cast<unsigned char>(p[i]);
    if (c == '\r' || c == '\n') break;
    if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
      shown.push_back(char(c));
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      shown += {'\\', 'x', kHex[c >> 4], kHex[c & 15]};
    }
  }
  if (i == n && n < avail) shown += "...";  // cut, not at the end of a line
  return {StatusCode::invalid_argument,
          std::string(kNotBrinePeer) + " (it sent \"" + shown + "\")"};
}
}  // namespace

Status check_header(const std::byte* p, std::uint32_t length) noexcept {
  auto err = [](const char* what) { return Status{StatusCode::invalid_argument, what, {}}; };
  if (p[4] != std::byte{kMagic0} || p[5] != std::byte{kMagic1}) return err("bad magic");
  if (p[6] != std::byte{kVersion}) return err("unsupported protocol version");
  const auto kind = std::uint8_t(p[7]);
  if (kind < 1 || kind > 10) return err("unknown frame kind");
  const auto flags = std::uint8_t(p[9]);
  if ((flags & ~(kFlagTimeout | kFlagContract | kFlagStream | kFlagMetadata | kFlagEncoding)) !=
      0) {
    return err("reserved flag bits set");
  }
  if ((flags & kFlagEncoding) != 0 && kind != std::uint8_t(FrameKind::request) &&
      kind != std::uint8_t(FrameKind::oneway) && kind != std::uint8_t(FrameKind::reply) &&
      kind != std::uint8_t(FrameKind::item)) {
    return err("an encoding field in a frame that is not a request, oneway, reply or item");
  }
  if ((flags & kFlagMetadata) != 0 && kind != std::uint8_t(FrameKind::request) &&
      kind != std::uint8_t(FrameKind::oneway) && kind != std::uint8_t(FrameKind::reply) &&
      kind != std::uint8_t(FrameKind::error)) {
    return err("a metadata field in a frame that is not a request, oneway, reply or error");
  }
  if ((flags & kFlagStream) != 0 && kind != std::uint8_t(FrameKind::request)) {
    return err("a stream flag in a frame that is not a request");
  }
  const bool timed = (flags & kFlagTimeout) != 0;
  if (timed && kind != std::uint8_t(FrameKind::request)) {
    return err("a timeout field in a frame that is not a request");
  }
  const bool contracted = (flags & kFlagContract) != 0;
  if (contracted && kind != std::uint8_t(FrameKind::request) &&
      kind != std::uint8_t(FrameKind::oneway)) {
    return err("a contract field in a frame that is not a request or oneway");
  }
  if (load_be16(p + 10) + (timed ? kTimeoutFieldSize : 0) + (contracted ? 2 : 0) >
      length - kHeaderSize) {
    return err("method length exceeds the frame");
  }
  return {};
}

namespace {
// Fills *out from a complete frame of `total` bytes (prefix included) whose header is checked;
// fails on a malformed contract field (whose length only the whole frame shows).
Status view_frame(const std::byte* p, std::size_t total, FrameView* out) {
  const std::uint16_t method_len = load_be16(p + 10);
  out->kind = FrameKind(p[7]);
  out->size = total;
  out->codec = std::uint8_t(p[8]);
  out->call_id = load_be64(p + 12);
  out->method = {reinterpret_cast<const char*>(p + kFixedSize), method_len};
  std::size_t offset = kFixedSize + method_len;
  out->timeout_ms = 0;
  out->stream = (std::uint8_t(p[9]) & kFlagStream) != 0;
  if ((std::uint8_t(p[9]) & kFlagTimeout) != 0) {
    out->timeout_ms = load_be32(p + offset);
    offset += kTimeoutFieldSize;
  }
  out->fingerprint = 0;
  out->contract = {};
  if ((std::uint8_t(p[9]) & kFlagContract) != 0) {
    const std::size_t len = load_be16(p + offset);  // check_header: these 2 bytes are in
    if (len < 9 || len > 8 + kMaxContractText || len > total - offset - 2) {
      return {StatusCode::invalid_argument, "contract field of " + std::to_string(len) +
                                                " bytes: must be 9 to 16392 and within the frame"};
    }
    out->fingerprint = load_be64(p + offset + 2);
    out->contract = {reinterpret_cast<const char*>(p + offset + 10), len - 8};
    offset += 2 + len;
  }
  out->metadata = {};
  out->has_metadata = (std::uint8_t(p[9]) & kFlagMetadata) != 0;
  if (out->has_metadata) {
    if (total - offset < 4) {
      return {StatusCode::invalid_argument, "metadata field past the end of the frame"};
    }
    const std::size_t len = load_be32(p + offset);
    if (len > total - offset - 4) {
      return {StatusCode::invalid_argument,
              "metadata field of " + std::to_string(len) + " bytes exceeds the frame"};
    }
    const std::byte* e = p + offset + 4;
    for (std::size_t i = 0; i < len;) {
      const std::size_t klen = std::uint8_t(e[i]);
      if (klen == 0 || len - i < 1 + klen + 2) {
        return {StatusCode::invalid_argument, "malformed metadata entry"};
      }
      const std::string_view key(reinterpret_cast<const char*>(e + i + 1), klen);
      if (!Metadata::valid_key(key)) {
        return {StatusCode::invalid_argument, "malformed metadata key"};
      }
      const std::size_t vlen = load_be16(e + i + 1 + klen);
      if (len - i - 1 - klen - 2 < vlen) {
        return {StatusCode::invalid_argument, "metadata value past the end of its field"};
      }
      i += 1 + klen + 2 + vlen;
    }
    out->metadata = {e, len};
    offset += 4 + len;
  }
  out->has_encoding = (std::uint8_t(p[9]) & kFlagEncoding) != 0;
  out->encoding = 0;
  out->accepts = 0;
  out->decoded_size = 0;
  if (out->has_encoding) {
    if (total - offset < 2) {
      return {StatusCode::invalid_argument, "encoding field past the end of the frame"};
    }
    out->encoding = std::uint8_t(p[offset]);
    out->accepts = std::uint8_t(p[offset + 1]);
    offset += 2;
    if (out->encoding != 0) {
      if (total - offset < 4) {
        return {StatusCode::invalid_argument, "encoding field past the end of the frame"};
      }
      out->decoded_size = load_be32(p + offset);
      offset += 4;
    }
  }
  out->payload = {p + offset, total - offset};
  return {};
}
}  // namespace

Status frame_from_message(std::span<const std::byte> message, std::size_t max_frame_size,
                          FrameView* out) {
  if (message.size() < kFixedSize) {
    return {StatusCode::invalid_argument, "message shorter than the 20-byte frame header"};
  }
  if (!has_magic(message.data())) return not_brine(message.data(), message.size());
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
  return view_frame(message.data(), message.size(), out);
}

namespace {
// A read buffer larger than this is given back once it holds nothing.
constexpr std::size_t kRetainedBuffer = 256 * 1024;
}  // namespace

FrameParser::FrameParser(std::size_t max_frame_size) : max_frame_size_(max_frame_size) {}

void FrameParser::make_room(std::size_t want) {
  // Compact: move the unconsumed tail to the front (it is at most one partial frame).
  if (begin_ != 0) {
    const std::size_t n = end_ - begin_;
    if (n != 0) std::memmove(buf_.data(), buf_.data() + begin_, n);
    begin_ = 0;
    end_ = n;
  }
  // A validated prefix of a frame larger than the buffer: make room for the whole frame at once.
  if (end_ >= kPrefixSize) {
    const std::size_t total = kPrefixSize + std::size_t(load_be32(buf_.data()));
    if (total <= kPrefixSize + max_frame_size_) want = std::max(want, total);
  }
  // Grow to what is needed; shrink back once a large frame is gone (an idle connection that
  // once received 16 MiB must not keep 16 MiB).
  if (buf_.capacity() < want || buf_.capacity() > std::max(want, kRetainedBuffer)) {
    Buffer fresh(want);
    fresh.append(buf_.data(), end_);
    buf_ = std::move(fresh);
  }
}

std::span<std::byte> FrameParser::prepare(std::size_t min_free) {
  make_room(end_ - begin_ + min_free);
  return {buf_.data() + end_, buf_.capacity() - end_};
}

std::span<std::byte> FrameParser::prepare_rest() {
  constexpr std::size_t kHeaderRoom = 64;
  make_room(end_ - begin_ + kHeaderRoom);  // the whole frame once its prefix is in
  std::size_t want = kHeaderRoom;
  if (end_ >= kPrefixSize) {
    const std::size_t total = kPrefixSize + std::size_t(load_be32(buf_.data()));
    want = total > end_ ? total - end_ : 0;
  }
  return {buf_.data() + end_, std::min(want, buf_.capacity() - end_)};
}

void FrameParser::feed(std::span<const std::byte> data) noexcept {
  // Nothing is buffered, and views of earlier frames are done with: a buffer that once held a
  // large frame goes.
  if (buf_.capacity() > kRetainedBuffer) buf_ = Buffer();
  begin_ = end_ = 0;
  fed_ = data;
  fed_pos_ = 0;
}

bool FrameParser::fail(StatusCode code, std::string message) {
  error_ = Status{code, std::move(message), {}};
  return false;
}

FrameParser::Next FrameParser::parse_at(const std::byte* p, std::size_t avail, FrameView* out,
                                        std::size_t* total) {
  if (avail < kPrefixSize) return Next::need_more;
  // The magic first, when it is here: a peer that is not brine (an HTTP server answering) is
  // named as such instead of as a frame of a billion bytes.
  if (avail >= kPrefixSize + 2 && !has_magic(p)) {
    error_ = not_brine(p, avail);
    return Next::error;
  }
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
  *total = kPrefixSize + std::size_t(length);
  if (avail < *total) return Next::need_more;
  if (Status s = view_frame(p, *total, out); !s.ok()) {
    error_ = std::move(s);
    return Next::error;
  }
  return Next::frame;
}

FrameParser::Next FrameParser::next(FrameView* out) {
  if (!error_.ok()) return Next::error;
  std::size_t total = 0;
  if (!fed_.empty()) {
    const std::byte* p = fed_.data() + fed_pos_;
    const std::size_t avail = fed_.size() - fed_pos_;
    const Next n = parse_at(p, avail, out, &total);
    if (n == Next::frame) {
      fed_pos_ += total;
      return n;
    }
    if (n == Next::error) return n;
    // A partial frame: keep a copy of it, in a buffer sized for the whole frame.
    if (avail > 0) {
      make_room(std::max<std::size_t>(total != 0 ? total : avail, 64));  // empty: begin_ = end_ = 0
      std::memcpy(buf_.data(), p, avail);
      end_ = avail;
    }
    fed_ = {};
    fed_pos_ = 0;
    return Next::need_more;
  }
  const Next n = parse_at(buf_.data() + begin_, end_ - begin_, out, &total);
  if (n == Next::frame) begin_ += total;
  return n;
}

}  // namespace brine::detail
