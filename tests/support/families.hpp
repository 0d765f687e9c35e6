// The two type families (cereal structs, protobuf messages) behind one static interface, so a
// test body is written once and run for every codec: the structs serve cereal and json, the
// messages protobuf.
#pragma once

#include <brine/brine.hpp>
#include <brine/codecs/cereal.hpp>
#include <brine/codecs/json.hpp>
#include <brine/codecs/protobuf.hpp>
#include <string>
#include <utility>

#include "calculator.hpp"
#include "test_messages.pb.h"

namespace brine_test {

struct CerealBlob {
  std::string data;
  template <class A>
  void serialize(A& ar) {
    ar(data);
  }
};

struct CerealFamily {
  static constexpr const char* codec = "cereal";
  using Add = calc::AddRequest;
  using Divide = calc::DivideRequest;
  using Wait = calc::WaitRequest;
  using Number = calc::Number;
  using Blob = CerealBlob;
  static Add add(double a, double b) { return {a, b}; }
  static double a(const Add& r) { return r.a; }
  static double b(const Add& r) { return r.b; }
  static Divide divide(double n, double d) { return {n, d}; }
  static Wait wait(std::uint32_t ms) { return {ms}; }
  static Number number(double v) { return {v}; }
  static double value(const Number& n) { return n.value; }
  static Blob blob(std::string s) { return {std::move(s)}; }
  static const std::string& data(const Blob& b) { return b.data; }
};

struct ProtobufFamily {
  static constexpr const char* codec = "protobuf";
  using Add = calc::pb::AddRequest;
  using Divide = calc::pb::DivideRequest;
  using Wait = calc::pb::WaitRequest;
  using Number = calc::pb::Number;
  using Blob = brine_test::Blob;
  static Add add(double a, double b) {
    Add r;
    r.set_a(a);
    r.set_b(b);
    return r;
  }
  static double a(const Add& r) { return r.a(); }
  static double b(const Add& r) { return r.b(); }
  static Divide divide(double n, double d) {
    Divide r;
    r.set_numerator(n);
    r.set_denominator(d);
    return r;
  }
  static Wait wait(std::uint32_t ms) {
    Wait r;
    r.set_milliseconds(ms);
    return r;
  }
  static Number number(double v) {
    Number r;
    r.set_value(v);
    return r;
  }
  static double value(const Number& n) { return n.value(); }
  static Blob blob(std::string s) {
    Blob b;
    b.set_data(std::move(s));
    return b;
  }
  static const std::string& data(const Blob& b) { return b.data(); }
};

// Raw payload bytes, sent as-is in whatever codec the client uses: for provoking decode errors.
struct Raw {
  std::string bytes;
};

// Calls f.template operator()<Family>() for the family of the codec named `codec`.
template <class F>
void with_family(const std::string& codec, F&& f) {
  if (codec == "protobuf") {
    f.template operator()<ProtobufFamily>();
  } else {
    f.template operator()<CerealFamily>();  // cereal and json
  }
}

}  // namespace brine_test

template <>
struct brine::Serialization<brine_test::Raw> {
  static bool supports(brine::CodecId) noexcept { return true; }
  static void encode(brine::CodecId, const brine_test::Raw& r, brine::Buffer& out) {
    out.append(r.bytes.data(), r.bytes.size());
  }
  static brine_test::Raw decode(brine::CodecId, std::span<const std::byte> in,
                                const brine::DecodeLimits&) {
    return {std::string(reinterpret_cast<const char*>(in.data()), in.size())};
  }
};
