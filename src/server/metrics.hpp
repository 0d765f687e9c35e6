// The server's metrics (internal): counted as calls end, read by Server::metrics(), GET /metrics
// and the status page. docs/design.md, "Metrics".
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "brine/metrics.hpp"
#include "server/registry.hpp"
#include "wire/names.hpp"

namespace brine::detail {

// One method's counters, written by the threads that end its calls.
struct MethodStats {
  explicit MethodStats(std::string n) : name(std::move(n)) {}
  const std::string name;
  std::array<std::atomic<std::uint64_t>, kStatusCodeCount> by_status{};
  std::array<std::atomic<std::uint64_t>, kLatencyBuckets.size() + 1> buckets{};
  std::atomic<std::uint64_t> nanos{0};
};

class Metrics {
 public:
  explicit Metrics(bool enabled) : enabled_(enabled) {}
  bool enabled() const noexcept { return enabled_; }

  // Makes the counters of every method of `registry` (at start, before any call).
  void build(const Registry& registry);
  // The counters of the method a frame names: by name ("add", "calc.add"), or for an object a
  // factory made ("@17.deposit") by its handler; the "~unknown" counters when neither is known.
  MethodStats* find(std::string_view method, const HandlerBase* handler) noexcept;
  // A call of `m` ended with `outcome` after `took`.
  void record(MethodStats& m, const Status& outcome, std::chrono::nanoseconds took);

  // Fills the per-method part and the recent errors into `out`.
  void snapshot(ServerMetrics& out) const;

 private:
  const bool enabled_;
  std::deque<MethodStats> stats_;  // (stable addresses)
  std::unordered_map<std::string, MethodStats*, NameHash, std::equal_to<>> by_name_;
  std::unordered_map<const HandlerBase*, MethodStats*> by_handler_;
  MethodStats unknown_{"~unknown"};

  static constexpr std::size_t kRecentErrors = 32;
  mutable std::mutex errors_mu_;
  std::deque<RecentError> errors_;  // newest first
};

}  // namespace brine::detail
