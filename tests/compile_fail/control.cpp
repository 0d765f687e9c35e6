// Must compile: the same shape without the pointer (proves the compile-fail test is not vacuous).
#include <brine/codecs/cereal.hpp>
#include <cereal/types/memory.hpp>

struct HoldsValue {
  std::vector<int> p;
  template <class A>
  void serialize(A& ar) {
    ar(p);
  }
};

int main() {
  brine::Buffer b;
  brine::Serialization<HoldsValue>::encode(brine::CodecId::cereal, HoldsValue{}, b);
}
