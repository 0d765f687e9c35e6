// Result<T>: a value or a Status, for code that handles failure as data (no exceptions).
#pragma once

#include <utility>
#include <variant>

#include "brine/status.hpp"

namespace brine {

template <class T>
class Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::in_place_index<1>, std::move(status)) {}  // NOLINT

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  // Precondition: ok(). Use value_or_throw() when unsure.
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  // The failure; a Status with code OK when the result holds a value.
  Status status() const { return ok() ? Status{} : std::get<1>(v_); }
  StatusCode code() const noexcept { return ok() ? StatusCode::ok : std::get<1>(v_).code; }

  // The value, or throws RpcError with the status.
  T value_or_throw() && {
    if (!ok()) throw_status(std::get<1>(std::move(v_)));
    return std::get<0>(std::move(v_));
  }

 private:
  std::variant<T, Status> v_;
};

// The outcome of a call without a value: OK or the failure.
template <>
class Result<void> {
 public:
  Result() = default;
  Result(Status status) : status_(std::move(status)) {}  // NOLINT: implicit by design

  bool ok() const noexcept { return status_.ok(); }
  explicit operator bool() const noexcept { return ok(); }
  Status status() const { return status_; }
  StatusCode code() const noexcept { return status_.code; }
  void value_or_throw() && {
    if (!ok()) throw_status(std::move(status_));
  }

 private:
  Status status_;
};

}  // namespace brine
