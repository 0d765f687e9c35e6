#include "brine/codecs/protobuf.hpp"

#include <climits>
#include <string>

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

void decode(std::span<const std::byte> in, const DecodeLimits& /*limits*/,
            google::protobuf::MessageLite& message) {
  if (in.size() > std::size_t(INT_MAX)) {
    throw RpcError(StatusCode::invalid_argument, "protobuf payload too large");
  }
  // ParsePartialFromArray, not a CodedInputStream: through a CodedInputStream (even with
  // PushLimit) protobuf 3.21 reserves up to 50 MB for a string whose claimed length exceeds the
  // payload; measured by tests/codec_test.cpp (RandomBytesNeverCrash): a ~100-byte payload
  // allocated 50,000,001 bytes. The flat-array parser knows where the input ends and does not.
  // Its nesting limit is protobuf's own default (100).
  if (!message.ParsePartialFromArray(in.data(), static_cast<int>(in.size()))) {
    throw RpcError(StatusCode::invalid_argument,
                   "protobuf payload does not parse as " + message.GetTypeName());
  }
  if (!message.IsInitialized()) {
    throw RpcError(StatusCode::invalid_argument, "protobuf payload lacks required fields: " +
                                                     message.InitializationErrorString());
  }
}

}  // namespace brine::protobuf_codec
