#include "wire/compression.hpp"

#include <lz4.h>
#include <zstd.h>

#include <cstring>
#include <stdexcept>

namespace brine::wire {

using detail::kFlagEncoding;
using detail::kPrefixSize;

std::string_view encoding_name(Encoding e) noexcept {
  switch (e) {
    case Encoding::identity:
      return "identity";
    case Encoding::zstd:
      return "zstd";
    case Encoding::lz4:
      return "lz4";
  }
  return "unknown";
}

Encoding Compression::pick(EncodingSet accepted) const noexcept {
  for (const Encoding e : order) {
    if ((accepted & encoding_bit(e)) != 0) return e;
  }
  return Encoding::identity;
}

Compression resolve(const CompressionOptions& options, std::string_view who) {
  Compression c;
  for (const std::string& name : options.algorithms) {
    Encoding e;
    if (name == "zstd") {
      e = Encoding::zstd;
    } else if (name == "lz4") {
      e = Encoding::lz4;
    } else {
      throw std::invalid_argument(std::string(who) + " compression: unknown algorithm '" + name +
                                  "' (known: zstd, lz4)");
    }
    if ((c.set & encoding_bit(e)) == 0) c.order.push_back(e);
    c.set |= encoding_bit(e);
  }
  if (options.level < 0 || options.level > 19) {
    throw std::invalid_argument(std::string(who) + " compression level " +
                                std::to_string(options.level) + ": must be 0 to 19");
  }
  c.threshold = options.threshold;
  c.level = options.level == 0 ? 1 : options.level;
  return c;
}

namespace {
// One context per thread and algorithm: zstd's contexts keep their tables between calls.
struct ZstdContexts {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_DCtx* d = ZSTD_createDCtx();
  ~ZstdContexts() {
    ZSTD_freeCCtx(c);
    ZSTD_freeDCtx(d);
  }
};
ZstdContexts& zstd() {
  thread_local ZstdContexts contexts;
  return contexts;
}

std::size_t bound(Encoding e, std::size_t n) noexcept {
  if (e == Encoding::zstd) return ZSTD_compressBound(n);
  return n > std::size_t(LZ4_MAX_INPUT_SIZE) ? 0 : std::size_t(LZ4_compressBound(int(n)));
}

// Compresses `in` into `out` (room for bound() bytes); returns the size, 0 on failure.
std::size_t compress(Encoding e, int level, std::span<const std::byte> in, std::byte* out,
                     std::size_t room) noexcept {
  if (e == Encoding::zstd) {
    ZSTD_CCtx* c = zstd().c;
    if (c == nullptr) return 0;  // no memory for it: sent as it is
    const std::size_t n = ZSTD_compressCCtx(c, out, room, in.data(), in.size(), level);
    return ZSTD_isError(n) ? 0 : n;
  }
  const int n = LZ4_compress_default(reinterpret_cast<const char*>(in.data()),
                                     reinterpret_cast<char*>(out), int(in.size()), int(room));
  return n > 0 ? std::size_t(n) : 0;
}
}  // namespace

void seal_encoding(Buffer& frame, Encoding algorithm, const Compression& policy,
                   EncodingSet accepts, std::size_t max_frame_size) {
  if (detail::has_encoding(frame.bytes())) return;
  const std::size_t at = detail::payload_offset(frame.bytes());
  const std::size_t payload = frame.size() - at;
  if (algorithm != Encoding::identity && payload >= policy.threshold && payload <= 0xFFFFFFFFu) {
    if (const std::size_t room = bound(algorithm, payload); room != 0) {
      Buffer out(at + 6 + room);
      std::byte* p = out.extend(at + 6);
      std::memcpy(p, frame.data(), at);
      p[at] = std::byte(algorithm);
      p[at + 1] = std::byte(accepts);
      detail::store_be32(p + at + 2, std::uint32_t(payload));
      const std::size_t n =
          compress(algorithm, policy.level, frame.bytes().subspan(at), out.extend(room), room);
      // Kept only when it saves something: otherwise the receiver would decompress for nothing.
      // (n + 6 <= payload: the frame, field included, is no longer than it was.)
      if (n != 0 && n + 6 <= payload) {
        out.resize(at + 6 + n);
        out.data()[9] |= std::byte{kFlagEncoding};
        detail::store_be32(out.data(), std::uint32_t(out.size() - kPrefixSize));
        frame = std::move(out);
        return;
      }
    }
  }
  // As it is: a two-byte field before the payload.
  if (frame.size() - kPrefixSize + 2 > max_frame_size) return;
  (void)frame.extend(2);
  std::byte* p = frame.data() + at;
  if (payload != 0) std::memmove(p + 2, p, payload);
  p[0] = std::byte{0};
  p[1] = std::byte(accepts);
  frame.data()[9] |= std::byte{kFlagEncoding};
  detail::store_be32(frame.data(), std::uint32_t(frame.size() - kPrefixSize));
}

std::string encodings_refusal(EncodingSet accepted) {
  std::string type = "brine.encodings:";
  bool first = true;
  for (unsigned id = 1; id < 8; ++id) {
    if ((accepted & (1u << id)) == 0) continue;
    if (!first) type += ',';
    type += std::to_string(id);
    first = false;
  }
  return type;
}

bool is_encodings_refusal(const Status& status) noexcept {
  return status.code == StatusCode::unimplemented &&
         std::string_view(status.type).starts_with("brine.encodings:");
}

Status check_encoding(std::uint8_t encoding, std::uint32_t decoded_size, EncodingSet accepted,
                      std::size_t limit) {
  if (encoding >= 8 || (accepted & (1u << encoding)) == 0) {
    std::string names;
    for (const Encoding k : {Encoding::zstd, Encoding::lz4}) {
      if ((accepted & encoding_bit(k)) == 0) continue;
      names += names.empty() ? "" : ", ";
      names += encoding_name(k);
    }
    Status s{StatusCode::unimplemented,
             "a payload compressed with algorithm " + std::to_string(encoding) +
                 (encoding < 3 ? " (" + std::string(encoding_name(Encoding(encoding))) + ")"
                               : std::string()) +
                 ", which is not accepted here; accepted: " + (names.empty() ? "none" : names),
             encodings_refusal(accepted)};
    s.retry = Retry::not_run;
    return s;
  }
  if (decoded_size > limit) {
    return {StatusCode::resource_exhausted,
            "a compressed payload claims to decompress to " + std::to_string(decoded_size) +
                " bytes, above the limit of " + std::to_string(limit),
            Retry::never};
  }
  return {};
}

Status inflate(const detail::FrameView& f, EncodingSet accepted, std::size_t limit, Buffer& out) {
  return inflate(f.encoding, f.decoded_size, f.payload, accepted, limit, out);
}

Status inflate(std::uint8_t encoding, std::uint32_t decoded_size,
               std::span<const std::byte> payload, EncodingSet accepted, std::size_t limit,
               Buffer& out) {
  out.clear();
  if (Status s = check_encoding(encoding, decoded_size, accepted, limit); !s.ok()) return s;
  const auto e = Encoding(encoding);
  const std::size_t want = decoded_size;
  const auto refuse = [&](const char* why) {
    out.clear();
    return Status{StatusCode::invalid_argument,
                  "a payload compressed with " + std::string(encoding_name(e)) + " of " +
                      std::to_string(payload.size()) + " bytes " + why + " its stated " +
                      std::to_string(want) + " bytes",
                  Retry::never};
  };
  // Claims no payload can make, refused before the room for them is allocated: lz4 expands at
  // most 255-fold; a zstd frame states its content size (brine's always do), which must agree.
  if (e == Encoding::lz4 && want > payload.size() * 255 + 16) return refuse("cannot expand to");
  if (e == Encoding::zstd) {
    const unsigned long long declared = ZSTD_getFrameContentSize(payload.data(), payload.size());
    if (declared == ZSTD_CONTENTSIZE_ERROR) return refuse("is not a zstd frame of");
    if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != want) return refuse("does not declare");
  }
  out.reserve(want);
  std::byte* dst = out.extend(want);
  bool ok = false;
  if (e == Encoding::zstd) {
    ZSTD_DCtx* d = zstd().d;
    if (d == nullptr) {
      out.clear();
      return {StatusCode::resource_exhausted, "no memory for a zstd context", Retry::later};
    }
    // One zstd frame whose content is exactly `want` bytes: a larger one fails for want of room.
    const std::size_t n = ZSTD_decompressDCtx(d, dst, want, payload.data(), payload.size());
    ok = !ZSTD_isError(n) && n == want;
  } else if (payload.size() <= std::size_t(LZ4_MAX_INPUT_SIZE) && want <= 0x7FFFFFFFu) {
    const int n = LZ4_decompress_safe(reinterpret_cast<const char*>(payload.data()),
                                      reinterpret_cast<char*>(dst), int(payload.size()), int(want));
    ok = n >= 0 && std::size_t(n) == want;
  }
  if (!ok) return refuse("does not decompress to");
  return {};
}

}  // namespace brine::wire
