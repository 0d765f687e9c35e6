// Must compile: correct calls through a proxy (proves the two remote tests are not vacuous).
#include "remote_interface.hpp"

int main() {
  brine::Client client("tcp://127.0.0.1:1");
  auto calc = client.remote<Calculator>("calc");
  if (false) {
    int sum = calc.add(1, 2);
    std::string n = calc.name();
    (void)sum;
    (void)n;
  }
}
