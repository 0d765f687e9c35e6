// Configuration from TOML (toml++) and BRINE_* environment variables.
//
// Every key is read into one flat map of "path -> value and where it came from" (the file first,
// then the environment replacing single paths); the options are then filled from the map, the
// section's own key before the shared top-level one. So every message can name its origin.
#include "brine/config.hpp"
#include "wire/compression.hpp"

#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>

#include "transport/registry.hpp"
#include "wire/compression.hpp"

namespace brine {
namespace {

enum class Kind { string, strings, integer, boolean };

struct Key {
  std::string_view path;
  Kind kind;
  std::int64_t min = 0;
  std::int64_t max = 0;
};

// Keys allowed at the top level and, as overrides, in [server] and [client].
constexpr Key kShared[] = {
    {"codec", Kind::string},
    {"max_frame_size", Kind::integer, 1024, 0x7FFFFFFFll},
    {"max_depth", Kind::integer, 1, 10000},
    {"max_decoded_bytes", Kind::integer, 1024, 1ll << 40},
    {"heartbeat_interval_ms", Kind::integer, 1, 3600000},
    {"heartbeat_timeout_ms", Kind::integer, 1, 3600000},
    {"busy_poll_us", Kind::integer, 0, 1000000},
    {"json_strict", Kind::boolean},
    {"max_metadata_entries", Kind::integer, 0, 1 << 20},
    {"max_metadata_bytes", Kind::integer, 0, 1 << 30},
    {"log_calls", Kind::boolean},
    {"compression", Kind::strings},
    {"compression_threshold", Kind::integer, 0, 0x7FFFFFFFll},
    {"compression_level", Kind::integer, 0, 19},
};
constexpr Key kServer[] = {
    {"listen", Kind::strings},
    {"broker", Kind::strings},
    {"codecs", Kind::strings},
    {"workers", Kind::integer, 0, 1024},
    {"io_threads", Kind::integer, 1, 64},
    {"unix_mode", Kind::integer, 0, 0777},
    {"max_inflight_per_connection", Kind::integer, 1, 1 << 30},
    {"max_queued_calls", Kind::integer, 1, 1 << 30},
    {"max_connections", Kind::integer, 1, 1 << 30},
    {"max_objects_per_connection", Kind::integer, 1, 1 << 30},
    {"first_frame_timeout_ms", Kind::integer, 1, 86400000},
    {"frame_timeout_ms", Kind::integer, 1, 86400000},
    {"idle_timeout_ms", Kind::integer, 1, 86400000},
    {"max_outbound_bytes", Kind::integer, 1024, 1ll << 40},
    {"drain_timeout_ms", Kind::integer, 0, 86400000},
    {"call_memory_ms", Kind::integer, 1, 86400000},
    {"stream_window", Kind::integer, 65536, 1 << 30},
    {"tls_certificate", Kind::string},
    {"tls_private_key", Kind::string},
    {"tls_client_ca", Kind::string},
    {"tokens", Kind::strings},
    {"open_methods", Kind::strings},
    {"callback_timeout_ms", Kind::integer, 1, 86400000},
    {"metrics", Kind::boolean},
    {"describe", Kind::boolean},
    {"inline_fast_handlers", Kind::boolean},
};
constexpr Key kClient[] = {
    {"connect", Kind::string},
    {"codecs", Kind::strings},
    {"timeout_ms", Kind::integer, 1, 86400000},
    {"reconnect_backoff_initial_ms", Kind::integer, 1, 3600000},
    {"reconnect_backoff_max_ms", Kind::integer, 1, 3600000},
    {"retransmit_interval_ms", Kind::integer, 1, 60000},
    {"stream_window", Kind::integer, 65536, 1 << 30},
    {"tls_ca", Kind::string},
    {"tls_certificate", Kind::string},
    {"tls_private_key", Kind::string},
    {"tls_server_name", Kind::string},
    {"token", Kind::string},
    {"callback_workers", Kind::integer, 1, 256},
};

std::string kind_name(Kind k) {
  switch (k) {
    case Kind::string:
      return "a string";
    case Kind::strings:
      return "a string or an array of strings";
    case Kind::integer:
      return "an integer";
    case Kind::boolean:
      return "true or false";
  }
  return "?";
}

std::string node_type(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::table:
      return "a table";
    default:
      return "a date or time";
  }
}

// Edit distance with transpositions (optimal string alignment), for "did you mean": a swapped
// pair of letters, the commonest typo ("wrokers"), costs one edit.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

// The closest candidate within about a third of the name's length, for " (did you mean X?)".
std::optional<std::string> closest(std::string_view name,
                                   const std::vector<std::string>& candidates) {
  const std::string* best = nullptr;
  std::size_t best_distance = std::max<std::size_t>(2, name.size() / 3) + 1;
  for (const std::string& c : candidates) {
    const std::size_t d = edit_distance(name, c);
    if (d < best_distance) {
      best_distance = d;
      best = &c;
    }
  }
  if (best == nullptr) return std::nullopt;
  return *best;
}

// BRINE_ variables that are not configuration: the build scripts' (tools/quickstart.sh) and
// the readiness pipe brine::testing passes to a server it starts (docs/design.md, "The test kit").
constexpr std::string_view kToolVariables[] = {"BRINE_BUILD_DIR", "BRINE_READY_FD"};

std::string variable_of(const std::string& path) {
  std::string var = "BRINE_";
  for (char c : path) var += c == '.' ? '_' : char(std::toupper(static_cast<unsigned char>(c)));
  return var;
}

// Every key path a file or the environment may set: "codec", "server.codec", "server.workers"...
std::vector<std::string> all_paths() {
  std::vector<std::string> out;
  for (const Key& k : kShared) out.emplace_back(k.path);
  for (const char* section : {"server", "client"}) {
    for (const Key& k : kShared) out.push_back(std::string(section) + "." + std::string(k.path));
  }
  for (const Key& k : kServer) out.push_back("server." + std::string(k.path));
  for (const Key& k : kClient) out.push_back("client." + std::string(k.path));
  return out;
}

std::string where(const toml::source_region& src, std::string_view origin) {
  return std::string(origin) + ":" + std::to_string(src.begin.line);
}

// One value and where it came from ("brine.toml:7", "environment BRINE_CODEC").
struct Entry {
  toml::table holder;  // holds the value under the key "v"
  std::string origin;
  const toml::node& value() const { return *holder.get("v"); }
};

class ConfigReader {
 public:
  void read_table(const toml::table& root, std::string_view origin) {
    for (const auto& [key, node] : root) {
      const std::string name(key.str());
      if ((name == "server" || name == "client") && node.is_table()) {
        const auto& section =
            name == "server" ? std::span<const Key>(kServer) : std::span<const Key>(kClient);
        for (const auto& [sub, value] : *node.as_table()) {
          const std::string path = name + "." + std::string(sub.str());
          const Key* k = find(std::string(sub.str()), section, true);
          if (k == nullptr) throw unknown(path, where(value.source(), origin), section);
          put(path, value, where(value.source(), origin));
        }
        continue;
      }
      if (name == "server" || name == "client") {
        throw ConfigError(where(node.source(), origin) + ": key '" + name +
                          "': expected a table ([" + name + "]), got " + node_type(node));
      }
      if (find(name, {}, false) == nullptr) {
        throw unknown(name, where(node.source(), origin), {});
      }
      put(name, node, where(node.source(), origin));
    }
  }

  void read_environment() {
    std::vector<std::string> variables;
    for (const std::string& path : all_paths()) {
      variables.push_back(variable_of(path));
      const char* text = std::getenv(variables.back().c_str());
      if (text == nullptr) continue;
      // A TOML value if it is one ("8", "[\"a\", \"b\"]", "\"x\""), else the text as a string.
      toml::table parsed;
      try {
        parsed = toml::parse("v = " + std::string(text));
      } catch (const toml::parse_error&) {
        parsed.insert_or_assign("v", std::string(text));
      }
      put(path, *parsed.get("v"), "environment variable " + variables.back());
    }
    refuse_unknown_variables(variables);
  }

  Config build() const {
    Config c;
    build_server(c.server);
    build_client(c.client);
    check_order("server", "heartbeat_interval_ms", c.server.options.heartbeat_interval,
                "heartbeat_timeout_ms", c.server.options.heartbeat_timeout, true);
    check_order("client", "heartbeat_interval_ms", c.client.options.heartbeat_interval,
                "heartbeat_timeout_ms", c.client.options.heartbeat_timeout, true);
    check_order("client", "reconnect_backoff_initial_ms",
                c.client.options.reconnect_backoff_initial, "reconnect_backoff_max_ms",
                c.client.options.reconnect_backoff_max, false);
    return c;
  }

  // Refuses `high` below (or, when `strictly`, equal to) `low`, naming where each was set.
  void check_order(const std::string& side, const std::string& low_key,
                   std::chrono::milliseconds low, const std::string& high_key,
                   std::chrono::milliseconds high, bool strictly) const {
    if (high > low || (!strictly && high == low)) return;
    auto origin = [&](const std::string& key) -> std::string {
      const Entry* e = lookup(side + "." + key, key);
      return e != nullptr ? e->origin : "the default";
    };
    throw ConfigError(
        origin(high_key) + ": key '" + high_key + "': " + std::to_string(high.count()) +
        " must be " + (strictly ? "longer than " : "at least ") + low_key + " (" +
        std::to_string(low.count()) + ", from " + origin(low_key) + ") for the " + side);
  }

 private:
  void build_server(ServerConfig& c) const {
    ServerOptions& o = c.options;
    fill_side("server", o.max_frame_size, o.decode_limits, o.heartbeat_interval,
              o.heartbeat_timeout, o.metadata_limits, o.log_calls);
    fill_compression("server", o.compression);
    if (auto tokens = strings("server.tokens")) {
      for (const auto& t : *tokens) {
        if (t.empty())
          throw ConfigError(lookup("server.tokens")->origin + ": key 'tokens': an empty token");
      }
      o.tokens = *tokens;
    }
    if (auto open = strings("server.open_methods")) o.open_methods = *open;
    if (auto n = integer("server.busy_poll_us", "busy_poll_us")) {
      o.busy_poll = std::chrono::microseconds(*n);
    }
    // A preference is a client's: a server serves every codec its types allow, or those of
    // [server] codecs. (The top-level `codec` is the clients'.)
    if (const Entry* e = lookup("server.codec")) {
      throw ConfigError(e->origin +
                        ": key 'codec' in [server]: a server serves a list of codecs: "
                        "codecs = [\"" +
                        (e->value().is_string() ? *e->value().value<std::string>() : "...") +
                        "\"] (a top-level codec is the clients' preference)");
    }
    if (auto codecs = strings("server.codecs")) o.codecs = *codecs;
    count("server.workers", o.workers);
    count("server.io_threads", o.io_threads);
    if (auto n = integer("server.unix_mode")) o.unix_socket_mode = unsigned(*n);
    count("server.max_inflight_per_connection", o.max_inflight_per_connection);
    count("server.max_queued_calls", o.max_queued_calls);
    count("server.max_connections", o.max_connections);
    count("server.max_objects_per_connection", o.max_objects_per_connection);
    count("server.max_outbound_bytes", o.max_outbound_bytes);
    millis("server.first_frame_timeout_ms", o.first_frame_timeout);
    millis("server.frame_timeout_ms", o.frame_timeout);
    millis("server.idle_timeout_ms", o.idle_timeout);
    millis("server.drain_timeout_ms", o.drain_timeout);
    millis("server.call_memory_ms", o.call_memory);
    millis("server.callback_timeout_ms", o.callback_timeout);
    if (const Entry* e = lookup("server.metrics")) o.metrics = e->value().as_boolean()->get();
    if (const Entry* e = lookup("server.describe")) o.describe = e->value().as_boolean()->get();
    if (const Entry* e = lookup("server.inline_fast_handlers")) {
      o.inline_fast_handlers = e->value().as_boolean()->get();
    }
    count("server.stream_window", o.stream_window);
    text("server.tls_certificate", o.tls.certificate_file);
    text("server.tls_private_key", o.tls.private_key_file);
    text("server.tls_client_ca", o.tls.client_ca_file);
    if (auto uris = strings("server.listen")) c.listen = *uris;
    if (auto uris = strings("server.broker")) c.brokers = *uris;
    check_uris("server.listen", c.listen, false);
    check_uris("server.broker", c.brokers, true);
  }

  void build_client(ClientConfig& c) const {
    ClientOptions& o = c.options;
    fill_side("client", o.max_frame_size, o.decode_limits, o.heartbeat_interval,
              o.heartbeat_timeout, o.metadata_limits, o.log_calls);
    fill_compression("client", o.compression);
    if (auto token = string("client.token")) o.token = *token;
    if (auto n = integer("client.busy_poll_us", "busy_poll_us")) {
      o.busy_poll = std::chrono::microseconds(*n);
    }
    if (auto codec = string("client.codec", "codec")) o.codec = *codec;
    if (auto codecs = strings("client.codecs")) o.codecs = *codecs;
    millis("client.reconnect_backoff_initial_ms", o.reconnect_backoff_initial);
    millis("client.reconnect_backoff_max_ms", o.reconnect_backoff_max);
    millis("client.timeout_ms", o.timeout);
    millis("client.retransmit_interval_ms", o.retransmit_interval);
    count("client.stream_window", o.stream_window);
    count("client.callback_workers", o.callback_workers);
    text("client.tls_ca", o.tls.ca_file);
    text("client.tls_certificate", o.tls.certificate_file);
    text("client.tls_private_key", o.tls.private_key_file);
    text("client.tls_server_name", o.tls.server_name);
    if (auto uri = string("client.connect")) c.connect = *uri;
    if (!c.connect.empty()) check_uris("client.connect", {c.connect}, false);
  }

  void count(const char* path, std::size_t& out) const {
    if (auto n = integer(path)) out = std::size_t(*n);
  }
  void millis(const char* path, std::chrono::milliseconds& out) const {
    if (auto n = integer(path)) out = std::chrono::milliseconds(*n);
  }
  void text(const char* path, std::string& out) const {
    if (auto v = string(path)) out = *v;
  }

  static const Key* find(const std::string& name, std::span<const Key> section, bool in_section) {
    for (const Key& k : kShared) {
      if (k.path == name) return &k;
    }
    if (!in_section) return nullptr;
    for (const Key& k : section) {
      if (k.path == name) return &k;
    }
    return nullptr;
  }

  static ConfigError unknown(const std::string& path, const std::string& at,
                             std::span<const Key> section) {
    std::vector<std::string> names;
    for (const Key& k : kShared) names.emplace_back(k.path);
    for (const Key& k : section) names.emplace_back(k.path);
    std::string known;
    for (const std::string& n : names) known += (known.empty() ? "" : ", ") + n;
    if (section.empty()) known += ", [server], [client]";
    const auto dot = path.rfind('.');
    std::string hint;
    if (auto best = closest(dot == std::string::npos ? path : path.substr(dot + 1), names)) {
      hint = " (did you mean '" + *best + "'?)";
    }
    return ConfigError(at + ": unknown key '" + path + "'" + hint + "; known here: " + known);
  }

  // A BRINE_ variable that names no key is a typo (BRINE_SERVER_WROKERS), refused like an unknown
  // key in a file.
  static void refuse_unknown_variables(const std::vector<std::string>& known) {
    for (char** env = environ; *env != nullptr; ++env) {
      const std::string_view entry(*env);
      if (!entry.starts_with("BRINE_")) continue;
      const std::string name(entry.substr(0, entry.find('=')));
      if (std::find(known.begin(), known.end(), name) != known.end()) continue;
      if (std::find(std::begin(kToolVariables), std::end(kToolVariables), name) !=
          std::end(kToolVariables)) {
        continue;
      }
      std::string hint;
      if (auto best = closest(name, known)) hint = " (did you mean " + *best + "?)";
      throw ConfigError("environment variable " + name + ": names no configuration key" + hint);
    }
  }

  void put(const std::string& path, const toml::node& node, std::string origin) {
    Entry e;
    node.visit([&](const auto& n) { e.holder.insert_or_assign("v", n); });
    e.origin = std::move(origin);
    check_kind(path, e);
    entries_.insert_or_assign(path, std::move(e));
  }

  static const Key& key_of(const std::string& path) {
    const auto dot = path.find('.');
    const std::string name = dot == std::string::npos ? path : path.substr(dot + 1);
    const std::string section = dot == std::string::npos ? "" : path.substr(0, dot);
    const Key* k = find(
        name, section == "server" ? std::span<const Key>(kServer) : std::span<const Key>(kClient),
        !section.empty());
    return *k;  // read_table and read_environment only put known paths
  }

  // The value's type and range, at the moment it is read, so the message names its origin.
  static void check_kind(const std::string& path, const Entry& e) {
    const Key& k = key_of(path);
    const toml::node& v = e.value();
    auto bad = [&](const std::string& why) {
      return ConfigError(e.origin + ": key '" + path + "': " + why);
    };
    switch (k.kind) {
      case Kind::string:
        if (!v.is_string()) throw bad("expected a string, got " + node_type(v));
        break;
      case Kind::strings:
        if (v.is_string()) break;
        // An empty list only where it means something (no compression), not where it would
        // silently turn a safeguard off (tokens = [] must not mean "no authentication").
        if (!v.is_array() || (v.as_array()->empty() && k.path != "compression") ||
            (!v.as_array()->empty() && !v.as_array()->is_homogeneous(toml::node_type::string))) {
          throw bad("expected " + kind_name(k.kind) + ", got " + node_type(v));
        }
        break;
      case Kind::boolean:
        if (!v.is_boolean()) throw bad("expected true or false, got " + node_type(v));
        break;
      case Kind::integer: {
        if (!v.is_integer()) throw bad("expected an integer, got " + node_type(v));
        const std::int64_t n = v.as_integer()->get();
        if (n < k.min || n > k.max) {
          throw bad(std::to_string(n) + " is out of range [" + std::to_string(k.min) + ", " +
                    std::to_string(k.max) + "]");
        }
        break;
      }
    }
    if (k.path == "codec" || k.path == "codecs") {
      std::vector<std::string> names;
      if (v.is_string()) names.push_back(v.as_string()->get());
      if (v.is_array()) {
        for (const auto& item : *v.as_array()) names.push_back(item.as_string()->get());
      }
      std::vector<std::string> known;
      for (CodecId c : known_codecs()) known.emplace_back(codec_name(c));
      for (const auto& n : names) {
        if (codec_from_name(n)) continue;
        const auto best = closest(n, known);
        throw bad("unknown codec '" + n + "'" + (best ? " (did you mean '" + *best + "'?)" : "") +
                  "; known: " + codec_names(kAllCodecs));
      }
    }
  }

  const Entry* lookup(const std::string& specific, const std::string& general = {}) const {
    if (auto it = entries_.find(specific); it != entries_.end()) return &it->second;
    if (general.empty()) return nullptr;
    if (auto it = entries_.find(general); it != entries_.end()) return &it->second;
    return nullptr;
  }

  std::optional<std::string> string(const std::string& specific,
                                    const std::string& general = {}) const {
    const Entry* e = lookup(specific, general);
    if (e == nullptr) return std::nullopt;
    return e->value().as_string()->get();
  }
  std::optional<std::int64_t> integer(const std::string& specific,
                                      const std::string& general = {}) const {
    const Entry* e = lookup(specific, general);
    if (e == nullptr) return std::nullopt;
    return e->value().as_integer()->get();
  }
  std::optional<std::vector<std::string>> strings(const std::string& path,
                                                  const std::string& general = {}) const {
    const Entry* e = lookup(path, general);
    if (e == nullptr) return std::nullopt;
    std::vector<std::string> out;
    if (e->value().is_string()) {
      out.push_back(e->value().as_string()->get());
    } else {
      for (const auto& item : *e->value().as_array()) out.push_back(item.as_string()->get());
    }
    return out;
  }

  // compression, compression_threshold, compression_level: [server]/[client] or the top level.
  void fill_compression(const std::string& side, CompressionOptions& c) const {
    if (auto names = strings(side + ".compression", "compression")) {
      c.algorithms = *names;
      try {
        (void)wire::resolve({c.algorithms}, side);  // the one list of known algorithms
      } catch (const std::invalid_argument& e) {
        throw ConfigError(lookup(side + ".compression", "compression")->origin +
                          ": key 'compression': " + e.what());
      }
    }
    if (auto n = integer(side + ".compression_threshold", "compression_threshold")) {
      c.threshold = std::size_t(*n);
    }
    if (auto n = integer(side + ".compression_level", "compression_level")) c.level = int(*n);
  }

  void fill_side(const std::string& side, std::size_t& max_frame, DecodeLimits& limits,
                 std::chrono::milliseconds& hb_interval, std::chrono::milliseconds& hb_timeout,
                 MetadataLimits& md_limits, bool& log_calls) const {
    if (auto n = integer(side + ".max_metadata_entries", "max_metadata_entries")) {
      md_limits.max_entries = std::size_t(*n);
    }
    if (auto n = integer(side + ".max_metadata_bytes", "max_metadata_bytes")) {
      md_limits.max_bytes = std::size_t(*n);
    }
    if (const Entry* e = lookup(side + ".log_calls", "log_calls")) {
      log_calls = e->value().as_boolean()->get();
    }
    if (auto n = integer(side + ".max_frame_size", "max_frame_size")) max_frame = std::size_t(*n);
    if (auto n = integer(side + ".max_depth", "max_depth")) limits.max_depth = std::uint32_t(*n);
    if (auto n = integer(side + ".max_decoded_bytes", "max_decoded_bytes")) {
      limits.max_decoded_bytes = std::uint64_t(*n);
    }
    if (auto n = integer(side + ".heartbeat_interval_ms", "heartbeat_interval_ms")) {
      hb_interval = std::chrono::milliseconds(*n);
    }
    if (auto n = integer(side + ".heartbeat_timeout_ms", "heartbeat_timeout_ms")) {
      hb_timeout = std::chrono::milliseconds(*n);
    }
    if (const Entry* e = lookup(side + ".json_strict", "json_strict")) {
      limits.json_strict = e->value().as_boolean()->get();
    }
  }

  void check_uris(const std::string& path, const std::vector<std::string>& uris,
                  bool for_broker) const {
    const Entry* e = lookup(path);
    for (const auto& uri : uris) {
      try {
        const transport::Scheme& scheme = transport::scheme_of(uri);
        if (for_broker && scheme.work_for == nullptr) {
          throw std::invalid_argument("a broker's backend is a zmq+ URI");
        }
      } catch (const std::invalid_argument& ex) {
        throw ConfigError((e != nullptr ? e->origin : std::string("<config>")) + ": key '" + path +
                          "': " + ex.what());
      }
    }
  }

  std::map<std::string, Entry> entries_;
};

}  // namespace

Config parse_config(std::string_view text, std::string_view origin) {
  ConfigReader r;
  try {
    const toml::table root = toml::parse(text, origin);
    r.read_table(root, origin);
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    throw ConfigError(std::string(origin) + ":" + std::to_string(b.line) + ":" +
                      std::to_string(b.column) + ": " + std::string(e.description()));
  }
  r.read_environment();
  return r.build();
}

Config load_config(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw ConfigError(path + ": is a directory, not a configuration file");
  }
  toml::table root;
  ConfigReader r;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    if (b.line == 0) throw ConfigError(path + ": " + std::string(e.description()));
    throw ConfigError(path + ":" + std::to_string(b.line) + ":" + std::to_string(b.column) + ": " +
                      std::string(e.description()));
  }
  r.read_table(root, path);
  r.read_environment();
  return r.build();
}

Config config_from_environment() {
  ConfigReader r;
  r.read_environment();
  return r.build();
}

std::vector<std::string> open_endpoints(Server& server, const ServerConfig& config) {
  std::vector<std::string> out;
  for (const auto& uri : config.listen) out.push_back(server.listen(uri));
  for (const auto& uri : config.brokers) out.push_back(server.connect(uri));
  return out;
}

}  // namespace brine
