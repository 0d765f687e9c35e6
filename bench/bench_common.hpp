// What the bench's client (brine_bench) and server (bench_server) processes share: the methods
// they call, in both type families, and the allocation counter both binaries carry.
#pragma once

#include <brine/brine.hpp>
#include <brine/codecs/cereal.hpp>
#include <brine/codecs/json.hpp>
#include <brine/codecs/protobuf.hpp>
#include <cstdint>
#include <string>

#include "bench.pb.h"

namespace brine_bench {

// Heap allocations (operator new, every thread) since the process started (count_alloc.cpp).
std::uint64_t allocations() noexcept;

struct Blob {
  std::string data;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(data));
  }
};
struct Pair {
  double a = 0;
  double b = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(a), CEREAL_NVP(b));
  }
};
struct Sum {
  double value = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(value));
  }
};
struct Count {
  std::uint64_t value = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(value));
  }
};

// echo: the payload back (latency, throughput, bulk). add: the small call whose allocations are
// counted (no allocation of its own in user code). allocations: the server's counter.
inline constexpr brine::Method<Blob, Blob> kEcho{"echo"};
inline constexpr brine::Method<pb::Blob, pb::Blob> kEchoPb{"echo"};
inline constexpr brine::Method<Pair, Sum> kAdd{"add"};
inline constexpr brine::Method<pb::Pair, pb::Sum> kAddPb{"add"};
inline constexpr brine::Method<Count, Count> kAllocations{"allocations"};
// items: a server stream of Pair{count, size}.a items of .b bytes each (Blob / pb::Blob).
inline constexpr std::string_view kItems = "items";
// The raw baseline of a stream: a frame whose payload is kRawStreamMagic, a u32 count and a u32
// size (big-endian) is answered with `count` frames of `size` bytes, then an empty frame.
inline constexpr std::string_view kRawStreamMagic = "STRM";

// The callback section: a call that the server answers by calling the caller back.
struct Echoer {
  virtual ~Echoer() = default;
  virtual Blob echo(const Blob& b) = 0;
};
BRINE_INTERFACE(Echoer, echo);
struct Bouncer {
  virtual ~Bouncer() = default;
  // Passes `b` to `to` (a call back to the caller, which passed `to`) and returns its answer.
  virtual Blob bounce(brine::Remote<Echoer> to, const Blob& b) = 0;
  // Returns `b`: the same object call without the call back.
  virtual Blob echo(const Blob& b) = 0;
};
BRINE_INTERFACE(Bouncer, bounce, echo);

}  // namespace brine_bench
