// The json codec: UTF-8 JSON text, for debugging and for clients in other languages.
//
// Types: anything the cereal codec carries whose serialize()/save()/load() also works with
// cereal's JSON archives (write them as templates over the archive, as usual). Protobuf messages
// get the json codec from <brine/codecs/protobuf.hpp> (protobuf's own JSON mapping).
//
// Shape (docs/wire-format.md, "JSON"): the payload is the bare JSON value, in the shape cereal's
// JSON archive gives it: a struct is an object whose members are named by its name-value pairs
// (CEREAL_NVP; unnamed members are "value0", "value1", ...), a container is an array, a number
// is a number. The arguments of a remote object's method are a JSON array with one element per
// argument; the reply of a void method is an empty array; a remote reference is
// {"object": "<name>"}.
//
// Hostile input: the text is checked first, without recursion, by rapidjson's iterative parser:
// it must be exactly one JSON value (NaN and Infinity allowed, as cereal writes them), valid
// UTF-8, nested at most DecodeLimits::max_depth deep, and what decoding it into the target type
// will take at its peak (about 40 bytes per JSON value and more; see check()) within
// DecodeLimits::max_decoded_bytes. Only then is it decoded. Members a struct does not name are
// ignored; missing ones and wrong types fail with INVALID_ARGUMENT. cereal's JSON archive reads
// strings as C strings, so for these types a string holding a NUL character is refused both ways
// (encoding: INTERNAL; decoding: INVALID_ARGUMENT) rather than cut short. Protobuf messages carry
// NUL characters fine.
#pragma once

#include <concepts>
#include <istream>
#include <span>
#include <sstream>
#include <streambuf>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <cereal/archives/json.hpp>

#include "brine/buffer.hpp"
#include "brine/codec.hpp"
#include "brine/codecs/cereal.hpp"
#include "brine/fingerprint.hpp"

namespace brine::json_codec {

// What one JSON value makes rapidjson's document allocate at the peak of decoding: its 16-byte
// value on the parser's stack (whose capacity grows by half, the old block copied into the new)
// and again in the document once its container ends. Measured at about 36 bytes a value
// (DecodedSize.JsonDecodingTakesNoMoreThanItsEstimate), charged 48. The C++ element it becomes
// is charged on top (value_cost<T>, below).
inline constexpr std::uint64_t kDomValueBytes = 48;

// Throws RpcError(INVALID_ARGUMENT) unless `in` is exactly one JSON value nested at most
// limits.max_depth deep (and, unless allow_nul, without NUL characters in its strings), whose
// decoding stays within limits.max_decoded_bytes when each value costs `value_bytes` (besides
// the text, charged three times: parser, document, C++ string) and the text is copied twice.
void check(std::span<const std::byte> in, const DecodeLimits& limits, bool allow_nul,
           std::uint64_t value_bytes);
// Throws RpcError(INVALID_ARGUMENT) for a value of the wrong JSON type or out of its C++ type's
// range, from the assertion text cereal's archive threw and the member it was reading (nullptr:
// an array element): "member 'a' is not an int32 (a whole number from ...)".
[[noreturn]] void fail_mismatch(std::string_view assertion, const char* member);
// Checks `in` and returns the text of each element of the array it must be.
// `value_bytes` as for check().
std::vector<std::string> split_array(std::span<const std::byte> in, const DecodeLimits& limits,
                                     std::uint64_t value_bytes);
// Appends X for cereal's output {"value0": X}, compact; throws RpcError(INTERNAL) for strings
// that are not UTF-8.
void append_unwrapped(const std::string& cereal_json, Buffer& out);
// {"value0": <in>}: what cereal's JSON input archive reads a single value from. `in` must have
// passed check(). Numbers the JSON library Debian ships would convert wrongly are respelled
// first (json.cpp says which and why): zeros written with a fraction or an exponent become 0.0
// or -0.0, doubles of more than 17 significant digits their shortest exact form.
std::string wrap(std::span<const std::byte> in);

template <class T>
concept Carried = cereal_codec::Carried<T> &&
    ::cereal::traits::is_output_serializable<T, ::cereal::JSONOutputArchive>::value &&
    ::cereal::traits::is_input_serializable<T, ::cereal::JSONInputArchive>::value;

template <class T>
void encode_value(const T& value, Buffer& out) {
  std::ostringstream os;
  {
    ::cereal::JSONOutputArchive ar(os, ::cereal::JSONOutputArchive::Options::NoIndent());
    ar(value);
  }
  append_unwrapped(os.str(), out);
}

// The most one JSON value inside a T can allocate as C++ when decoded: an element of a container
// (its size, and a node's links for node-based containers), found by walking T's structure.
// Strings' characters are charged with the text. A class the walk cannot see into (a class
// with private members and serialize()) is charged kUnknownValueBytes.
inline constexpr std::uint64_t kUnknownValueBytes = 128;

// A heap block holding n bytes (glibc: an 8-byte header, 16-byte granules).
constexpr std::uint64_t heap_block(std::uint64_t n) noexcept {
  return (n + 8 + 15) / 16 * 16;
}

template <class T, int Depth = 0>
constexpr std::uint64_t value_cost() noexcept;

template <int Depth, class... T>
constexpr std::uint64_t max_value_cost() noexcept {
  std::uint64_t m = 0;
  ((m = std::max(m, value_cost<T, Depth + 1>())), ...);
  return m;
}

template <class List, int Depth>
struct list_cost;
template <template <class...> class L, class... T, int Depth>
struct list_cost<L<T...>, Depth> {
  static constexpr std::uint64_t value = max_value_cost<Depth, T...>();
};

template <class T, int Depth>
constexpr std::uint64_t value_cost() noexcept {
  using U = std::remove_cvref_t<T>;
  using ::brine::detail::is_specialisation;
  constexpr std::uint64_t kTreeLinks = 32;  // std::set/std::map node: colour, three links
  if constexpr (Depth > 8) {
    return kUnknownValueBytes;  // a recursive type: stop looking
  } else if constexpr (std::is_arithmetic_v<U> || std::is_enum_v<U> ||
                       std::is_same_v<U, std::string>) {
    return 0;  // inside its parent's element
  } else if constexpr (is_specialisation<U, std::optional>) {
    return value_cost<typename U::value_type, Depth + 1>();
  } else if constexpr (is_specialisation<U, std::variant> || is_specialisation<U, std::tuple> ||
                       is_specialisation<U, std::pair>) {
    return list_cost<U, Depth>::value;
  } else if constexpr (::brine::detail::is_std_array<U>) {
    return value_cost<typename U::value_type, Depth + 1>();
  } else if constexpr (requires { typename U::key_type; }) {
    // Sets and maps, ordered or hashed (a hash node is smaller than a tree node, plus a bucket).
    return std::max({heap_block(sizeof(typename U::value_type) + kTreeLinks),
                     value_cost<typename U::key_type, Depth + 1>(),
                     value_cost<typename U::value_type, Depth + 1>()});
  } else if constexpr (requires(const U& u) {
                         typename U::value_type;
                         u.begin();
                         u.end();
                       }) {
    // A vector is resized to the array's length, so an element costs its size; a deque's
    // blocks, a list's nodes and other containers are charged a heap block with two links.
    using E = typename U::value_type;
    constexpr bool contiguous = requires(const U& u) {
      u.data();
    };
    return std::max<std::uint64_t>(contiguous ? sizeof(E) : heap_block(sizeof(E) + 16),
                                   value_cost<E, Depth + 1>());
  } else if constexpr (::brine::detail::Reflectable<U>) {
    return list_cost<::brine::detail::fields_t<U>, Depth>::value;
  } else {
    return kUnknownValueBytes;
  }
}

// Reads a string where it is (std::istringstream would copy it).
class TextBuf : public std::streambuf {
 public:
  explicit TextBuf(std::string& text) { setg(text.data(), text.data(), text.data() + text.size()); }
};

template <class T>
T decode_value(std::span<const std::byte> in, const DecodeLimits& limits) {
  // cereal's archive reads strings as C strings: no NUL inside
  check(in, limits, false, kDomValueBytes + value_cost<T>());
  std::string text = wrap(in);
  TextBuf buf(text);
  std::istream is(&buf);
  T value{};
  try {
    ::cereal::JSONInputArchive ar(is);
    try {
      ar(value);
    } catch (const ::cereal::RapidJSONException& e) {
      // A getter's assertion: the archive stands at the member it was reading.
      fail_mismatch(e.what(), ar.getNodeName());
    }
  } catch (const ::cereal::Exception& e) {
    throw RpcError(StatusCode::invalid_argument, std::string("json payload: ") + e.what());
  }
  return value;
}

// The text of one element, as a span for a nested decode.
inline std::span<const std::byte> bytes_of(const std::string& s) noexcept {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

struct ObjectRef {
  std::string object;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(::cereal::make_nvp("object", object));
  }
};

}  // namespace brine::json_codec

namespace brine {

template <class T>
requires json_codec::Carried<T>
struct CodecTraits<CodecId::json, T> {
  static void encode(const T& value, Buffer& out) { json_codec::encode_value(value, out); }
  static T decode(std::span<const std::byte> in, const DecodeLimits& limits) {
    return json_codec::decode_value<T>(in, limits);
  }
};

// Argument lists: a JSON array, one element per argument, each in its own type's JSON shape.
template <class... Ts>
requires(CodecCarries<CodecId::json, Ts>&&...) struct CodecTraits<CodecId::json,
                                                                  detail::ArgPack<Ts...>> {
  static void encode(const detail::ArgPack<Ts...>& pack, Buffer& out) {
    out.append("[", 1);
    std::apply(
        [&](const Ts&... v) {
          bool first = true;
          ((first ? void() : out.append(",", 1), first = false,
            CodecTraits<CodecId::json, Ts>::encode(v, out)),
           ...);
        },
        pack.values);
    out.append("]", 1);
  }
  static detail::ArgPack<Ts...> decode(std::span<const std::byte> in, const DecodeLimits& limits) {
    const std::vector<std::string> items = json_codec::split_array(
        in, limits, json_codec::kDomValueBytes + json_codec::max_value_cost<0, Ts...>());
    if (items.size() != sizeof...(Ts)) {
      throw RpcError(StatusCode::invalid_argument,
                     "json payload: expected an array of " + std::to_string(sizeof...(Ts)) +
                         " arguments, got " + std::to_string(items.size()));
    }
    detail::ArgPack<Ts...> pack;
    std::size_t i = 0;
    std::apply(
        [&](Ts&... v) {
          ((v = CodecTraits<CodecId::json, Ts>::decode(json_codec::bytes_of(items[i++]), limits)),
           ...);
        },
        pack.values);
    return pack;
  }
};

// Any JSON value, as text: what a generic tool (`brine call`, a gateway) sends and receives when
// it does not know a method's C++ types. The server decodes it into the method's own types, so
// it is checked there; here it is checked as any json payload is (exactly one value, UTF-8,
// depth and size within the limits). Carried by the json codec only.
//
//   auto r = client.try_call<brine::JsonText>("add", brine::JsonText{R"({"a":2,"b":3})"});
//   // r->text == R"({"value":5.0})"
struct JsonText {
  std::string text;
};

// Its contract shape, json'brine.JsonText', is compatible with every other shape: the server
// decodes the text into its own types, which is the check.
template <>
struct ShapeTraits<JsonText> {
  static constexpr std::string_view tag = "json";
};

template <>
struct CodecTraits<CodecId::json, JsonText> {
  static void encode(const JsonText& value, Buffer& out) {
    try {
      json_codec::check(json_codec::bytes_of(value.text), DecodeLimits{}, true,
                        json_codec::kDomValueBytes);
    } catch (const RpcError& e) {
      throw RpcError(StatusCode::invalid_argument, "JsonText: " + e.status().message);
    }
    out.append(value.text.data(), value.text.size());
  }
  static JsonText decode(std::span<const std::byte> in, const DecodeLimits& limits) {
    json_codec::check(in, limits, true, json_codec::kDomValueBytes);
    return {std::string(reinterpret_cast<const char*>(in.data()), in.size())};
  }
};

// A remote reference: {"object": "<name>"}.
template <>
struct CodecTraits<CodecId::json, detail::ObjectName> {
  static void encode(const detail::ObjectName& ref, Buffer& out) {
    json_codec::encode_value(json_codec::ObjectRef{ref.name}, out);
  }
  static detail::ObjectName decode(std::span<const std::byte> in, const DecodeLimits& limits) {
    return {json_codec::decode_value<json_codec::ObjectRef>(in, limits).object};
  }
};

}  // namespace brine
