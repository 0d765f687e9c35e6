// libFuzzer target: the frame decoders (stream parser and single-message form) on hostile bytes.
// The first input byte picks the read size, so that fragmentation is fuzzed too.
#include <cstdint>
#include <cstring>

#include "brine/detail/frame.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace brine::detail;
  if (size == 0) return 0;
  const std::size_t chunk = 1 + data[0] % 64;
  const auto* bytes = reinterpret_cast<const std::byte*>(data + 1);
  const std::size_t n = size - 1;

  FrameParser parser(64 * 1024);
  for (std::size_t off = 0; off < n; off += chunk) {
    const std::size_t k = std::min(chunk, n - off);
    auto space = parser.prepare(k);
    std::memcpy(space.data(), bytes + off, k);
    parser.commit(k);
    FrameView f{};
    for (;;) {
      const auto r = parser.next(&f);
      if (r == FrameParser::Next::need_more) break;
      if (r == FrameParser::Next::error) return 0;
      if (f.payload.size() + f.method.size() + kFixedSize > 64 * 1024 + kPrefixSize)
        __builtin_trap();
      if (f.kind == FrameKind::error) (void)parse_error_payload(f.payload);
    }
  }
  FrameView f{};
  if (frame_from_message({bytes, n}, 64 * 1024, &f).ok() && f.kind == FrameKind::error) {
    (void)parse_error_payload(f.payload);
  }
  return 0;
}
