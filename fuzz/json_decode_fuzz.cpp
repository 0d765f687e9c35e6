// libFuzzer target: the json codec's decoders on hostile text, for cereal types, argument lists
// and protobuf messages. Whatever decodes must encode and decode again to the same value.
#include <brine/codecs/json.hpp>
#include <brine/codecs/protobuf.hpp>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "test_messages.pb.h"

// A named namespace, not an anonymous one: clang 14 refuses the field-counting conversion of
// brine/fingerprint.hpp (declared, never defined) for a type with internal linkage.
namespace json_fuzz {

struct Inner {
  std::string name;
  std::vector<std::int64_t> values;
  bool operator==(const Inner&) const = default;
  template <class A>
  void serialize(A& ar) {
    ar(CEREAL_NVP(name), CEREAL_NVP(values));
  }
};

struct Value {
  std::int32_t i = 0;
  double d = 0;
  bool flag = false;
  std::string text;
  std::vector<Inner> inners;
  std::map<std::string, Inner> by_name;
  std::optional<Inner> single;
  bool operator==(const Value& o) const {
    return i == o.i && std::memcmp(&d, &o.d, sizeof d) == 0 && flag == o.flag && text == o.text &&
           inners == o.inners && by_name == o.by_name && single == o.single;
  }
  template <class A>
  void serialize(A& ar) {
    ar(CEREAL_NVP(i), CEREAL_NVP(d), CEREAL_NVP(flag), CEREAL_NVP(text), CEREAL_NVP(inners),
       CEREAL_NVP(by_name), CEREAL_NVP(single));
  }
};

template <class T, class Equal>
void round_trip(std::span<const std::byte> in, Equal equal) {
  using S = brine::Serialization<T>;
  T v{};
  try {
    v = S::decode(brine::CodecId::json, in, {});
  } catch (const brine::RpcError& e) {
    if (e.code() != brine::StatusCode::invalid_argument) __builtin_trap();
    return;
  }
  brine::Buffer again;
  S::encode(brine::CodecId::json, v, again);
  if (!equal(S::decode(brine::CodecId::json, again.bytes(), {}), v)) __builtin_trap();
}

}  // namespace json_fuzz

using namespace json_fuzz;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data), size);
  round_trip<Value>(in, [](const Value& a, const Value& b) { return a == b; });
  using Args = brine::detail::ArgPack<int, std::string, Inner>;
  round_trip<Args>(in, [](const Args& a, const Args& b) { return a.values == b.values; });
  round_trip<brine_test::Everything>(in, [](const auto& a, const auto& b) {
    return a.SerializeAsString() == b.SerializeAsString();
  });
  return 0;
}
