// Bounded waiting for a condition another thread or process brings about.
#pragma once

#include <chrono>
#include <thread>

namespace brine_test {

// Polls `pred` every 2 ms until it holds or `limit` passes; returns whether it held. For state
// that has no event to wait on (a server's counters, a process's file descriptors).
template <class P>
bool eventually(P pred, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

}  // namespace brine_test
