// Must not compile, with one error naming the parameter's position and type: no codec carries
// std::string_view (it used to compile and fail every call with UNIMPLEMENTED).
#include <brine/brine.hpp>
#include <brine/codecs/cereal.hpp>
#include <memory>
#include <string>
#include <string_view>

struct Greeter {
  virtual ~Greeter() = default;
  virtual std::string greet(int times, std::string_view name) = 0;
};
BRINE_INTERFACE(Greeter, greet);

struct GreeterImpl final : Greeter {
  std::string greet(int, std::string_view name) override { return std::string(name); }
};

int main() {
  brine::Server server;
  server.expose<Greeter>("greeter", std::make_shared<GreeterImpl>());
}
