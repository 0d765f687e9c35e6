#include "brine/codecs/protobuf.hpp"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/wire_format_lite.h>
#include <google/protobuf/wrappers.pb.h>
#include <algorithm>

#include <algorithm>
#include <climits>
#include <string>
#include <vector>

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

namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedInputStream;

// What one JSON value of a message costs while protobuf parses it (json_codec::check()).
constexpr std::uint64_t kJsonValueBytes =
    json_codec::kDomValueBytes + json_codec::kUnknownValueBytes;

// What one object of `type` costs in memory: the object header and about a word per field, and
// the pointer a repeated field keeps to it. (Counted from the descriptor: SpaceUsedLong() on
// default instances crashes for map entries in protobuf 3.21.)
std::uint64_t object_cost(const Descriptor* type) {
  return 32 + 8 * std::uint64_t(type->field_count()) + 8;
}

// The most one JSON value can cost while protobuf parses a message of `type` (json_codec::
// check()): its binary encoding (protobuf's JSON parser converts to it first; no DOM) and the
// largest element any field reachable from `type` can make: a sub-message (maps' entries too)
// with its heap block and the slot that points to it, a string, or a scalar.
std::uint64_t json_value_cost(const Descriptor* type) {
  constexpr std::uint64_t kBinary = 16;       // tag, length or varint, and parser state
  constexpr std::uint64_t kHeldMessage = 32;  // heap block header and the pointer to it
  constexpr std::uint64_t kString = 48;       // std::string, its pointer and its block
  std::vector<const Descriptor*> seen{type};
  std::uint64_t largest = 8;  // a scalar
  for (std::size_t i = 0; i < seen.size(); ++i) {
    for (int f = 0; f < seen[i]->field_count(); ++f) {
      const FieldDescriptor* field = seen[i]->field(f);
      if (const Descriptor* sub = field->message_type()) {
        largest = std::max(largest, object_cost(sub) + kHeldMessage);
        if (std::find(seen.begin(), seen.end(), sub) == seen.end()) seen.push_back(sub);
      } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
        largest = std::max(largest, kString);
      }
    }
  }
  return kBinary + largest;
}

// Estimates, from the wire alone, the memory that parsing `in` as `type` allocates: each
// sub-message object, string bytes, repeated elements, unknown fields. Walks iteratively with
// the descriptors (no recursion, no allocation per field). Returns false as soon as the estimate
// exceeds `limit`. Malformed input ends the walk with true: the parser refuses it anyway.
bool decoded_size_within(const Descriptor* type, std::span<const std::byte> in,
                         std::uint64_t limit) {
  struct Level {
    const Descriptor* type;  // null inside an unknown group
    CodedInputStream::Limit limit;
    bool group;
  };
  CodedInputStream input(reinterpret_cast<const std::uint8_t*>(in.data()), int(in.size()));
  std::vector<Level> stack;
  stack.push_back({type, input.PushLimit(int(in.size())), false});
  std::uint64_t total = object_cost(type);
  constexpr std::uint64_t kUnknownField = 24;  // an UnknownField and its slot
  while (!stack.empty()) {
    if (total > limit) return false;
    if (!stack.back().group && input.BytesUntilLimit() == 0) {
      input.PopLimit(stack.back().limit);
      stack.pop_back();
      continue;
    }
    const std::uint32_t tag = input.ReadTag();
    if (tag == 0) return true;
    const Descriptor* current = stack.back().type;
    const FieldDescriptor* field =
        current != nullptr ? current->FindFieldByNumber(WireFormatLite::GetTagFieldNumber(tag))
                           : nullptr;
    const bool repeated = field != nullptr && field->is_repeated();
    switch (WireFormatLite::GetTagWireType(tag)) {
      case WireFormatLite::WIRETYPE_VARINT: {
        std::uint64_t v;
        if (!input.ReadVarint64(&v)) return true;
        total += field == nullptr ? kUnknownField : repeated ? 8 : 0;
        break;
      }
      case WireFormatLite::WIRETYPE_FIXED64:
        if (!input.Skip(8)) return true;
        total += field == nullptr ? kUnknownField : repeated ? 8 : 0;
        break;
      case WireFormatLite::WIRETYPE_FIXED32:
        if (!input.Skip(4)) return true;
        total += field == nullptr ? kUnknownField : repeated ? 4 : 0;
        break;
      case WireFormatLite::WIRETYPE_LENGTH_DELIMITED: {
        std::uint32_t length;
        if (!input.ReadVarint32(&length) || length > std::uint32_t(input.BytesUntilLimit())) {
          return true;
        }
        if (field != nullptr && field->type() == FieldDescriptor::TYPE_MESSAGE) {
          if (stack.size() >= 100) return true;  // the parser's own depth limit refuses it
          total += object_cost(field->message_type());
          stack.push_back({field->message_type(), input.PushLimit(int(length)), false});
          continue;
        }
        if (field != nullptr && field->is_packable()) {
          // Packed scalars: a 1-byte varint may become an 8-byte integer.
          total += std::uint64_t(length) * 8;
        } else {
          total += std::uint64_t(length) + 32;  // a string (or unknown bytes) and its header
        }
        if (!input.Skip(int(length))) return true;
        break;
      }
      case WireFormatLite::WIRETYPE_START_GROUP:
        if (stack.size() >= 100) return true;
        total += field != nullptr && field->type() == FieldDescriptor::TYPE_GROUP
                     ? object_cost(field->message_type())
                     : kUnknownField;
        stack.push_back({field != nullptr && field->type() == FieldDescriptor::TYPE_GROUP
                             ? field->message_type()
                             : nullptr,
                         {},
                         true});
        break;
      case WireFormatLite::WIRETYPE_END_GROUP:
        if (!stack.back().group) return true;
        stack.pop_back();
        break;
      default:
        return true;
    }
  }
  return total <= limit;
}

}  // namespace

void decode(std::span<const std::byte> in, const DecodeLimits& limits,
            google::protobuf::MessageLite& message) {
  if (in.size() > std::size_t(INT_MAX)) {
    throw RpcError(StatusCode::invalid_argument, "protobuf payload too large");
  }
  // Generated full messages have descriptors: estimate what parsing allocates before parsing.
  // (Lite messages have none and are bounded by the frame size alone.)
  if (const auto* full = dynamic_cast<const google::protobuf::Message*>(&message);
      full != nullptr &&
      !decoded_size_within(full->GetDescriptor(), in, limits.max_decoded_bytes)) {
    throw RpcError(StatusCode::invalid_argument,
                   "protobuf payload: decoding would take more than max_decoded_bytes (" +
                       std::to_string(limits.max_decoded_bytes) + " bytes)");
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
  // One value, bounded depth and size, before protobuf's parser sees it.
  json_codec::check(in, limits, true, json_value_cost(message.GetDescriptor()));
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
