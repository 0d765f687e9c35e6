// The protobuf codec: the payload is the Protocol Buffers binary encoding of one message.
//
// Types: anything derived from google::protobuf::MessageLite (full and lite generated classes).
// Decoding uses protobuf's flat-array parser, which is safe on untrusted input: allocation stays
// proportional to the payload, nesting is limited to protobuf's default of 100 levels
// (DecodeLimits::max_depth does not change it), and all `required` fields (proto2) must be there.
//
// Also here: the json codec for types derived from google::protobuf::Message (full, not lite),
// through protobuf's JSON mapping with the .proto field names (docs/wire-format.md, "JSON").
//
// Remote objects: a method whose arguments are exactly one message sends that message; a method
// without arguments (and the reply of a void method) sends an empty payload; a remote reference
// is a google.protobuf.StringValue holding the object's name.
#pragma once

#include <concepts>
#include <span>

#include <google/protobuf/message.h>
#include <google/protobuf/message_lite.h>

#include "brine/buffer.hpp"
#include "brine/codec.hpp"
#include "brine/fingerprint.hpp"

namespace brine::protobuf_codec {

// Appends the encoding of `message` to `out`. Throws RpcError(RESOURCE_EXHAUSTED) above 2 GiB.
void encode(const google::protobuf::MessageLite& message, Buffer& out);
// Parses `in` into `message` (cleared first). Throws RpcError(INVALID_ARGUMENT).
void decode(std::span<const std::byte> in, const DecodeLimits& limits,
            google::protobuf::MessageLite& message);
// The JSON mapping (json codec). Throw like the binary versions.
void encode_json(const google::protobuf::Message& message, Buffer& out);
void decode_json(std::span<const std::byte> in, const DecodeLimits& limits,
                 google::protobuf::Message& message);
// A remote reference as a StringValue.
void encode_name(const detail::ObjectName& ref, Buffer& out);
detail::ObjectName decode_name(std::span<const std::byte> in, const DecodeLimits& limits);

}  // namespace brine::protobuf_codec

namespace brine {

// Contracts (brine/fingerprint.hpp): a message is compared by its full name, pb'package.Name'
// (the C++ class's qualified name, which protoc derives from it), so protobuf's own rules decide
// what changes within one message stay compatible.
template <class T>
requires std::derived_from<T, google::protobuf::MessageLite>
struct ShapeTraits<T> {
  static constexpr std::string_view tag = "pb";
};

template <class T>
requires std::derived_from<T, google::protobuf::MessageLite>
struct CodecTraits<CodecId::protobuf, T> {
  static void encode(const T& value, Buffer& out) { protobuf_codec::encode(value, out); }
  static T decode(std::span<const std::byte> in, const DecodeLimits& limits) {
    T value;
    protobuf_codec::decode(in, limits, value);
    return value;
  }
};

template <class T>
requires std::derived_from<T, google::protobuf::Message>
struct CodecTraits<CodecId::json, T> {
  static void encode(const T& value, Buffer& out) { protobuf_codec::encode_json(value, out); }
  static T decode(std::span<const std::byte> in, const DecodeLimits& limits) {
    T value;
    protobuf_codec::decode_json(in, limits, value);
    return value;
  }
};

template <class T>
requires std::derived_from<T, google::protobuf::MessageLite>
struct CodecTraits<CodecId::protobuf, detail::ArgPack<T>> {
  static void encode(const detail::ArgPack<T>& pack, Buffer& out) {
    protobuf_codec::encode(std::get<0>(pack.values), out);
  }
  static detail::ArgPack<T> decode(std::span<const std::byte> in, const DecodeLimits& limits) {
    detail::ArgPack<T> pack;
    protobuf_codec::decode(in, limits, std::get<0>(pack.values));
    return pack;
  }
};

template <>
struct CodecTraits<CodecId::protobuf, detail::ArgPack<>> {
  static void encode(const detail::ArgPack<>&, Buffer&) {}
  static detail::ArgPack<> decode(std::span<const std::byte> in, const DecodeLimits&) {
    if (!in.empty()) {
      throw RpcError(StatusCode::invalid_argument, "protobuf payload: expected no arguments, got " +
                                                       std::to_string(in.size()) + " bytes");
    }
    return {};
  }
};

// An object passed as the only argument (Remote<T>): its name, as a remote reference is.
template <>
struct CodecTraits<CodecId::protobuf, detail::ArgPack<detail::ObjectName>> {
  static void encode(const detail::ArgPack<detail::ObjectName>& pack, Buffer& out) {
    protobuf_codec::encode_name(std::get<0>(pack.values), out);
  }
  static detail::ArgPack<detail::ObjectName> decode(std::span<const std::byte> in,
                                                    const DecodeLimits& limits) {
    return {std::tuple<detail::ObjectName>(protobuf_codec::decode_name(in, limits))};
  }
};

template <>
struct CodecTraits<CodecId::protobuf, detail::ObjectName> {
  static void encode(const detail::ObjectName& ref, Buffer& out) {
    protobuf_codec::encode_name(ref, out);
  }
  static detail::ObjectName decode(std::span<const std::byte> in, const DecodeLimits& limits) {
    return protobuf_codec::decode_name(in, limits);
  }
};

}  // namespace brine
