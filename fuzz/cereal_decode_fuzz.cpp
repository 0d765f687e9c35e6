// libFuzzer target: the cereal codec's decoder on hostile payloads. Whatever decodes must encode
// and decode again to the same value.
#include <brine/codecs/cereal.hpp>
#include <cstdint>
#include <cstdlib>

namespace {

struct Inner {
  std::string name;
  std::vector<std::int64_t> values;
  bool operator==(const Inner&) const = default;
  template <class A>
  void serialize(A& ar) {
    ar(name, values);
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
  std::variant<int, std::string> either;
  std::vector<std::vector<std::uint8_t>> grid;
  bool operator==(const Value& o) const {
    // NaN != NaN: compare doubles by bits.
    return i == o.i && std::memcmp(&d, &o.d, sizeof d) == 0 && flag == o.flag && text == o.text &&
           inners == o.inners && by_name == o.by_name && single == o.single && either == o.either &&
           grid == o.grid;
  }
  template <class A>
  void serialize(A& ar) {
    ar(i, d, flag, text, inners, by_name, single, either, grid);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using S = brine::Serialization<Value>;
  const std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data), size);
  Value v;
  try {
    v = S::decode(brine::CodecId::cereal, in, {});
  } catch (const brine::RpcError& e) {
    if (e.code() != brine::StatusCode::invalid_argument) __builtin_trap();
    return 0;
  }
  brine::Buffer again;
  S::encode(brine::CodecId::cereal, v, again);
  if (!(S::decode(brine::CodecId::cereal, again.bytes(), {}) == v)) __builtin_trap();
  return 0;
}
