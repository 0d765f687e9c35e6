// Codecs: how a typed value becomes the payload of a frame and back.
//
// A codec is chosen by name at run time ("cereal", "protobuf"); its one-byte id travels in every
// frame (docs/wire-format.md, "Codec ids"). Which codecs a C++ type can use is decided at compile
// time by the codec headers the program includes:
//
//   #include <brine/codecs/cereal.hpp>    // types with cereal serialize()/save()/load()
//   #include <brine/codecs/protobuf.hpp>  // types derived from google::protobuf::MessageLite
//
// Each of those headers specialises brine::Serialization<T> for the types it handles. Using a
// type in a call without a header that handles it is a compile error (incomplete type).
//
// THE CODEC CONTRACT (every Serialization<T> specialisation keeps it):
//
//   static bool supports(CodecId id) noexcept;
//       Whether T can be written in codec `id`. Constant for a given T.
//
//   static void encode(CodecId id, const T& value, Buffer& out);
//       Appends the encoded value to `out` (which already holds the frame header: never touch
//       bytes before out.size() at entry). Precondition: supports(id). Throws RpcError
//       (RESOURCE_EXHAUSTED) if the encoding cannot fit in a frame, or RpcError (INTERNAL) if the
//       value cannot be encoded. On throw, `out` may hold a partial payload; the caller discards
//       it.
//
//   static T decode(CodecId id, std::span<const std::byte> in, const DecodeLimits& limits);
//       Decodes exactly `in` (borrowed: valid only during the call; the result owns copies of
//       whatever it keeps). `in` is hostile: any byte sequence must either decode or throw
//       RpcError(INVALID_ARGUMENT), never crash, hang, or allocate more than a small multiple of
//       in.size(). Trailing bytes after a complete value are an error. Precondition: supports(id).
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "brine/buffer.hpp"
#include "brine/status.hpp"

namespace brine {

// Wire ids. Never renumber: they are part of the wire format.
enum class CodecId : std::uint8_t {
  cereal = 1,    // cereal portable binary archive (little-endian, 64-bit sizes)
  protobuf = 2,  // Protocol Buffers binary encoding of one message
};

// "cereal", "protobuf"; "codec#N" for ids this build does not know.
std::string_view codec_name(CodecId id) noexcept;
std::string codec_display(std::uint8_t wire_id);
// The id for a name; nullopt for an unknown name.
std::optional<CodecId> codec_from_name(std::string_view name) noexcept;
// Every codec this build knows, in id order.
std::span<const CodecId> known_codecs() noexcept;

struct DecodeLimits {
  // Upper bound on the nesting depth of decoded cereal values. (protobuf keeps its own limit of
  // 100; see codecs/protobuf.)
  std::uint32_t max_depth = 100;
};

// Specialised by the codec headers. The primary template is deliberately left undefined.
template <class T, class Enable = void>
struct Serialization;

// A type some included codec header can carry.
template <class T>
concept Serializable = requires(CodecId id, const T& v, Buffer& out, std::span<const std::byte> in,
                                const DecodeLimits& limits) {
  { Serialization<T>::supports(id) } -> std::same_as<bool>;
  Serialization<T>::encode(id, v, out);
  { Serialization<T>::decode(id, in, limits) } -> std::same_as<T>;
};

}  // namespace brine
