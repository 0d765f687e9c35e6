#include "server/metrics.hpp"

#include <algorithm>
#include <cstdio>

#include "brine/version.hpp"

namespace brine {

std::uint64_t MethodMetrics::calls() const noexcept {
  std::uint64_t n = 0;
  for (auto c : by_status) n += c;
  return n;
}

double MethodMetrics::percentile(double q) const noexcept {
  const std::uint64_t total = calls();
  if (total == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  const double rank = q * double(total);
  std::uint64_t below = 0;
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    if (buckets[i] == 0 || double(below + buckets[i]) < rank) {
      below += buckets[i];
      continue;
    }
    if (i == kLatencyBuckets.size()) return kLatencyBuckets.back();  // above every bound
    const double low = i == 0 ? 0.0 : kLatencyBuckets[i - 1];
    const double high = kLatencyBuckets[i];
    return low + (high - low) * ((rank - double(below)) / double(buckets[i]));
  }
  return kLatencyBuckets.back();
}

namespace {

// A label value: backslash, double quote and line feed escaped.
std::string label(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.15g", v);
  return buf;
}

void family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void single(std::string& out, std::string_view name, std::string_view type, std::string_view help,
            std::uint64_t value) {
  family(out, name, type, help);
  out += name;
  out += ' ';
  out += std::to_string(value);
  out += '\n';
}

}  // namespace

std::string prometheus_text(const ServerMetrics& m) {
  std::string out;
  family(out, "brine_server_calls_total", "counter",
         "Calls ended, by method and status code (the status the caller got).");
  for (const auto& method : m.methods) {
    const std::string name = label(method.name);
    for (std::size_t c = 0; c < method.by_status.size(); ++c) {
      if (c != 0 && method.by_status[c] == 0) continue;
      out += "brine_server_calls_total{method=\"" + name + "\",code=\"" +
             std::string(status_name(StatusCode(c))) + "\"} " +
             std::to_string(method.by_status[c]) + "\n";
    }
  }
  family(out, "brine_server_call_duration_seconds", "histogram",
         "Time from a request's arrival to its answer, by method.");
  for (const auto& method : m.methods) {
    const std::string name = label(method.name);
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < method.buckets.size(); ++i) {
      cumulative += method.buckets[i];
      const std::string le = i < kLatencyBuckets.size() ? number(kLatencyBuckets[i]) : "+Inf";
      out += "brine_server_call_duration_seconds_bucket{method=\"" + name + "\",le=\"" + le +
             "\"} " + std::to_string(cumulative) + "\n";
    }
    out += "brine_server_call_duration_seconds_sum{method=\"" + name + "\"} " +
           number(method.seconds_total) + "\n";
    out += "brine_server_call_duration_seconds_count{method=\"" + name + "\"} " +
           std::to_string(cumulative) + "\n";
  }
  single(out, "brine_server_calls_in_flight", "gauge", "Calls admitted and not yet ended.",
         m.calls_in_flight);
  single(out, "brine_server_calls_refused_total", "counter",
         "Calls answered without running: unknown methods, limits, interceptors, draining.",
         m.calls_refused);
  single(out, "brine_server_connections_open", "gauge", "Connections open.", m.connections_open);
  single(out, "brine_server_connections_accepted_total", "counter", "Connections accepted.",
         m.connections_total);
  single(out, "brine_server_received_bytes_total", "counter",
         "Bytes of the frames (and HTTP requests) received.", m.bytes_received);
  single(out, "brine_server_sent_bytes_total", "counter",
         "Bytes of the frames (and HTTP responses) sent.", m.bytes_sent);
  single(out, "brine_server_streams_open", "gauge", "Stream calls open.", m.streams_open);
  single(out, "brine_server_streams_opened_total", "counter", "Stream calls opened.",
         m.streams_total);
  single(out, "brine_server_remote_objects", "gauge",
         "Objects kept for remote references, all connections.", m.remote_objects);
  family(out, "brine_server_uptime_seconds", "gauge", "Seconds since the server was made.");
  out += "brine_server_uptime_seconds " + number(std::chrono::duration<double>(m.uptime).count()) +
         "\n";
  family(out, "brine_build_info", "gauge", "The brine library and wire versions; always 1.");
  out += "brine_build_info{version=\"" BRINE_VERSION_STRING "\",wire=\"" +
         std::to_string(detail::kVersion) + "\"} 1\n";
  return out;
}

namespace detail {

void Metrics::build(const Registry& registry) {
  for (const MethodEntry& e : registry.methods()) {
    MethodStats& s = stats_.emplace_back(e.name);
    by_name_.emplace(e.name, &s);
    if (e.object == "@") {
      for (const auto& [h, codecs] : e.handlers) by_handler_.emplace(h, &s);
    }
  }
}

MethodStats* Metrics::find(std::string_view method, const HandlerBase* handler) noexcept {
  if (!method.empty() && method.front() == '@') {
    if (handler != nullptr) {
      if (auto it = by_handler_.find(handler); it != by_handler_.end()) return it->second;
    }
    return &unknown_;
  }
  if (auto it = by_name_.find(method); it != by_name_.end()) return it->second;
  return &unknown_;
}

void Metrics::record(MethodStats& m, const Status& outcome, std::chrono::nanoseconds took) {
  const auto code = std::min<std::size_t>(std::size_t(outcome.code), kStatusCodeCount - 1);
  m.by_status[code].fetch_add(1, std::memory_order_relaxed);
  const double seconds = std::chrono::duration<double>(took).count();
  const auto bound = std::lower_bound(kLatencyBuckets.begin(), kLatencyBuckets.end(), seconds);
  m.buckets[std::size_t(bound - kLatencyBuckets.begin())].fetch_add(1, std::memory_order_relaxed);
  m.nanos.fetch_add(std::uint64_t(std::max<std::int64_t>(took.count(), 0)),
                    std::memory_order_relaxed);
  if (!outcome.ok()) {
    std::lock_guard lk(errors_mu_);
    errors_.push_front({std::chrono::system_clock::now(), m.name, outcome});
    if (errors_.size() > kRecentErrors) errors_.pop_back();
  }
}

void Metrics::snapshot(ServerMetrics& out) const {
  const auto copy = [&](const MethodStats& s) {
    MethodMetrics m;
    m.name = s.name;
    for (std::size_t i = 0; i < m.by_status.size(); ++i) {
      m.by_status[i] = s.by_status[i].load(std::memory_order_relaxed);
    }
    for (std::size_t i = 0; i < m.buckets.size(); ++i) {
      m.buckets[i] = s.buckets[i].load(std::memory_order_relaxed);
    }
    m.seconds_total = double(s.nanos.load(std::memory_order_relaxed)) * 1e-9;
    out.methods.push_back(std::move(m));
  };
  for (const MethodStats& s : stats_) copy(s);
  copy(unknown_);
  std::sort(out.methods.begin(), out.methods.end(),
            [](const MethodMetrics& a, const MethodMetrics& b) { return a.name < b.name; });
  std::lock_guard lk(errors_mu_);
  out.recent_errors.assign(errors_.begin(), errors_.end());
}

}  // namespace detail
}  // namespace brine
