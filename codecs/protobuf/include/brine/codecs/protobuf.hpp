// The protobuf codec: the payload is the Protocol Buffers binary encoding of one message.
//
// Types: anything derived from google::protobuf::MessageLite (full and lite generated classes).
// Decoding uses protobuf's flat-array parser, which is safe on untrusted input: allocation stays
// proportional to the payload, nesting is limited to protobuf's default of 100 levels
// (DecodeLimits::max_depth does not change it), and all `required` fields (proto2) must be there.
#pragma once

#include <concepts>
#include <span>

#include <google/protobuf/message_lite.h>

#include "brine/buffer.hpp"
#include "brine/codec.hpp"

namespace brine::protobuf_codec {

// Appends the encoding of `message` to `out`. Throws RpcError(RESOURCE_EXHAUSTED) above 2 GiB.
void encode(const google::protobuf::MessageLite& message, Buffer& out);
// Parses `in` into `message` (cleared first). Throws RpcError(INVALID_ARGUMENT).
void decode(std::span<const std::byte> in, const DecodeLimits& limits,
            google::protobuf::MessageLite& message);

}  // namespace brine::protobuf_codec

namespace brine {

template <class T>
requires std::derived_from<T, google::protobuf::MessageLite>
struct Serialization<T> {
  static bool supports(CodecId id) noexcept { return id == CodecId::protobuf; }
  static void encode(CodecId, const T& value, Buffer& out) { protobuf_codec::encode(value, out); }
  static T decode(CodecId, std::span<const std::byte> in, const DecodeLimits& limits) {
    T value;
    protobuf_codec::decode(in, limits, value);
    return value;
  }
};

}  // namespace brine
