// The calculator service, twice: plain C++ structs for the cereal and json codecs, and the
// messages of proto/calculator.proto for the protobuf codec. Same method names, same behaviour,
// and the same JSON (the struct members are named like the .proto fields).
#pragma once

#include <brine/brine.hpp>
#include <brine/codecs/cereal.hpp>
#include <brine/codecs/json.hpp>
#include <brine/codecs/protobuf.hpp>
#include <cstdint>
#include <vector>

#include "calculator.pb.h"

namespace calc {

// --- cereal family --------------------------------------------------------------------------
struct AddRequest {
  double a = 0;
  double b = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(a), CEREAL_NVP(b));
  }
};

struct DivideRequest {
  double numerator = 0;
  double denominator = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(numerator), CEREAL_NVP(denominator));
  }
};

struct SumRequest {
  std::vector<double> values;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(values));
  }
};

struct WaitRequest {
  std::uint32_t milliseconds = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(milliseconds));
  }
};

struct Number {
  double value = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(value));
  }
};

// Method descriptors: client and server agree on the types at compile time.
inline constexpr brine::Method<AddRequest, Number> kAdd{"add"};
inline constexpr brine::Method<DivideRequest, Number> kDivide{"divide"};
inline constexpr brine::Method<SumRequest, Number> kSum{"sum"};
inline constexpr brine::Method<WaitRequest, Number> kWait{"wait"};
// Answers the server's process id: shows which worker behind a broker answered.
inline constexpr brine::Method<Number, Number> kPid{"pid"};
// A stream: Number{limit} in, every prime up to it out, one Number each (brine/stream.hpp).
inline constexpr std::string_view kPrimes = "primes";
// A stream both ways: Number{start} in, then every Number the client sends is answered with the
// running total so far.
inline constexpr std::string_view kAccumulate = "accumulate";

// --- protobuf family -------------------------------------------------------------------------
namespace pb {
using AddRequest = ::calculator::AddRequest;
using DivideRequest = ::calculator::DivideRequest;
using SumRequest = ::calculator::SumRequest;
using WaitRequest = ::calculator::WaitRequest;
using Number = ::calculator::Number;
inline constexpr brine::Method<AddRequest, Number> kAdd{"add"};
inline constexpr brine::Method<DivideRequest, Number> kDivide{"divide"};
inline constexpr brine::Method<SumRequest, Number> kSum{"sum"};
inline constexpr brine::Method<WaitRequest, Number> kWait{"wait"};
inline constexpr brine::Method<Number, Number> kPid{"pid"};
}  // namespace pb

// The longest wait: a longer one is refused with INTERNAL (std::invalid_argument).
inline constexpr std::uint32_t kMaxWaitMs = 60000;
// The largest limit "primes" takes.
inline constexpr double kMaxPrimesLimit = 1e8;

// Registers add, divide (throws std::domain_error on a zero denominator), sum, pid (all
// idempotent) and wait (sleeps, then answers the milliseconds waited; not idempotent; up to
// kMaxWaitMs, and it ends early once its caller stopped waiting: DEADLINE_EXCEEDED at the
// caller's deadline, CANCELLED on a cancel or when the caller's connection ends): the structs serve
// cereal and json, the protobuf messages serve protobuf.
void register_calculator(brine::Server& server);

}  // namespace calc
