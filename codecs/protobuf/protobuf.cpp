#include "brine/codecs/protobuf.hpp"

#include <climits>
#include <string>

#include <google/protobuf/io/coded_stream.h>

namespace brine::protobuf_codec {

void encode(const google::protobuf::MessageLite& message, Buffer& out) {
  const std::size_t size = message.ByteSizeLong();
  if (size > std::size_t(INT_MAX)) {
    throw RpcError(StatusCode::resource_exhausted,
                   "protobuf message of " + std::to_string(size) + " bytes is too large");
  }
  auto* p = reinterpret_cast<std::uint8_t*>(out.extend(size));
  message.SerializeWithCachedSizesToArray(p);
}

void decode(std::span<const std::byte> in, const DecodeLimits& limits,
            google::protobuf::MessageLite& message) {
  if (in.size() > std::size_t(INT_MAX)) {
    throw RpcError(StatusCode::invalid_argument, "protobuf payload too large");
  }
  google::protobuf::io::CodedInputStream stream(reinterpret_cast<const std::uint8_t*>(in.data()),
                                                static_cast<int>(in.size()));
  stream.SetRecursionLimit(static_cast<int>(limits.max_depth));
  message.Clear();
  if (!message.MergePartialFromCodedStream(&stream) || !stream.ConsumedEntireMessage()) {
    throw RpcError(StatusCode::invalid_argument,
                   "protobuf payload does not parse as " + message.GetTypeName());
  }
  if (!message.IsInitialized()) {
    throw RpcError(StatusCode::invalid_argument, "protobuf payload lacks required fields: " +
                                                     message.InitializationErrorString());
  }
}

}  // namespace brine::protobuf_codec
