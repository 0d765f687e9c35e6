// Must not compile, with one short error naming the misspelt name (it gave 64,706 lines).
#include <brine/brine.hpp>
#include <brine/codecs/cereal.hpp>
#include <memory>

struct Calc {
  virtual ~Calc() = default;
  virtual int add(int a, int b) = 0;
  virtual int negate(int a) = 0;
};
BRINE_INTERFACE(Calc, add, negat);

struct CalcImpl final : Calc {
  int add(int a, int b) override { return a + b; }
  int negate(int a) override { return -a; }
};

int main() {
  brine::Server server;
  server.expose<Calc>("calc", std::make_shared<CalcImpl>());
  brine::Client client("tcp://127.0.0.1:1");
  if (false) (void)client.remote<Calc>("calc").add(1, 2);
}
