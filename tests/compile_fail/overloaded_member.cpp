// Must not compile, with one short error naming the overloaded name (it gave 20,208 lines).
#include <brine/brine.hpp>
#include <brine/codecs/cereal.hpp>

struct Calc {
  virtual ~Calc() = default;
  virtual int add(int a, int b) = 0;
  virtual double add(double a, double b) = 0;
};
BRINE_INTERFACE(Calc, add);

int main() {}
