// fault_peer URI CALLS: a client process for tests that kill or stop it. Connects, starts CALLS
// calls of "until_cancelled" (60 s each) that stay in flight, proves the connection works with
// one "add", prints "ready", then waits to be killed.
#include <unistd.h>

#include <brine/brine.hpp>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "calculator.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: fault_peer URI CALLS\n");
    return 2;
  }
  brine::Client client(argv[1], {.timeout = std::chrono::seconds(120)});
  const int calls = std::atoi(argv[2]);
  std::vector<std::future<calc::Number>> pending;
  for (int i = 0; i < calls; ++i) {
    pending.push_back(client.call_async<calc::Number>("until_cancelled", calc::Number{60000}));
  }
  if (client.call<calc::Number>("add", calc::AddRequest{1, 2}).value != 3) return 1;
  std::printf("ready\n");
  std::fflush(stdout);
  for (;;) ::pause();
}
