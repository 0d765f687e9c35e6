// What a running server has done: calls by method and status, their latencies, connections,
// bytes, streams (Server::metrics(); docs/design.md, "Metrics").
//
//   brine::ServerMetrics m = server.metrics();
//   for (const auto& method : m.methods) {
//     std::printf("%s: %llu calls, p99 %.1f us\n", method.name.c_str(),
//                 (unsigned long long)method.calls(), method.percentile(0.99) * 1e6);
//   }
//   std::string page = brine::prometheus_text(m);   // what GET /metrics serves
//
// Collected by every server unless ServerOptions::metrics is false: a few relaxed atomic
// additions and two clock reads per call.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "brine/status.hpp"

namespace brine {

// The number of status codes (OK to UNAUTHENTICATED).
inline constexpr std::size_t kStatusCodeCount = 17;

// The upper bounds of the latency histogram's buckets, in seconds (Prometheus's `le`); a last
// bucket, +Inf, takes the rest.
inline constexpr std::array<double, 20> kLatencyBuckets = {
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025,   0.05,     0.1,     0.25,   0.5,     1.0,    2.5,   5.0,    10.0,  30.0};

// One method's figures. A call is counted once, when it ends (its reply or error is sent, or it
// is dropped unrun), under the status its caller gets; its latency runs from the moment its
// request was read to that end.
struct MethodMetrics {
  // "add" (a handler), "calc.add" (a method of the exposed object "calc"), "@Account.deposit"
  // (every object of interface Account that factories made), "~unknown" (calls of methods this
  // server does not have: their names are the caller's, so they are not kept).
  std::string name;
  std::array<std::uint64_t, kStatusCodeCount> by_status{};
  // Calls per latency bucket (not cumulative): buckets[i] ended within kLatencyBuckets[i] and
  // above the bound before; the last element counts those above every bound.
  std::array<std::uint64_t, kLatencyBuckets.size() + 1> buckets{};
  double seconds_total = 0;  // the latencies' sum

  std::uint64_t calls() const noexcept;
  std::uint64_t failures() const noexcept { return calls() - by_status[0]; }
  // The latency below which a share `q` (0 to 1) of the calls ended, interpolated within its
  // bucket (as Prometheus's histogram_quantile does); 0 when there were no calls.
  double percentile(double q) const noexcept;
};

// A recent failed call, for the status page.
struct RecentError {
  std::chrono::system_clock::time_point when;
  std::string method;  // as MethodMetrics::name
  Status status;
};

struct ServerMetrics {
  std::chrono::steady_clock::duration uptime{};  // since the server was constructed
  std::vector<MethodMetrics> methods;            // by name
  std::uint64_t calls_in_flight = 0;             // admitted, not yet ended
  std::uint64_t calls_refused = 0;  // answered unrun: no such method, limits, interceptors...
  std::uint64_t connections_open = 0;
  std::uint64_t connections_total = 0;  // accepted since the start
  std::uint64_t bytes_received = 0;     // frames read (HTTP: requests), all connections
  std::uint64_t bytes_sent = 0;         // frames written (HTTP: responses)
  std::uint64_t streams_open = 0;
  std::uint64_t streams_total = 0;
  std::uint64_t remote_objects = 0;
  std::vector<RecentError> recent_errors;  // the last 32, newest first
};

// The Prometheus text exposition format (version 0.0.4) of `m`: brine_server_calls_total by
// method and code, brine_server_call_duration_seconds (a histogram by method), and gauges and
// counters for the rest. docs/design.md, "Metrics", lists every family.
std::string prometheus_text(const ServerMetrics& m);

}  // namespace brine
