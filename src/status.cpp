#include "brine/status.hpp"

#include <cstring>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <stdexcept>
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
    case StatusCode::already_exists:
      return "ALREADY_EXISTS";
    case StatusCode::permission_denied:
      return "PERMISSION_DENIED";
    case StatusCode::resource_exhausted:
      return "RESOURCE_EXHAUSTED";
    case StatusCode::failed_precondition:
      return "FAILED_PRECONDITION";
    case StatusCode::aborted:
      return "ABORTED";
    case StatusCode::out_of_range:
      return "OUT_OF_RANGE";
    case StatusCode::unimplemented:
      return "UNIMPLEMENTED";
    case StatusCode::internal:
      return "INTERNAL";
    case StatusCode::unavailable:
      return "UNAVAILABLE";
    case StatusCode::data_loss:
      return "DATA_LOSS";
    case StatusCode::unauthenticated:
      return "UNAUTHENTICATED";
  }
  return "UNKNOWN";
}

StatusCode status_from_wire(std::uint32_t value) noexcept {
  // gRPC's codes, 0 to 16, all defined.
  return value <= 16 ? StatusCode(value) : StatusCode::unknown;
}

std::string Status::to_string() const {
  std::string s(status_name(code));
  if (!message.empty()) s += ": " + message;
  if (!type.empty()) s += " [" + type + "]";
  return s;
}

RpcError::RpcError(Status status)
    : std::runtime_error(status.to_string()), status_(std::move(status)) {}

namespace {
struct ExceptionRegistry {
  std::shared_mutex mu;
  std::map<std::string, detail::ExceptionType, std::less<>> by_name;
  std::map<std::string, std::string, std::less<>> name_of_type;  // typeid name -> name
};
ExceptionRegistry& exceptions() {
  static ExceptionRegistry registry;
  return registry;
}
}  // namespace

namespace detail {
void register_exception_type(std::string name, const char* type, ExceptionType how) {
  if (name.empty()) throw std::invalid_argument("register_exception: an empty name");
  if (how.code == StatusCode::ok) throw std::invalid_argument("register_exception: code OK");
  auto& r = exceptions();
  std::unique_lock lk(r.mu);
  const auto by_type = r.name_of_type.find(std::string_view(type));
  if (by_type != r.name_of_type.end() && by_type->second != name) {
    throw std::invalid_argument("register_exception: the type is registered as '" +
                                by_type->second + "' already, not '" + name + "'");
  }
  const auto by_name = r.by_name.find(name);
  if (by_name != r.by_name.end() && by_type == r.name_of_type.end()) {
    throw std::invalid_argument("register_exception: '" + name + "' names another type already");
  }
  r.by_name.insert_or_assign(name, how);
  r.name_of_type.insert_or_assign(type, std::move(name));
}

const std::string* registered_exception_name(const char* type, StatusCode* code) noexcept {
  auto& r = exceptions();
  std::shared_lock lk(r.mu);
  const auto it = r.name_of_type.find(std::string_view(type));
  if (it == r.name_of_type.end()) return nullptr;
  *code = r.by_name.find(it->second)->second.code;
  return &it->second;  // map nodes are stable, and entries are never erased
}
}  // namespace detail

void throw_status(Status status) {
  if (!status.type.empty()) {
    void (*raise)(const std::string&) = nullptr;
    {
      auto& r = exceptions();
      std::shared_lock lk(r.mu);
      if (const auto it = r.by_name.find(status.type); it != r.by_name.end()) {
        raise = it->second.raise;
      }
    }
    if (raise != nullptr) raise(status.message);
  }
  throw RpcError(std::move(status));
}

RpcError::RpcError(StatusCode code, std::string message, std::string type)
    : RpcError(Status{code, std::move(message), std::move(type)}) {}

}  // namespace brine
