// Reconnection backoff: exponential, capped, jittered (internal).
//
// The wait after the n-th consecutive failure is initial * 1.6^(n-1), capped at max, then
// multiplied by a uniform factor in [0.8, 1.2]: the schedule gRPC's connection backoff uses,
// with shorter defaults. Jitter spreads the clients of a restarted server over time instead of
// letting them all reconnect in the same millisecond.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>

namespace brine::detail {

class Backoff {
 public:
  static constexpr double kMultiplier = 1.6;
  static constexpr double kJitter = 0.2;

  Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max,
          std::uint64_t seed = std::random_device{}())
      : initial_(double(initial.count())), max_(double(max.count())), rng_(seed) {}

  // The wait before the next attempt, counting one more failure.
  std::chrono::milliseconds next() {
    const double base = current_ == 0 ? initial_ : std::min(current_ * kMultiplier, max_);
    current_ = base;
    std::uniform_real_distribution<double> jitter(1 - kJitter, 1 + kJitter);
    return std::chrono::milliseconds(std::max<std::int64_t>(1, std::int64_t(base * jitter(rng_))));
  }
  // After a success: the next failure waits `initial` again.
  void reset() noexcept { current_ = 0; }

 private:
  double initial_;
  double max_;
  double current_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace brine::detail
