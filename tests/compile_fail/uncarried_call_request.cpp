// Must not compile, with one error naming the request type: a typed call whose request no
// included codec carries (std::string_view has no serialize and owns nothing).
#include <brine/brine.hpp>
#include <brine/codecs/cereal.hpp>
#include <string_view>

int main() {
  brine::Client client("tcp://127.0.0.1:1");
  (void)client.try_call<int>("greet", std::string_view("ann"));
}
