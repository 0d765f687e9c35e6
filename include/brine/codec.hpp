// Codecs: how a typed value becomes the payload of a frame and back.
//
// A codec is chosen by name at run time ("cereal", "protobuf", "json"); its one-byte id travels
// in every frame (docs/wire-format.md, "Codec ids"). Which codecs a C++ type can use is decided
// at compile time by the codec headers the program includes:
//
//   #include <brine/codecs/cereal.hpp>    // cereal: types with serialize()/save()/load()
//   #include <brine/codecs/json.hpp>      // json: the same types, through cereal's JSON archive
//   #include <brine/codecs/protobuf.hpp>  // protobuf: types derived from MessageLite; and json
//                                         //   for types derived from Message (protobuf's mapping)
//
// Each codec header specialises CodecTraits<codec, T> for the types it handles; Serialization<T>
// dispatches on the codec id at run time. Using a type that no included header handles is a
// compile error. (A program may also specialise Serialization<T> itself, for all codecs at once.)
//
// THE CODEC CONTRACT (every CodecTraits specialisation, and Serialization<T>, keeps it):
//
//   encode(const T& value, Buffer& out)
//       Appends the encoded value to `out` (which already holds the frame header: never touch
//       bytes before out.size() at entry). Throws RpcError (RESOURCE_EXHAUSTED) if the encoding
//       cannot fit in a frame, or RpcError (INTERNAL) if the value cannot be encoded. On throw,
//       `out` may hold a partial payload; the caller discards it.
//
//   T decode(std::span<const std::byte> in, const DecodeLimits& limits)
//       Decodes exactly `in` (borrowed: valid only during the call; the result owns copies of
//       whatever it keeps). `in` is hostile: any byte sequence must either decode or throw
//       RpcError(INVALID_ARGUMENT), never crash, hang, or allocate more than a small multiple of
//       in.size(). Trailing bytes after a complete value are an error.
//
// Serialization<T> adds `static bool supports(CodecId)` and takes the codec id as the first
// argument of encode/decode; for a codec T cannot use they throw RpcError(UNIMPLEMENTED).
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include "brine/buffer.hpp"
#include "brine/status.hpp"

namespace brine {

// THE CODEC LIST: every codec this build knows, as X(name, wire id). Adding a codec is its
// folder under codecs/ (which specialises CodecTraits for its types) and one line here. The ids
// are part of the wire format (docs/wire-format.md, "Codec ids"): never renumber them.
#define BRINE_CODEC_LIST(X)                                                         \
  X(cereal, 1)   /* cereal portable binary archive (little-endian, 64-bit sizes) */ \
  X(protobuf, 2) /* Protocol Buffers binary encoding of one message */              \
  X(json, 3)     /* UTF-8 JSON text (cereal's JSON archive, or protobuf's mapping) */

enum class CodecId : std::uint8_t {
#define BRINE_CODEC_ENUMERATOR(name, id) name = id,
  BRINE_CODEC_LIST(BRINE_CODEC_ENUMERATOR)
#undef BRINE_CODEC_ENUMERATOR
};

namespace detail {
struct CodecEntry {
  CodecId id;
  std::string_view name;
};
inline constexpr CodecEntry kCodecs[] = {
#define BRINE_CODEC_ENTRY(name, id) {CodecId::name, #name},
    BRINE_CODEC_LIST(BRINE_CODEC_ENTRY)
#undef BRINE_CODEC_ENTRY
};
inline constexpr std::size_t kCodecCount = std::size(kCodecs);
// One more than the highest wire id: the size of a table indexed by codec id.
inline constexpr std::size_t kCodecSlots = [] {
  std::size_t highest = 0;
  for (const CodecEntry& c : kCodecs) highest = std::max<std::size_t>(highest, std::size_t(c.id));
  return highest + 1;
}();
}  // namespace detail

// "cereal", "protobuf", "json"; "codec#N" for ids this build does not know.
std::string_view codec_name(CodecId id) noexcept;
std::string codec_display(std::uint8_t wire_id);
// The id for a name; nullopt for an unknown name.
std::optional<CodecId> codec_from_name(std::string_view name) noexcept;
// Every codec this build knows, in id order.
std::span<const CodecId> known_codecs() noexcept;

// A set of codecs: bit N stands for wire id N (ids from 32 up are in no set).
using CodecSet = std::uint32_t;
constexpr CodecSet codec_bit(CodecId id) noexcept {
  return unsigned(id) < 32 ? CodecSet(1) << unsigned(id) : 0;
}
// Every codec this build knows.
inline constexpr CodecSet kAllCodecs = [] {
  CodecSet s = 0;
  for (const detail::CodecEntry& c : detail::kCodecs) s |= codec_bit(c.id);
  return s;
}();
// "cereal, json" (in id order); "none" for the empty set.
std::string codec_names(CodecSet set);

namespace detail {
// A server that refuses a request for its codec (UNIMPLEMENTED), or for a contract that another
// codec's handler of the method accepts (FAILED_PRECONDITION), says which codecs to use, in the
// error's type field: "brine.codecs:1,3" (docs/wire-format.md, "Codec ids"). A client then calls
// again in one of them.
inline constexpr std::string_view kCodecsRefusal = "brine.codecs:";
std::string codecs_refusal(CodecSet served);
// The set a refusal names; nullopt when `status` is not such a refusal.
std::optional<CodecSet> refused_codecs(const Status& status);
}  // namespace detail

struct DecodeLimits {
  // Upper bound on the nesting depth of decoded cereal and JSON values. (protobuf keeps its own
  // limit of 100; see codecs/protobuf.)
  std::uint32_t max_depth = 100;
  // Upper bound on the memory one payload may decode into, estimated from the payload before (or
  // while) it is decoded: a frame of valid size whose elements are tiny on the wire but large in
  // memory (a million empty sub-messages, a set of one-byte keys) is refused with
  // INVALID_ARGUMENT instead of allocating hundreds of megabytes. See docs/security.md.
  std::uint64_t max_decoded_bytes = 256ull * 1024 * 1024;
  // JSON exactly as RFC 8259 has it: NaN, Infinity and -Infinity, which brine otherwise reads and
  // writes as bare tokens (as Python's json module and cereal do), are refused in what is read
  // (INVALID_ARGUMENT), and a value that would write one fails instead (a server's reply:
  // INTERNAL; a client's request: INVALID_ARGUMENT). For peers whose parser is strict (a
  // browser's JSON.parse). Configuration key json_strict.
  bool json_strict = false;
};

namespace detail {
// Whether a JSON payload holds NaN, Infinity or -Infinity outside strings (codecs/json).
bool json_holds_nonfinite(std::span<const std::byte> payload);
// Whether a payload written in `codec` keeps the rules its reader is promised by `limits`:
// today json_strict's.
inline bool written_as_promised(CodecId codec, std::span<const std::byte> payload,
                                const DecodeLimits& limits) {
  return !limits.json_strict || codec != CodecId::json || !json_holds_nonfinite(payload);
}
}  // namespace detail

// Specialised (partially, with constraints) by the codec headers: CodecTraits<codec, T> exists
// when that codec can carry T. The primary template is deliberately left undefined.
template <CodecId C, class T>
struct CodecTraits;

// Whether codec C can carry T in this translation unit.
template <CodecId C, class T>
concept CodecCarries = requires(const T& v, Buffer& out, std::span<const std::byte> in,
                                const DecodeLimits& limits) {
  CodecTraits<C, T>::encode(v, out);
  { CodecTraits<C, T>::decode(in, limits) } -> std::same_as<T>;
};

namespace detail {

// Whether some codec of the list can carry T, and whether codec `id` can (in this translation
// unit).
template <class T, std::size_t... I>
constexpr bool any_codec_carries(std::index_sequence<I...>) noexcept {
  return (CodecCarries<kCodecs[I].id, T> || ...);
}
template <class T, std::size_t... I>
constexpr bool carries_by_id(CodecId id, std::index_sequence<I...>) noexcept {
  return ((id == kCodecs[I].id && CodecCarries<kCodecs[I].id, T>) || ...);
}

[[noreturn]] void throw_unsupported_codec(CodecId id, const std::type_info& type);

// Calls f(std::integral_constant<CodecId, c>{}) for the codec `id`; throws UNIMPLEMENTED for an
// id this build does not know.
template <class F, std::size_t I = 0>
auto visit_codec(CodecId id, F&& f)
    -> decltype(f(std::integral_constant<CodecId, kCodecs[0].id>{})) {
  if constexpr (I < kCodecCount) {
    if (id == kCodecs[I].id) return f(std::integral_constant<CodecId, kCodecs[I].id>{});
    return visit_codec<F, I + 1>(id, std::forward<F>(f));
  } else {
    throw RpcError(StatusCode::unimplemented,
                   "unknown codec id " + std::to_string(static_cast<unsigned>(id)));
  }
}

// Values of several types encoded one after another: the arguments of a remote object's method
// (and, empty, the reply of a void method). Each codec header says how it lays them out
// (docs/wire-format.md, "Argument lists").
template <class... Ts>
struct ArgPack {
  using tuple = std::tuple<Ts...>;
  std::tuple<Ts...> values;
};

// The reply of a method that returns a remote reference: the new object's name.
struct ObjectName {
  std::string name;
};

}  // namespace detail

// Dispatches to CodecTraits by the codec id. Specialise it directly only for a type that
// handles every codec itself.
template <class T, class Enable = void>
struct Serialization {
  using dispatching = void;  // marks this generic version (absent from user specialisations)

  static bool supports(CodecId id) noexcept {
    return detail::carries_by_id<T>(id, std::make_index_sequence<detail::kCodecCount>{});
  }

  static void encode(CodecId id, const T& value, Buffer& out) {
    detail::visit_codec(id, [&](auto c) {
      if constexpr (CodecCarries<c.value, T>) {
        CodecTraits<c.value, T>::encode(value, out);
      } else {
        detail::throw_unsupported_codec(id, typeid(T));
      }
    });
  }

  static T decode(CodecId id, std::span<const std::byte> in, const DecodeLimits& limits) {
    return detail::visit_codec(id, [&](auto c) -> T {
      if constexpr (CodecCarries<c.value, T>) {
        return CodecTraits<c.value, T>::decode(in, limits);
      } else {
        detail::throw_unsupported_codec(id, typeid(T));
      }
    });
  }
};

// A type some included codec header can carry (or that specialises Serialization itself).
template <class T>
concept Serializable =
    detail::any_codec_carries<T>(std::make_index_sequence<detail::kCodecCount>{}) || !requires {
  typename Serialization<T>::dispatching;
};

namespace detail {

// Compile-time checks that fail with one readable error per type no included codec can carry:
// the "In instantiation of" line above the error names where the type is and what it is.
//
// An interface method's parameter (Position 1, 2, ...) or result (Position 0):
template <auto Method, std::size_t Position, class T>
constexpr bool carried_type() {
  static_assert(Serializable<T>,
                "brine: no codec header included here can carry the type T named in the line "
                "above (Method, and Position: 1 is the first parameter, 0 the result). Include the "
                "header of a codec that carries it (<brine/codecs/cereal.hpp>, json.hpp, "
                "protobuf.hpp), give it serialize(), or use another type (std::string for "
                "std::string_view, values for pointers)");
  return Serializable<T>;
}
// A typed call's request and response (an argument list is checked by carried_type already):
template <class T>
inline constexpr bool is_arg_pack = false;
template <class... Ts>
inline constexpr bool is_arg_pack<ArgPack<Ts...>> = true;
template <class Request, class Response>
constexpr bool carried_call() {
  static_assert(Serializable<Request> || is_arg_pack<Request>,
                "brine: no codec header included here can carry the request type named "
                "`Request` in the line above. Include the header of a codec that carries it "
                "(<brine/codecs/cereal.hpp>, json.hpp, protobuf.hpp) or give it serialize()");
  // (if constexpr: clang checks Serializable<void> even behind `is_void_v ||`.)
  if constexpr (!std::is_void_v<Response>) {
    static_assert(Serializable<Response>,
                  "brine: no codec header included here can carry the response type named "
                  "`Response` in the line above. Include the header of a codec that carries it "
                  "(<brine/codecs/cereal.hpp>, json.hpp, protobuf.hpp) or give it serialize()");
  }
  return true;
}

}  // namespace detail

// The demangled name of a C++ type, for messages.
std::string type_name(const std::type_info& type);

}  // namespace brine
