// Must not compile, with one error naming the parameter's position and type, on the client.
#include <brine/brine.hpp>
#include <brine/codecs/cereal.hpp>
#include <string>
#include <string_view>

struct Greeter {
  virtual ~Greeter() = default;
  virtual std::string greet(int times, std::string_view name) = 0;
};
BRINE_INTERFACE(Greeter, greet);

int main() {
  brine::Client client("tcp://127.0.0.1:1");
  if (false) (void)client.remote<Greeter>("greeter").greet(1, "x");
}
