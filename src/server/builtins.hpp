// brine's own methods (internal), whose names begin with '~' and which every server serves in
// json, whatever ServerOptions::codecs says (docs/wire-format.md, "Built-in methods"):
//
//   ~describe   what the server offers: methods, declarations, contracts, codecs, JSON shapes
//   ~ready      {"status":"ready"}; refused UNAVAILABLE while the server drains
//   ~metrics    the Prometheus text of Server::metrics(), as one JSON string
//   ~status     the HTML status page, as one JSON string
//
// An http:// endpoint serves them as GET /v1, /readyz, /metrics and /.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "brine/metrics.hpp"
#include "brine/server.hpp"
#include "server/registry.hpp"

namespace brine::detail {

inline constexpr std::string_view kDescribeMethod = "~describe";
inline constexpr std::string_view kReadyMethod = "~ready";
inline constexpr std::string_view kMetricsMethod = "~metrics";
inline constexpr std::string_view kStatusMethod = "~status";

// What the built-ins read of the server.
struct BuiltinSources {
  std::function<ServerMetrics()> metrics;
  std::function<std::vector<std::string>()> endpoints;
};

// Registers the built-ins on `registry` (before start; ~describe only with options.describe).
void add_builtins(Registry& registry, const ServerOptions& options, BuiltinSources sources);

// The JSON that ~describe answers (docs/wire-format.md, "Built-in methods").
std::string describe_json(const Registry& registry);
// The status page.
std::string status_html(const ServerMetrics& m, const std::vector<std::string>& endpoints);

}  // namespace brine::detail
