// The encoding field of a frame (flags bit 4) and the compression it names: zstd and lz4.
// docs/wire-format.md, "Compression", is the normative text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "brine/buffer.hpp"
#include "brine/compression.hpp"
#include "brine/detail/frame.hpp"
#include "brine/status.hpp"

namespace brine::wire {

enum class Encoding : std::uint8_t { identity = 0, zstd = 1, lz4 = 2 };
// A set of algorithms: bit (1 << id).
using EncodingSet = std::uint8_t;
inline constexpr EncodingSet encoding_bit(Encoding e) noexcept {
  return EncodingSet(1u << unsigned(e));
}
// Every algorithm this build compresses and decompresses.
inline constexpr EncodingSet kKnownEncodings =
    encoding_bit(Encoding::zstd) | encoding_bit(Encoding::lz4);

std::string_view encoding_name(Encoding e) noexcept;

// CompressionOptions checked and resolved: the algorithms in order of preference.
struct Compression {
  std::vector<Encoding> order;
  EncodingSet set = 0;  // the same, as a set
  std::size_t threshold = 4096;
  int level = 1;
  bool enabled() const noexcept { return set != 0; }
  // The first algorithm of `order` that `accepted` names; identity when none.
  Encoding pick(EncodingSet accepted) const noexcept;
};
// Throws std::invalid_argument for an unknown name, naming `who` ("client", "server").
Compression resolve(const CompressionOptions& options, std::string_view who);

// Adds an encoding field to a finished request, oneway, reply or item frame that has none:
// compresses its payload with `algorithm` when the payload has `threshold` bytes or more and
// shrinks, else leaves it as it is (algorithm 0 in the field). `accepts` goes in the field: the
// algorithms the sender takes in the answer. The frame is re-finished. A frame left uncompressed
// that the two-byte field would take over `max_frame_size` is left without the field (which
// is optional: its receiver then answers uncompressed).
void seal_encoding(Buffer& frame, Encoding algorithm, const Compression& policy,
                   EncodingSet accepts, std::size_t max_frame_size);

// The payload of a frame whose encoding field names an algorithm (f.encoding != 0), decompressed
// into `out` (cleared first). `accepted` is what the receiver accepts; `limit` bounds the
// decompressed size (the receiver's max_frame_size). Errors: UNIMPLEMENTED (an algorithm not in
// `accepted`, with the type "brine.encodings:1,2" naming those it accepts), RESOURCE_EXHAUSTED
// (a decompressed size above the limit), INVALID_ARGUMENT (a payload that does not decompress
// to exactly its stated size).
Status inflate(const detail::FrameView& f, EncodingSet accepted, std::size_t limit, Buffer& out);
// The same for a payload kept apart from its frame: `encoding` and `decoded_size` from its field.
Status inflate(std::uint8_t encoding, std::uint32_t decoded_size,
               std::span<const std::byte> payload, EncodingSet accepted, std::size_t limit,
               Buffer& out);
// The checks inflate() makes before it allocates (the algorithm accepted, the size within the
// limit): for a receiver that decompresses later, where the call runs.
Status check_encoding(std::uint8_t encoding, std::uint32_t decoded_size, EncodingSet accepted,
                      std::size_t limit);

// The type of an UNIMPLEMENTED error refusing an algorithm: "brine.encodings:" and the accepted
// ids in decimal, ascending, separated by commas.
std::string encodings_refusal(EncodingSet accepted);
// Whether `status` is such a refusal.
bool is_encodings_refusal(const Status& status) noexcept;

}  // namespace brine::wire
