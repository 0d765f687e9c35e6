// Must NOT compile: a pointer inside a carried type is refused by the cereal codec.
#include <brine/codecs/cereal.hpp>
#include <cereal/types/memory.hpp>

struct HoldsPointer {
  std::vector<std::shared_ptr<int>> p;
  template <class A>
  void serialize(A& ar) {
    ar(p);
  }
};

int main() {
  brine::Buffer b;
  brine::Serialization<HoldsPointer>::encode(brine::CodecId::cereal, HoldsPointer{}, b);
}
