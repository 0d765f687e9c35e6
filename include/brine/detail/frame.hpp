// Wire format v1 framing. UNSTABLE internal API: installed because the typed templates use it.
//
// Every message is one frame (docs/wire-format.md is the normative text):
//
//   offset size field
//   0      4    length       u32 big-endian: bytes that follow this field (header + method +
//                            payload), 16 <= length <= max_frame_size
//   4      2    magic        0x62 0x72 ("br")
//   6      1    version      1
//   7      1    kind         1 request, 2 reply, 3 error, 4 oneway, 5 worker_ready,
//                            6 heartbeat, 7 cancel, 8 item, 9 end, 10 credit
//   8      1    codec        codec id (1 cereal, 2 protobuf, 3 json); 0 in error frames
//   9      1    flags        bit 0: a u32 timeout (ms) follows the method name (requests only);
//                            bit 1: a contract follows (requests and oneways); bit 2: the
//                            request opens a stream (items and credits follow); other bits
//                            reserved (receivers reject them)
//   10     2    method_len   u16 big-endian, bytes of method name (0 in replies and errors)
//   12     8    call_id      u64 big-endian, chosen by the caller, echoed in the reply
//   20     m    method       UTF-8 method name
//   20+m   4    timeout_ms   u32 big-endian, only when flags bit 0 is set: the time the caller
//                            still waits for the reply, measured when the frame was sent
//   ...    2+c  contract     only when flags bit 1 is set: u16 c (9 <= c <= 8 + 16384), u64
//                            fingerprint, c - 8 bytes of contract text (brine/fingerprint.hpp)
//   ...    4+n  metadata     only when flags bit 3 is set: u32 n, then n bytes of entries (u8 key
//                            length >= 1, key, u16 value length, value)
//   ...    2(+4) encoding    only when flags bit 4 is set (requests, oneways, replies, items):
//                            u8 algorithm of the payload (0 none, 1 zstd, 2 lz4), u8 set of
//                            algorithms the sender accepts in answers (bit 1 << id), then, when
//                            the algorithm is not 0, u32 size of the decompressed payload
//   ...    ...  payload      codec bytes (request/reply/oneway) or the error payload
//
// The magic is checked as soon as the first six bytes are here, then the length against the limit
// (from the prefix alone when nothing more has arrived), before any allocation.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "brine/buffer.hpp"
#include "brine/context.hpp"
#include "brine/fingerprint.hpp"
#include "brine/status.hpp"

namespace brine::detail {

inline constexpr std::size_t kPrefixSize = 4;
inline constexpr std::size_t kHeaderSize = 16;  // after the prefix
inline constexpr std::size_t kFixedSize = kPrefixSize + kHeaderSize;
inline constexpr std::uint8_t kMagic0 = 0x62;
inline constexpr std::uint8_t kMagic1 = 0x72;
inline constexpr std::uint8_t kVersion = 1;
inline constexpr std::size_t kMaxMethodLength = 0xFFFF;
inline constexpr std::size_t kDefaultMaxFrameSize = 16u * 1024 * 1024;
// The largest max_frame_size: lengths stay below 2 GiB, so a frame is also a message of Python's
// multiprocessing.connection (a signed 32-bit length prefix).
inline constexpr std::size_t kMaxFrameSizeLimit = 0x7FFFFFFF;
// Oneway "<object>.~release": the client dropped its last reference to <object>.
inline constexpr std::string_view kReleaseMethod = "~release";
// flags bit 0: a u32 timeout in milliseconds follows the method name.
inline constexpr std::uint8_t kFlagTimeout = 0x01;
inline constexpr std::size_t kTimeoutFieldSize = 4;
// flags bit 1: a contract (u16 length, u64 fingerprint, text) follows the timeout field.
inline constexpr std::uint8_t kFlagContract = 0x02;
inline constexpr std::size_t kMaxContractText = 16384;
// flags bit 2: the request opens a stream call (docs/wire-format.md, "Streams").
inline constexpr std::uint8_t kFlagStream = 0x04;
// flags bit 3: a metadata field (u32 length, then entries: u8 key length, key, u16 value length,
// value) follows the contract field; in requests, oneways, replies and errors.
inline constexpr std::uint8_t kFlagMetadata = 0x08;
// flags bit 4: an encoding field (u8 algorithm, u8 accepted algorithms, and when the algorithm is
// not 0 a u32 decompressed size) follows the metadata field; in requests, oneways, replies and
// items (src/wire/compression.hpp).
inline constexpr std::uint8_t kFlagEncoding = 0x10;
// Every stream direction starts with this window: the bytes of item frames (their length
// fields, header included) a sender may have sent beyond what the receiver has credited.
inline constexpr std::uint32_t kInitialStreamWindow = 65536;
// How a parse error caused by a wrong magic begins: the peer does not speak brine at all.
inline constexpr std::string_view kNotBrinePeer = "not a brine peer";

enum class FrameKind : std::uint8_t {
  request = 1,
  reply = 2,
  error = 3,
  oneway = 4,
  worker_ready = 5,  // worker -> broker (ZeroMQ only): payload lists the idempotent methods
  heartbeat = 6,     // "still here": worker -> broker, client -> server (answered on streams)
  cancel = 7,        // client -> server: the caller gave up on call `call_id`; never answered
  item = 8,          // either way: one item of stream `call_id`, in the stream's codec
  end = 9,           // client -> server: no more items from the client on stream `call_id`
  credit = 10,       // either way: a u32 of window granted to the other side of `call_id`
};

struct FrameView {
  FrameKind kind;
  std::uint8_t codec;  // raw wire id: may name a codec this build does not know
  std::uint64_t call_id;
  std::string_view method;
  std::span<const std::byte> payload;
  // The caller's remaining wait in milliseconds when it sent the request; 0 = none given.
  std::uint32_t timeout_ms = 0;
  // The caller's contract for the method (flags bit 1): empty text when the frame has none.
  std::uint64_t fingerprint = 0;
  std::string_view contract;
  // A request that opens a stream (flags bit 2).
  bool stream = false;
  // The metadata entries (flags bit 3), checked well-formed; empty without.
  std::span<const std::byte> metadata{};
  // The frame has the field (perhaps with no entries): its sender takes metadata in answers.
  bool has_metadata = false;
  // The encoding field (flags bit 4): the payload's algorithm (0: as it is), the algorithms the
  // sender accepts in answers, and the decompressed size (when the algorithm is not 0).
  bool has_encoding = false;
  std::uint8_t encoding = 0;
  std::uint8_t accepts = 0;
  std::uint32_t decoded_size = 0;
  // The whole frame's bytes, length prefix included.
  std::size_t size = 0;
};

// Starts a frame in `out` (cleared first): prefix and header with length 0 and call id 0, then
// the method name. The caller appends the payload, then calls finish_frame.
void begin_frame(Buffer& out, FrameKind kind, std::uint8_t codec, std::string_view method);
// The same with the method name "<object>.<method>" (just <method> when object is empty).
void begin_frame(Buffer& out, FrameKind kind, std::uint8_t codec, std::string_view object,
                 std::string_view method);
void set_call_id(Buffer& frame, std::uint64_t call_id) noexcept;
// Starts a request frame carrying a timeout field (flags bit 0), set later by set_timeout().
void begin_request(Buffer& out, FrameKind kind, std::uint8_t codec, std::string_view object,
                   std::string_view method);
// Marks a request being built as opening a stream (flags bit 2).
void mark_stream(Buffer& frame) noexcept;
bool is_stream_request(std::span<const std::byte> frame) noexcept;
// Fills the timeout field of a frame begun by begin_request (clamped to u32 milliseconds).
void set_timeout(Buffer& frame, std::chrono::milliseconds timeout) noexcept;
// Whether the frame was begun with a timeout field.
bool has_timeout(const Buffer& frame) noexcept;
// The method field of a frame being built.
std::string_view frame_method(const Buffer& frame) noexcept;
// Inserts `contract` into a request or oneway being built (before finish_frame), after the
// method name and timeout field. Does nothing if the frame carries one already or the text is
// longer than kMaxContractText (such a method goes unchecked).
void attach_contract(Buffer& frame, const Contract& contract);
bool has_contract(const Buffer& frame) noexcept;
// Inserts `md` (if not empty) into a request, oneway, reply or error frame being built or
// built, before its payload, and sets flags bit 3; re-finishes a finished frame (without a size
// check: see metadata_fits). Does nothing if the frame carries metadata already.
void attach_metadata(Buffer& frame, const Metadata& md);
// The same, with a field of no entries when `md` is empty and `even_empty`; a field opened
// empty by open_metadata is filled with md's entries.
void attach_metadata(Buffer& frame, const Metadata& md, bool even_empty);
// Appends an empty metadata field to a request being begun (after begin_request, before the
// payload): a brine client's requests always carry the field, which tells the server that this
// client takes metadata in its answer; attach_metadata fills it later.
void open_metadata(Buffer& frame);
bool has_metadata(std::span<const std::byte> frame) noexcept;
bool has_encoding(std::span<const std::byte> frame) noexcept;
// Where the payload of a frame being built or built begins (after every field its flags name).
std::size_t payload_offset(std::span<const std::byte> frame) noexcept;
// The bytes attach_metadata adds for `md`.
inline std::size_t metadata_field_size(const Metadata& md) noexcept {
  return md.empty() ? 0 : 4 + md.wire_size();
}
// The entries of a checked metadata field (FrameView::metadata), appended to `out`.
void read_metadata(std::span<const std::byte> entries, Metadata& out);
// How many entries a checked metadata field holds.
std::size_t metadata_entries(std::span<const std::byte> entries) noexcept;
// OK if the checked field `entries` is within `limits`, else RESOURCE_EXHAUSTED (Retry::never).
Status check_metadata_limits(std::span<const std::byte> entries, const MetadataLimits& limits);
// The kind and call id of a frame being built or already built (kFixedSize bytes at least).
FrameKind frame_kind(std::span<const std::byte> frame) noexcept;
std::uint8_t frame_codec(std::span<const std::byte> frame) noexcept;
std::uint64_t frame_call_id(std::span<const std::byte> frame) noexcept;
// Writes the length field. Returns false (frame untouched) if the frame exceeds max_frame_size.
[[nodiscard]] bool finish_frame(Buffer& frame, std::size_t max_frame_size) noexcept;

// Builds a complete error frame: payload = u32 code, u32 message length, message, u16 type
// length, type (all big-endian). The message is cut at 64 KiB, and message and type are cut
// further so that the frame fits `max_frame_size` (the receiver's limit is at least 1024).
// `extra` null: the frame carries no metadata (its receiver sent none, and may not know the
// field). Otherwise it carries status.retry when the server can tell it (not_run, later,
// never: metadata "brine-retry") and *extra (a handler's reply metadata) when it fits.
void make_error_frame(Buffer& out, std::uint64_t call_id, const Status& status,
                      std::size_t max_frame_size = kDefaultMaxFrameSize,
                      const Metadata* extra = nullptr);
// Parses an error payload. A malformed payload becomes INVALID_ARGUMENT with a description.
Status parse_error_payload(std::span<const std::byte> payload);
// An error frame's status: its payload, and the retry hint of its metadata.
Status parse_error(const FrameView& f);

// Incremental frame decoder for byte streams. Copes with any fragmentation (one byte per read)
// and with many frames per read. Lengths are hostile: they are checked from the prefix alone
// against max_frame_size before the buffer grows.
//
// Two ways to give it bytes:
// * read into prepare(), commit() the bytes read, then call next() until it returns nothing;
//   views returned by next() stay valid until the next prepare().
// * while buffered() == 0, read into a buffer of your own and feed() it: next() returns the
//   whole frames where they are (no copy; valid while your buffer is), and copies only a partial
//   frame left at its end, into a buffer sized for that frame. Continue it with prepare_rest().
//   A connection that reads this way holds no read buffer between frames.
class FrameParser {
 public:
  explicit FrameParser(std::size_t max_frame_size = kDefaultMaxFrameSize);

  // Space to read into: at least `min_free` bytes (more when a large frame is pending).
  std::span<std::byte> prepare(std::size_t min_free = 64 * 1024);
  // Space for the rest of the frame being received (at least 64 bytes while its length is not
  // known yet), and no more.
  std::span<std::byte> prepare_rest();
  void commit(std::size_t n) noexcept { end_ += n; }
  // See above; only while buffered() == 0.
  void feed(std::span<const std::byte> data) noexcept;

  enum class Next { frame, need_more, error };
  // On `frame`, *out is filled. On `error`, error() says why; the stream is unusable afterwards
  // (the connection must be closed).
  Next next(FrameView* out);
  const Status& error() const noexcept { return error_; }
  // Bytes received but not yet returned as frames.
  std::size_t buffered() const noexcept { return end_ - begin_ + (fed_.size() - fed_pos_); }
  // Bytes the read buffer holds. After a large frame it shrinks back (at the next prepare() or
  // prepare_rest() with nothing buffered), so an idle connection does not keep a 16 MiB buffer.
  std::size_t capacity() const noexcept { return buf_.capacity(); }

 private:
  bool fail(StatusCode code, std::string message);
  // Parses at `p` (`avail` bytes): a frame (of `*total` bytes), need_more, or error.
  Next parse_at(const std::byte* p, std::size_t avail, FrameView* out, std::size_t* total);
  // Moves the unconsumed tail to the front and sizes the buffer for `want` bytes.
  void make_room(std::size_t want);

  std::size_t max_frame_size_;
  Buffer buf_;
  std::size_t begin_ = 0;  // first unconsumed byte
  std::size_t end_ = 0;    // one past the last received byte
  std::span<const std::byte> fed_;
  std::size_t fed_pos_ = 0;
  Status error_;
};

// Checks a whole frame that arrived as one message (ZeroMQ): the length field must match the
// message size. On success fills *out (views into `message`).
Status frame_from_message(std::span<const std::byte> message, std::size_t max_frame_size,
                          FrameView* out);

// Checks the fixed header at `p` (kFixedSize bytes). `length` is the prefix value. Returns OK or
// the protocol error.
Status check_header(const std::byte* p, std::uint32_t length) noexcept;

inline std::uint32_t load_be32(const std::byte* p) noexcept {
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) |
         std::uint32_t(p[3]);
}
inline std::uint16_t load_be16(const std::byte* p) noexcept {
  return std::uint16_t((std::uint32_t(p[0]) << 8) | std::uint32_t(p[1]));
}
inline std::uint64_t load_be64(const std::byte* p) noexcept {
  return (std::uint64_t(load_be32(p)) << 32) | load_be32(p + 4);
}
inline void store_be16(std::byte* p, std::uint16_t v) noexcept {
  p[0] = std::byte(v >> 8);
  p[1] = std::byte(v);
}
inline void store_be32(std::byte* p, std::uint32_t v) noexcept {
  p[0] = std::byte(v >> 24);
  p[1] = std::byte(v >> 16);
  p[2] = std::byte(v >> 8);
  p[3] = std::byte(v);
}
inline void store_be64(std::byte* p, std::uint64_t v) noexcept {
  store_be32(p, std::uint32_t(v >> 32));
  store_be32(p + 4, std::uint32_t(v));
}

}  // namespace brine::detail
