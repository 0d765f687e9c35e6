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
// UTF-8, nested at most DecodeLimits::max_depth deep. Only then is it decoded. Decoding may
// allocate up to about 16 bytes per JSON value (so a few times the payload size), bounded by the
// frame limit. Members a struct does not name are ignored; missing ones and wrong types fail
// with INVALID_ARGUMENT. cereal's JSON archive reads strings as C strings, so for these types a
// string holding a NUL character is refused both ways (encoding: INTERNAL; decoding:
// INVALID_ARGUMENT) rather than cut short. Protobuf messages carry NUL characters fine.
#pragma once

#include <concepts>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <cereal/archives/json.hpp>

#include "brine/buffer.hpp"
#include "brine/codec.hpp"
#include "brine/codecs/cereal.hpp"

namespace brine::json_codec {

// Throws RpcError(INVALID_ARGUMENT) unless `in` is exactly one JSON value nested at most
// limits.max_depth deep (and, unless allow_nul, without NUL characters in its strings).
void check(std::span<const std::byte> in, const DecodeLimits& limits, bool allow_nul);
// Throws RpcError(INVALID_ARGUMENT) for a value of the wrong JSON type or out of its C++ type's
// range, from the assertion text cereal's archive threw and the member it was reading (nullptr:
// an array element): "member 'a' is not an int32 (a whole number from ...)".
[[noreturn]] void fail_mismatch(std::string_view assertion, const char* member);
// Checks `in` and returns the text of each element of the array it must be.
std::vector<std::string> split_array(std::span<const std::byte> in, const DecodeLimits& limits);
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

template <class T>
T decode_value(std::span<const std::byte> in, const DecodeLimits& limits) {
  check(in, limits, false);  // cereal's archive reads strings as C strings: no NUL inside
  std::istringstream is(wrap(in));
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
    const std::vector<std::string> items = json_codec::split_array(in, limits);
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
