#include "server/builtins.hpp"

#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <memory>

#include "brine/version.hpp"
#include "wire/contract.hpp"
#include "wire/json_string.hpp"

namespace brine::detail {
namespace {

using wire::append_json_string;

// A built-in: ignores its request, answers the JSON text `answer` makes.
class Builtin final : public HandlerBase {
 public:
  explicit Builtin(std::function<std::string()> answer) : answer_(std::move(answer)) {}
  void invoke(void*, CodecId, std::span<const std::byte>, const DecodeLimits&, Buffer& out,
              CallContext&) override {
    const std::string text = answer_();
    out.append(text.data(), text.size());
  }
  bool supports(CodecId codec) const noexcept override { return codec == CodecId::json; }
  const Contract& contract() const noexcept override {
    static constexpr Contract kNone{};
    return kNone;
  }

 private:
  std::function<std::string()> answer_;
};

void append_html(std::string& out, std::string_view s) {
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
}

std::string duration_text(double seconds) {
  char buf[32];
  if (seconds <= 0) return "-";
  if (seconds < 1e-3) {
    std::snprintf(buf, sizeof buf, "%.0f µs", seconds * 1e6);
  } else if (seconds < 1) {
    std::snprintf(buf, sizeof buf, "%.2f ms", seconds * 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%.2f s", seconds);
  }
  return buf;
}

std::string uptime_text(std::chrono::steady_clock::duration d) {
  const long long s = std::chrono::duration_cast<std::chrono::seconds>(d).count();
  char buf[64];
  std::snprintf(buf, sizeof buf, "%lldd %02lld:%02lld:%02lld", s / 86400, s / 3600 % 24,
                s / 60 % 60, s % 60);
  return buf;
}

void json_codecs(std::string& out, CodecSet set) {
  out += '[';
  bool first = true;
  for (CodecId c : known_codecs()) {
    if ((set & codec_bit(c)) == 0) continue;
    if (!first) out += ',';
    first = false;
    append_json_string(out, codec_name(c));
  }
  out += ']';
}

std::string_view shape_name(const HandlerBase& h) {
  switch (h.shape()) {
    case Shape::unary:
      return "unary";
    case Shape::deferred:
      return "deferred";
    case Shape::stream:
      break;
  }
  const wire::StreamEnds ends = wire::stream_ends(h.contract().text);
  return ends.in && ends.out ? "bidi-stream" : ends.in ? "client-stream" : "server-stream";
}

}  // namespace

std::string describe_json(const Registry& registry) {
  std::string out = "{\"brine\":\"" BRINE_VERSION_STRING "\",\"wire\":";
  out += std::to_string(kVersion);
  out += ",\"codecs\":";
  json_codecs(out, registry.served());
  out += ",\"methods\":[";
  bool first = true;
  for (const MethodEntry& e : registry.methods()) {
    if (Registry::is_builtin(e.name)) continue;
    for (const auto& [h, codecs] : e.handlers) {
      if (!first) out += ',';
      first = false;
      const JsonShapes j = h->json_shapes();
      char fp[24];
      std::snprintf(fp, sizeof fp, "%016" PRIx64, h->contract().fingerprint);
      out += "{\"name\":";
      append_json_string(out, e.name);
      out += ",\"object\":";
      append_json_string(out, e.object);
      out += ",\"interface\":";
      append_json_string(out, e.interface);
      out += ",\"method\":";
      append_json_string(out, e.member);
      out += ",\"declaration\":";
      append_json_string(out, wire::display_signature(e.member, h->contract().text));
      out += ",\"contract\":";
      append_json_string(out, h->contract().text);
      out += ",\"fingerprint\":\"";
      out += fp;
      out += "\",\"shape\":";
      append_json_string(out, shape_name(*h));
      out += ",\"codecs\":";
      json_codecs(out, codecs);
      out += ",\"idempotent\":";
      out += registry.idempotent(e.name) ? "true" : "false";
      out += ",\"json\":{";
      bool any = false;
      for (const auto& [key, text] :
           {std::pair<std::string_view, const std::string*>{"request", &j.request},
            {"response", &j.response},
            {"in", &j.in},
            {"out", &j.out}}) {
        if (text->empty()) continue;
        if (any) out += ',';
        any = true;
        append_json_string(out, key);
        out += ':';
        out += *text;
      }
      out += "}}";
    }
  }
  out += "]}";
  return out;
}

std::string status_html(const ServerMetrics& m, const std::vector<std::string>& endpoints) {
  std::string h =
      "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta http-equiv=\"refresh\" content=\"5\"><title>brine server</title><style>"
      "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
      "table{border-collapse:collapse;margin:1em 0}"
      "td,th{border-bottom:1px solid #ddd;padding:.3em .8em;text-align:right}"
      "td:first-child,th:first-child{text-align:left;font-family:monospace}"
      ".bad{color:#b00}</style></head><body>\n<h1>brine server</h1>\n<p id=\"summary\">Up ";
  h += uptime_text(m.uptime);
  h += " &middot; brine " BRINE_VERSION_STRING " &middot; ";
  h += std::to_string(m.connections_open) + " connections open (" +
       std::to_string(m.connections_total) + " accepted) &middot; " +
       std::to_string(m.calls_in_flight) + " calls in flight &middot; " +
       std::to_string(m.calls_refused) + " refused &middot; " + std::to_string(m.streams_open) +
       " streams open &middot; " + std::to_string(m.bytes_received) + " bytes in, " +
       std::to_string(m.bytes_sent) + " bytes out</p>\n";
  h += "<h2>Methods</h2>\n<table id=\"methods\"><thead><tr><th>Method</th><th>Calls</th>"
       "<th>Errors</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th></tr></thead><tbody>\n";
  for (const auto& method : m.methods) {
    if (Registry::is_builtin(method.name) && method.calls() == 0) continue;
    h += "<tr><td>";
    append_html(h, method.name);
    h += "</td><td>" + std::to_string(method.calls()) + "</td><td" +
         (method.failures() > 0 ? " class=\"bad\"" : "") + ">" + std::to_string(method.failures()) +
         "</td>";
    for (double q : {0.5, 0.9, 0.99, 0.999}) {
      h += "<td>" + duration_text(method.percentile(q)) + "</td>";
    }
    h += "</tr>\n";
  }
  h += "</tbody></table>\n<h2>Endpoints</h2>\n<ul id=\"endpoints\">";
  for (const auto& e : endpoints) {
    h += "<li>";
    append_html(h, e);
    h += "</li>";
  }
  h += "</ul>\n<h2>Recent errors</h2>\n<table id=\"errors\"><thead><tr><th>When (UTC)</th>"
       "<th>Method</th><th>Status</th><th>Message</th></tr></thead><tbody>\n";
  for (const auto& e : m.recent_errors) {
    const std::time_t t = std::chrono::system_clock::to_time_t(e.when);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char when[32];
    std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    h += "<tr><td>";
    h += when;
    h += "</td><td>";
    append_html(h, e.method);
    h += "</td><td>";
    append_html(h, status_name(e.status.code));
    h += "</td><td style=\"text-align:left\">";
    append_html(h, e.status.message.substr(0, 300));
    h += "</td></tr>\n";
  }
  h += "</tbody></table>\n<p>Refreshes every 5 s. <a href=\"/metrics\">/metrics</a> &middot; "
       "<a href=\"/v1\">/v1</a> (describe)</p>\n</body></html>\n";
  return h;
}

void add_builtins(Registry& registry, const ServerOptions& options, BuiltinSources sources) {
  const auto add = [&](std::string_view name, std::function<std::string()> answer) {
    registry.add_handler(name, std::make_shared<Builtin>(std::move(answer)),
                         {.idempotent = false, .codecs = {CodecId::json}});
  };
  if (options.describe) {
    auto text = std::make_shared<const std::string>(describe_json(registry));
    add(kDescribeMethod, [text] { return *text; });
  }
  add(kReadyMethod, [] { return std::string("{\"status\":\"ready\"}"); });
  add(kMetricsMethod, [metrics = sources.metrics] {
    std::string out;
    append_json_string(out, prometheus_text(metrics()));
    return out;
  });
  add(kStatusMethod, [sources] {
    std::string out;
    append_json_string(out, status_html(sources.metrics(), sources.endpoints()));
    return out;
  });
}

}  // namespace brine::detail
