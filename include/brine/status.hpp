// Status codes and the exception that carries them.
//
// The set is small and closed. Codes use gRPC's names and numbers where the meaning is the same;
// the numbers travel on the wire (docs/wire-format.md, "Status codes") and never change.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>

namespace brine {

enum class StatusCode : std::uint32_t {
  ok = 0,
  cancelled = 1,            // the caller cancelled the call, or closed the client meanwhile
  unknown = 2,              // a code this build does not know, or a non-std exception
  invalid_argument = 3,     // the payload does not decode, or a frame breaks the protocol
  deadline_exceeded = 4,    // the call's timeout passed before a reply arrived
  not_found = 5,            // no such method on the server
  already_exists = 6,       // (for handlers) what the call would create exists already
  permission_denied = 7,    // (for handlers) the caller is known but may not do this
  resource_exhausted = 8,   // too large (Retry::never), or busy (Retry::later)
  failed_precondition = 9,  // the client's interface does not match the server's (a contract)
  aborted = 10,             // (for handlers) a conflict (a transaction aborted): retry the sequence
  out_of_range = 11,        // (for handlers) past the end of what exists
  unimplemented = 12,       // the codec is not served (or the method's types cannot use it)
  internal = 13,            // the handler threw; its message reaches the caller
  unavailable = 14,         // cannot connect, or the connection was lost (see Retry)
  data_loss = 15,           // (for handlers) data was lost or corrupted
  unauthenticated = 16,     // the call carries no valid credentials (brine::TokenCheck)
};

// Whether the call ran, and whether trying again can succeed: what a caller needs to retry
// safely. UNAVAILABLE and RESOURCE_EXHAUSTED each cover cases that call for opposite reactions;
// brine says which one it was (docs/wire-format.md, "Status codes").
enum class Retry : std::uint8_t {
  unknown = 0,    // brine cannot tell (a handler's own failure): the code decides
  not_sent = 1,   // the request never left this client: the call did not run; safe to retry now
  not_run = 2,    // the server refused it unrun (shutting down, its deadline passed in the queue)
  later = 3,      // the server is busy: it did not run the call; retry after a backoff
  never = 4,      // too large (or otherwise refused for what it is): the same call fails again
  maybe_ran = 5,  // the connection was lost after the request left: it may have run; retry only
                  // an idempotent call
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

  // With a retry hint (Retry).
  Status(StatusCode c, std::string msg, Retry hint)
      : code(c), message(std::move(msg)), retry(hint) {}

  StatusCode code = StatusCode::ok;
  std::string message;
  std::string type;  // the C++ type name of a remote exception, when there was one
  Retry retry = Retry::unknown;

  bool ok() const noexcept { return code == StatusCode::ok; }
  // True when the call certainly did not run: not sent, refused unrun, or refused as busy.
  bool not_run() const noexcept {
    return retry == Retry::not_sent || retry == Retry::not_run || retry == Retry::later;
  }
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
  Retry retry() const noexcept { return status_.retry; }

 private:
  Status status_;
};

// Typed remote exceptions (docs/design.md, "Typed remote exceptions"). An exception type
// registered under one name on the server and the client travels as that name: a handler that
// throws it fails its call with `code` and what(), and the client throws an E built from the
// message where it would have thrown RpcError. Unregistered types stay RpcError with the C++ type
// name in remote_type(). Register before the first call (at start-up); thread-safe.
//   brine::register_exception<bank::InsufficientFunds>("bank.InsufficientFunds");
template <class E>
void register_exception(std::string name, StatusCode code = StatusCode::internal);

// Throws the exception registered for status.type (constructed from status.message), or
// RpcError(status). Precondition: !status.ok().
[[noreturn]] void throw_status(Status status);

namespace detail {
struct ExceptionType {
  StatusCode code;
  void (*raise)(const std::string& message);
};
// Registers `name` for the type `type` (a typeid().name()); throws std::invalid_argument when
// either is registered already with another partner.
void register_exception_type(std::string name, const char* type, ExceptionType how);
// The registered name and code of the exception type `type`, if any.
const std::string* registered_exception_name(const char* type, StatusCode* code) noexcept;
}  // namespace detail

template <class E>
void register_exception(std::string name, StatusCode code) {
  static_assert(std::is_base_of_v<std::exception, E>,
                "a registered exception derives from std::exception");
  static_assert(std::is_constructible_v<E, const std::string&>,
                "a registered exception is constructible from its message (std::string)");
  detail::register_exception_type(std::move(name), typeid(E).name(),
                                  {code, [](const std::string& message) { throw E(message); }});
}

}  // namespace brine
