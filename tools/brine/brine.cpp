// brine: the command line of a brine server's tools.
//
//   brine describe URI [--json]                 what the server offers
//   brine call URI METHOD [JSON|-]              one call in the json codec; prints the result
//   brine ping URI [-c N]                       round trips to the built-in ~ready
//   brine bench URI METHOD [JSON] -n N -c C     latency percentiles, calls/s, a histogram
//
// Common options: --timeout MS, -m/--metadata KEY=VALUE (repeatable), --token T, --config FILE
// (its [client] section, as brine/config.hpp reads it; the URI argument wins), --tls-ca,
// --tls-cert, --tls-key, --tls-server-name.
//
// Exit status: 0; 2 for a usage error; 64 + the status code when a call fails (grpcurl's
// convention: 64 + 14 = 78 for UNAVAILABLE), after "CODE: message [type]" on standard error.
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <unistd.h>
#include <brine/brine.hpp>
#include <brine/codecs/json.hpp>
#include <brine/config.hpp>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Common {
  std::string uri;
  std::string config;
  long timeout_ms = 10000;
  std::vector<std::string> metadata;
  std::string token;
  std::string tls_ca, tls_cert, tls_key, tls_server_name;
};

void add_common(CLI::App& app, Common& c) {
  app.add_option("URI", c.uri, "the server's brine endpoint (tcp://127.0.0.1:7000, unix:///p, ...)")
      ->required();
  app.add_option("--timeout", c.timeout_ms, "milliseconds a call may take")
      ->check(CLI::Range(1L, 86400000L));
  app.add_option("-m,--metadata", c.metadata, "KEY=VALUE sent with the call (repeatable)");
  app.add_option("--token", c.token, "sent as authorization: Bearer TOKEN");
  app.add_option("--config", c.config, "a brine TOML file (its [client] section)")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-ca", c.tls_ca, "CA file for tls:// (default: the system's)");
  app.add_option("--tls-cert", c.tls_cert, "this client's certificate (mutual TLS)");
  app.add_option("--tls-key", c.tls_key, "its private key");
  app.add_option("--tls-server-name", c.tls_server_name, "the name the certificate must carry");
}

// A failed call: its report and exit status.
struct Failed {
  brine::Status status;
};

[[noreturn]] void fail(const brine::Status& s) {
  throw Failed{s};
}

brine::Client make_client(const Common& c) {
  brine::ClientOptions o;
  if (!c.config.empty()) o = brine::load_config(c.config).client.options;
  // Calls go as JSON text, which the server decodes into its own types: one codec, no contract.
  o.codec = "json";
  o.codecs = {"json"};
  o.check_contracts = false;
  o.timeout = std::chrono::milliseconds(c.timeout_ms);
  if (!c.token.empty()) o.token = c.token;
  if (!c.tls_ca.empty()) o.tls.ca_file = c.tls_ca;
  if (!c.tls_cert.empty()) o.tls.certificate_file = c.tls_cert;
  if (!c.tls_key.empty()) o.tls.private_key_file = c.tls_key;
  if (!c.tls_server_name.empty()) o.tls.server_name = c.tls_server_name;
  return brine::Client(c.uri, std::move(o));
}

brine::CallOptions call_options(const Common& c) {
  brine::CallOptions o;
  o.timeout = std::chrono::milliseconds(c.timeout_ms);
  for (const auto& kv : c.metadata) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw CLI::ValidationError("--metadata", "expected KEY=VALUE, got '" + kv + "'");
    }
    try {
      o.metadata.add(kv.substr(0, eq), kv.substr(eq + 1));
    } catch (const std::invalid_argument& e) {
      throw CLI::ValidationError("--metadata", e.what());
    }
  }
  return o;
}

brine::JsonText call_json(brine::Client& client, std::string_view method, std::string json,
                          const brine::CallOptions& opts) {
  auto r = client.try_call<brine::JsonText>(method, brine::JsonText{std::move(json)}, opts);
  if (!r) fail(r.status());
  return std::move(*r);
}

// The server's description; nullopt when it does not describe itself (describe = false).
std::optional<rapidjson::Document> describe(brine::Client& client, const Common& c) {
  auto r = client.try_call<brine::JsonText>("~describe", brine::JsonText{"[]"}, call_options(c));
  if (!r) {
    if (r.status().code == brine::StatusCode::not_found) return std::nullopt;
    fail(r.status());
  }
  rapidjson::Document d;
  d.Parse(r->text.data(), r->text.size());
  if (d.HasParseError() || !d.IsObject() || !d.HasMember("methods") || !d["methods"].IsArray()) {
    fail({brine::StatusCode::internal, "the server's description is not what ~describe answers"});
  }
  return d;
}

std::string text_of(const rapidjson::Value& v) {
  rapidjson::StringBuffer b;
  rapidjson::Writer<rapidjson::StringBuffer> w(b);
  v.Accept(w);
  return {b.GetString(), b.GetSize()};
}

// o[key], or null when `o` is not an object or has no such member (a server's description is
// read, not trusted).
const rapidjson::Value& at(const rapidjson::Value& o, const char* key) {
  static const rapidjson::Value kNull;
  return o.IsObject() && o.HasMember(key) ? o[key] : kNull;
}

std::string str(const rapidjson::Value& o, const char* key) {
  const rapidjson::Value& v = at(o, key);
  return v.IsString() ? std::string(v.GetString(), v.GetStringLength()) : std::string();
}

std::string join_array(const rapidjson::Value& a) {
  std::string out;
  if (!a.IsArray()) return out;
  for (const auto& v : a.GetArray()) {
    if (!out.empty()) out += ", ";
    if (v.IsString()) out += v.GetString();
  }
  return out;
}

int run_describe(const Common& c, bool as_json) {
  brine::Client client = make_client(c);
  auto d = describe(client, c);
  if (!d) {
    fail({brine::StatusCode::not_found,
          "the server does not describe itself (it is configured with describe = false)"});
  }
  if (as_json) {
    std::cout << text_of(*d) << "\n";
    return 0;
  }
  const rapidjson::Value& wire = at(*d, "wire");
  std::cout << "brine " << str(*d, "brine") << ", wire " << (wire.IsInt() ? wire.GetInt() : 0)
            << ", codecs: " << join_array(at(*d, "codecs")) << "\n";
  for (const auto& m : (*d)["methods"].GetArray()) {
    std::cout << "\n"
              << str(m, "name") << "\n    " << str(m, "declaration") << "\n    " << str(m, "shape")
              << "; codecs: " << join_array(at(m, "codecs"))
              << (at(m, "idempotent").IsTrue() ? "; idempotent" : "") << "; fingerprint "
              << str(m, "fingerprint") << "\n";
    for (const char* key : {"request", "response", "in", "out"}) {
      const rapidjson::Value& shape = at(at(m, "json"), key);
      if (!shape.IsNull()) std::cout << "    json " << key << ": " << text_of(shape) << "\n";
    }
  }
  return 0;
}

// The JSON a call sends: the argument given, read from standard input for "-"; an object's
// method takes its argument list, so a lone value that is not an array becomes its one argument.
std::string argument(std::string json, std::string_view method) {
  if (json == "-") {
    json.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  const auto first = json.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return method.find('.') != std::string_view::npos ? "[]" : "{}";
  if (method.find('.') != std::string_view::npos && json[first] != '[') return "[" + json + "]";
  return json;
}

std::string shape_of(const std::optional<rapidjson::Document>& d, std::string_view method) {
  if (!d) return {};
  for (const auto& m : (*d)["methods"].GetArray()) {
    if (str(m, "name") == method && join_array(at(m, "codecs")).find("json") != std::string::npos) {
      return str(m, "shape");
    }
  }
  return {};
}

int run_call(const Common& c, const std::string& method, const std::string& json) {
  brine::Client client = make_client(c);
  const brine::CallOptions opts = call_options(c);
  const std::string arg = argument(json, method);
  const std::string shape =
      method.find('.') == std::string::npos ? shape_of(describe(client, c), method) : "";
  if (shape == "client-stream" || shape == "bidi-stream") {
    fail({brine::StatusCode::unimplemented,
          "'" + method + "' is a " + shape + " method: brine call opens server streams only"});
  }
  if (shape == "server-stream") {
    auto stream = client.stream<brine::JsonText>(method, brine::JsonText{arg}, opts);
    while (auto item = stream.read()) std::cout << item->text << "\n" << std::flush;
    if (!stream.status().ok()) fail(stream.status());
    return 0;
  }
  std::cout << call_json(client, method, arg, opts).text << "\n";
  return 0;
}

int run_ping(const Common& c, int count, long interval_ms) {
  brine::Client client = make_client(c);
  const brine::CallOptions opts = call_options(c);
  std::vector<double> ms;
  int failures = 0;
  brine::Status last;
  for (int i = 0; i < count; ++i) {
    if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
    const auto t0 = Clock::now();
    auto r = client.try_call<brine::JsonText>("~ready", brine::JsonText{"[]"}, opts);
    const double took = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (r) {
      ms.push_back(took);
      std::printf("reply from %s: seq=%d time=%.3f ms\n", c.uri.c_str(), i + 1, took);
    } else {
      ++failures;
      last = r.status();
      std::printf("no reply from %s: seq=%d %s: %s\n", c.uri.c_str(), i + 1,
                  std::string(brine::status_name(r.status().code)).c_str(),
                  r.status().message.c_str());
    }
    std::fflush(stdout);
  }
  std::printf("--- %s: %d sent, %zu answered", c.uri.c_str(), count, ms.size());
  if (!ms.empty()) {
    double sum = 0;
    for (double v : ms) sum += v;
    std::printf(", min/avg/max %.3f/%.3f/%.3f ms", *std::min_element(ms.begin(), ms.end()),
                sum / double(ms.size()), *std::max_element(ms.begin(), ms.end()));
  }
  std::printf("\n");
  if (failures > 0) fail(last);
  return 0;
}

double percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const auto i = std::min(sorted.size() - 1, std::size_t(std::ceil(q * double(sorted.size())) - 1));
  return sorted[i];
}

int run_bench(const Common& c, const std::string& method, const std::string& json, long calls,
              int concurrency, bool as_json) {
  brine::Client client = make_client(c);
  const brine::CallOptions opts = call_options(c);
  const std::string arg = argument(json, method);
  // One call first: a method that fails is reported, not measured.
  (void)call_json(client, method, arg, opts);
  std::atomic<long> next{0};
  std::atomic<long> done{0};
  std::atomic<long> failed{0};
  std::mutex mu;
  brine::Status first_failure;
  std::vector<std::vector<double>> per_thread(static_cast<std::size_t>(concurrency));
  // When each thread made its last call: the run's length ends there, not when the progress
  // bar, which only looks every few hundred milliseconds, notices.
  std::vector<Clock::time_point> finished(static_cast<std::size_t>(concurrency));
  std::condition_variable all_done;
  const auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < concurrency; ++t) {
    threads.emplace_back([&, t] {
      auto& mine = per_thread[std::size_t(t)];
      mine.reserve(std::size_t(calls / concurrency + 1));
      while (next.fetch_add(1) < calls) {
        const auto s = Clock::now();
        auto r = client.try_call<brine::JsonText>(method, brine::JsonText{arg}, opts);
        mine.push_back(std::chrono::duration<double, std::micro>(Clock::now() - s).count());
        if (!r) {
          if (failed.fetch_add(1) == 0) {
            std::lock_guard lk(mu);
            first_failure = r.status();
          }
        }
        done.fetch_add(1);
      }
      finished[std::size_t(t)] = Clock::now();
      std::lock_guard lk(mu);
      all_done.notify_all();
    });
  }
  // The progress bar, on standard error.
  const bool tty = ::isatty(2) != 0;
  while (done.load() < calls) {
    const long d = done.load();
    const int width = 40;
    const int filled = int(double(d) / double(calls) * width);
    std::fprintf(stderr, "\r[%s%s] %ld/%ld", std::string(std::size_t(filled), '#').c_str(),
                 std::string(std::size_t(width - filled), ' ').c_str(), d, calls);
    if (!tty) std::fprintf(stderr, "\n");
    std::unique_lock lk(mu);
    all_done.wait_for(lk, std::chrono::milliseconds(tty ? 100 : 500),
                      [&] { return done.load() >= calls; });
  }
  for (auto& th : threads) th.join();
  const double seconds =
      std::chrono::duration<double>(*std::max_element(finished.begin(), finished.end()) - t0)
          .count();
  std::fprintf(stderr, "\r[%s] %ld/%ld\n", std::string(40, '#').c_str(), calls, calls);
  std::vector<double> all;
  for (auto& v : per_thread) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  const double rate = double(all.size()) / seconds;
  const double p50 = percentile(all, 0.5), p90 = percentile(all, 0.9), p99 = percentile(all, 0.99),
               p999 = percentile(all, 0.999);
  if (as_json) {
    std::printf(
        "{\"calls\":%zu,\"failed\":%ld,\"concurrency\":%d,\"seconds\":%.6f,\"calls_per_second\":%."
        "1f,"
        "\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f}\n",
        all.size(), failed.load(), concurrency, seconds, rate, p50, p90, p99, p999,
        all.empty() ? 0.0 : all.back());
  } else {
    std::printf("%zu calls, %ld failed, %d at a time, %.3f s: %.0f calls/s\n", all.size(),
                failed.load(), concurrency, seconds, rate);
    std::printf("latency p50 %.1f us  p90 %.1f us  p99 %.1f us  p99.9 %.1f us  max %.1f us\n", p50,
                p90, p99, p999, all.empty() ? 0.0 : all.back());
    // A histogram on a log scale: bins of a factor of two.
    if (!all.empty()) {
      const double low = std::max(1.0, std::floor(std::log2(all.front())));
      const double high = std::ceil(std::log2(all.back() + 1));
      const int bins = std::max(1, int(high - low));
      std::vector<long> counts(std::size_t(bins), 0);
      for (double v : all) {
        const int b = std::clamp(int(std::log2(std::max(v, 1.0)) - low), 0, bins - 1);
        ++counts[std::size_t(b)];
      }
      const long most = *std::max_element(counts.begin(), counts.end());
      for (int b = 0; b < bins; ++b) {
        const int bar = most > 0 ? int(double(counts[std::size_t(b)]) / double(most) * 50) : 0;
        std::printf("%9.0f - %-9.0f us |%-50s| %ld\n", std::exp2(low + b), std::exp2(low + b + 1),
                    std::string(std::size_t(bar), '#').c_str(), counts[std::size_t(b)]);
      }
    }
  }
  if (failed.load() > 0) fail(first_failure);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"brine: describe, call, ping and measure a brine server"};
  app.require_subcommand(1);
  Common common;

  auto* describe_cmd = app.add_subcommand("describe", "what the server offers");
  add_common(*describe_cmd, common);
  bool describe_json = false;
  describe_cmd->add_flag("--json", describe_json, "the description as the server sends it");

  auto* call_cmd = app.add_subcommand(
      "call", "call METHOD (name or object.name) with JSON (- reads standard input)");
  add_common(*call_cmd, common);
  std::string method, json;
  call_cmd->add_option("METHOD", method, "name, or object.name")->required();
  call_cmd->add_option("JSON", json, "the request (an object's method: the argument list)");

  auto* ping_cmd = app.add_subcommand("ping", "round trips to the server");
  add_common(*ping_cmd, common);
  int count = 4;
  long interval_ms = 200;
  ping_cmd->add_option("-c,--count", count, "how many")->check(CLI::Range(1, 1000000));
  ping_cmd->add_option("-i,--interval", interval_ms, "milliseconds between them")
      ->check(CLI::Range(0L, 60000L));

  auto* bench_cmd = app.add_subcommand("bench", "measure METHOD: percentiles, calls/s, histogram");
  add_common(*bench_cmd, common);
  std::string bench_method, bench_json;
  long calls = 10000;
  int concurrency = 1;
  bool bench_as_json = false;
  bench_cmd->add_option("METHOD", bench_method, "name, or object.name")->required();
  bench_cmd->add_option("JSON", bench_json, "the request");
  bench_cmd->add_option("-n,--calls", calls, "how many calls")->check(CLI::Range(1L, 100000000L));
  bench_cmd->add_option("-c,--concurrency", concurrency, "calls at a time (threads)")
      ->check(CLI::Range(1, 1024));
  bench_cmd->add_flag("--json", bench_as_json, "the figures as one JSON object");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  try {
    if (describe_cmd->parsed()) return run_describe(common, describe_json);
    if (call_cmd->parsed()) return run_call(common, method, json);
    if (ping_cmd->parsed()) return run_ping(common, count, interval_ms);
    return run_bench(common, bench_method, bench_json, calls, concurrency, bench_as_json);
  } catch (const Failed& f) {
    std::cerr << brine::status_name(f.status.code) << ": " << f.status.message;
    if (!f.status.type.empty()) std::cerr << " [" << f.status.type << "]";
    std::cerr << "\n";
    return 64 + int(f.status.code);
  } catch (const CLI::ValidationError& e) {
    std::cerr << "brine: " << e.what() << "\n";
    return 2;
  } catch (const brine::ConfigError& e) {
    std::cerr << "brine: " << e.what() << "\n";
    return 2;
  } catch (const std::invalid_argument& e) {
    std::cerr << "brine: " << e.what() << "\n";
    return 2;
  } catch (const brine::RpcError& e) {
    std::cerr << brine::status_name(e.status().code) << ": " << e.status().message << "\n";
    return 64 + int(e.status().code);
  } catch (const std::exception& e) {
    std::cerr << "brine: " << e.what() << "\n";
    return 64 + int(brine::StatusCode::unknown);
  }
}
