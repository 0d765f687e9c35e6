#include "brine/codecs/protobuf.hpp"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/wrappers.pb.h>

#include <climits>
#include <string>

#include "brine/codecs/json.hpp"

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

void encode_json(const google::protobuf::Message& message, Buffer& out) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;     // the names of the .proto, as cereal's NVPs
  options.always_print_primitive_fields = true;  // a 0 is printed, not left out
  std::string text;
  const auto status = google::protobuf::util::MessageToJsonString(message, &text, options);
  if (!status.ok()) {
    throw RpcError(StatusCode::internal,
                   "protobuf message does not encode as JSON: " + std::string(status.message()));
  }
  out.append(text.data(), text.size());
}

void decode_json(std::span<const std::byte> in, const DecodeLimits& limits,
                 google::protobuf::Message& message) {
  json_codec::check(in, limits,
                    true);  // one value, bounded depth: before protobuf's parser sees it
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(reinterpret_cast<const char*>(in.data()), in.size()), &message,
      google::protobuf::util::JsonParseOptions{});
  if (!status.ok()) {
    throw RpcError(StatusCode::invalid_argument, "json payload does not parse as " +
                                                     message.GetTypeName() + ": " +
                                                     std::string(status.message()));
  }
  if (!message.IsInitialized()) {
    throw RpcError(StatusCode::invalid_argument,
                   "json payload lacks required fields: " + message.InitializationErrorString());
  }
}

void encode_name(const detail::ObjectName& ref, Buffer& out) {
  google::protobuf::StringValue v;
  v.set_value(ref.name);
  encode(v, out);
}

detail::ObjectName decode_name(std::span<const std::byte> in, const DecodeLimits& limits) {
  google::protobuf::StringValue v;
  decode(in, limits, v);
  return {v.value()};
}

}  // namespace brine::protobuf_codec
