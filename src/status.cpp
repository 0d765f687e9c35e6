#include "brine/status.hpp"

#include <utility>

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
    case StatusCode::failed_precondition:
      return "FAILED_PRECONDITION";
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
    case 9:
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

}  // namespace brine
