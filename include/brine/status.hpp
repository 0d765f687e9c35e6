// Status codes and the exception that carries them.
//
// The set is small and closed. Codes use gRPC's names and numbers where the meaning is the same;
// the numbers travel on the wire (docs/wire-format.md, "Status codes") and never change.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace brine {

enum class StatusCode : std::uint32_t {
  ok = 0,
  cancelled = 1,            // the client was closed while the call was pending
  unknown = 2,              // a code this build does not know, or a non-std exception
  invalid_argument = 3,     // the payload does not decode, or a frame breaks the protocol
  deadline_exceeded = 4,    // the call's timeout passed before a reply arrived
  not_found = 5,            // no such method on the server
  resource_exhausted = 8,   // a frame exceeds the configured size limit
  failed_precondition = 9,  // the client's interface does not match the server's (a contract)
  unimplemented = 12,       // the codec is not served (or the method's types cannot use it)
  internal = 13,            // the handler threw; its message reaches the caller
  unavailable = 14,         // cannot connect, or the connection was lost
};

// "OK", "INVALID_ARGUMENT", ... (gRPC spelling). Unknown numbers give "UNKNOWN".
std::string_view status_name(StatusCode code) noexcept;

// Maps a number read from the wire to a code; numbers outside the set become `unknown`.
StatusCode status_from_wire(std::uint32_t value) noexcept;

// The outcome of a call that did not produce a value.
struct Status {
  Status() = default;
  Status(StatusCode c, std::string msg, std::string type_name = {})  // NOLINT: brace-init
      : code(c), message(std::move(msg)), type(std::move(type_name)) {}

  StatusCode code = StatusCode::ok;
  std::string message;
  std::string type;  // the C++ type name of a remote exception, when there was one

  bool ok() const noexcept { return code == StatusCode::ok; }
  // "DEADLINE_EXCEEDED: call 'add' timed out after 100 ms"
  std::string to_string() const;
};

// Thrown by the blocking client calls and by futures of asynchronous calls. Handlers may throw it
// too: its code and message are then sent to the caller unchanged.
class RpcError : public std::runtime_error {
 public:
  explicit RpcError(Status status);
  RpcError(StatusCode code, std::string message, std::string type = {});

  StatusCode code() const noexcept { return status_.code; }
  const std::string& message() const noexcept { return status_.message; }
  // The remote exception's type name (e.g. "std::domain_error"); empty when none.
  const std::string& remote_type() const noexcept { return status_.type; }
  const Status& status() const noexcept { return status_; }

 private:
  Status status_;
};

}  // namespace brine
