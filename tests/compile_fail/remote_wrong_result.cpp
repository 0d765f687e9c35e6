// Must not compile: the result is an int, not a string.
#include "remote_interface.hpp"

int main() {
  brine::Client client("tcp://127.0.0.1:1");
  auto calc = client.remote<Calculator>("calc");
  if (false) {
    std::string s = calc.add(1, 2);
    (void)s;
  }
}
