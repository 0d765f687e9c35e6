#include "brine/status.hpp"

#include <cxxabi.h>

#include <array>
#include <cstdlib>
#include <memory>
#include <utility>

#include "brine/codec.hpp"

namespace brine {

std::string_view status_name(StatusCode code) noexcept {
  switch (code) {
    case StatusCode::ok:
      return "OK";
    case StatusCode::cancelled:
      return "CANCELLED";
    case StatusCode::unknown:
      return "UNKNOWN";
    case StatusCode::invalid_argument:
      return "INVALID_ARGUMENT";
    case StatusCode::deadline_exceeded:
      return "DEADLINE_EXCEEDED";
    case StatusCode::not_found:
      return "NOT_FOUND";
    case StatusCode::resource_exhausted:
      return "RESOURCE_EXHAUSTED";
    case StatusCode::unimplemented:
      return "UNIMPLEMENTED";
    case StatusCode::internal:
      return "INTERNAL";
    case StatusCode::unavailable:
      return "UNAVAILABLE";
  }
  return "UNKNOWN";
}

StatusCode status_from_wire(std::uint32_t value) noexcept {
  switch (value) {
    case 0:
    case 1:
    case 2:
    case 3:
    case 4:
    case 5:
    case 8:
    case 12:
    case 13:
    case 14:
      return StatusCode(value);
    default:
      return StatusCode::unknown;
  }
}

std::string Status::to_string() const {
  std::string s(status_name(code));
  if (!message.empty()) s += ": " + message;
  if (!type.empty()) s += " [" + type + "]";
  return s;
}

RpcError::RpcError(Status status)
    : std::runtime_error(status.to_string()), status_(std::move(status)) {}

RpcError::RpcError(StatusCode code, std::string message, std::string type)
    : RpcError(Status{code, std::move(message), std::move(type)}) {}

namespace {
constexpr std::array<CodecId, 3> kKnown = {CodecId::cereal, CodecId::protobuf, CodecId::json};
}

std::string_view codec_name(CodecId id) noexcept {
  switch (id) {
    case CodecId::cereal:
      return "cereal";
    case CodecId::protobuf:
      return "protobuf";
    case CodecId::json:
      return "json";
  }
  return "unknown";
}

std::string codec_display(std::uint8_t wire_id) {
  for (CodecId c : kKnown) {
    if (std::uint8_t(c) == wire_id) return std::string(codec_name(c));
  }
  return "codec#" + std::to_string(wire_id);
}

std::optional<CodecId> codec_from_name(std::string_view name) noexcept {
  for (CodecId c : kKnown) {
    if (codec_name(c) == name) return c;
  }
  return std::nullopt;
}

std::span<const CodecId> known_codecs() noexcept {
  return kKnown;
}

std::string type_name(const std::type_info& type) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> out(
      abi::__cxa_demangle(type.name(), nullptr, nullptr, &status), std::free);
  return status == 0 && out ? std::string(out.get()) : std::string(type.name());
}

namespace detail {
void throw_unsupported_codec(CodecId id, const std::type_info& type) {
  throw RpcError(StatusCode::unimplemented, "type " + type_name(type) + " cannot use codec '" +
                                                std::string(codec_name(id)) + "'");
}
}  // namespace detail

}  // namespace brine
