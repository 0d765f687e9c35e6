// Must not compile: a string where the interface takes an int.
#include "remote_interface.hpp"

int main() {
  brine::Client client("tcp://127.0.0.1:1");
  auto calc = client.remote<Calculator>("calc");
  if (false) (void)calc.add("two", 2);
}
