// Must not compile, with one error naming the response type: a handler returning a type no
// included codec carries.
#include <brine/brine.hpp>
#include <brine/codecs/cereal.hpp>
#include <string>
#include <string_view>

int main() {
  brine::Server server;
  server.handle("greet", [](const std::string& name) { return std::string_view(name); });
}
