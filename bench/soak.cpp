// brine_soak: a bounded soak run. One calculator server in a child process (brine::testing) on
// tcp, unix, tls, udp and unixgram; many client threads that make mixed calls (blocking,
// asynchronous, oneway, failing, timing out) and churn their connections (a new client, and for tls
// a new handshake, every few dozen calls). Every interval it prints the server's resident size and
// descriptors, the latency of a blocking call (p50, p99) and the calls and errors so far.
//
// It fails (exit 1) when a call ends with a status it should not have, when a call returns later
// than its deadline allows (a call must end with a reply or a status, never silence), when the
// server's resident size grows past the warm-up's by more than --rss-growth-mib, or when the
// server holds more descriptors after the clients left than before they came.
//
//   brine_soak [--seconds 60] [--clients 6] [--interval 5] [--rss-growth-mib 16]
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <brine/testing.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "calculator.hpp"
#include "memory.hpp"
#include "tls_files.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Settings {
  int seconds = 60;
  int clients = 6;
  int interval = 5;
  long rss_growth_mib = 16;
};

Settings parse(int argc, char** argv) {
  Settings s;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help") {
      std::printf("brine_soak [--seconds 60] [--clients 6] [--interval 5] [--rss-growth-mib 16]\n");
      std::exit(0);
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "brine_soak: missing value after %s\n", flag.c_str());
      std::exit(2);
    }
    const long v = std::strtol(argv[++i], nullptr, 10);
    if (v <= 0) {
      std::fprintf(stderr, "brine_soak: %s wants a positive number\n", flag.c_str());
      std::exit(2);
    }
    if (flag == "--seconds") {
      s.seconds = int(v);
    } else if (flag == "--clients") {
      s.clients = int(v);
    } else if (flag == "--interval") {
      s.interval = int(v);
    } else if (flag == "--rss-growth-mib") {
      s.rss_growth_mib = v;
    } else {
      std::fprintf(stderr, "brine_soak: unknown flag %s\n", flag.c_str());
      std::exit(2);
    }
  }
  return s;
}

long rss_kib(pid_t pid) {
  return long(brine_test::rss_kib(pid));
}

int descriptors(pid_t pid) {
  return int(brine_test::open_fds(pid));
}

// What the clients saw, shared.
struct Tally {
  std::mutex mu;
  std::vector<double> latency_us;  // blocking adds, this interval
  std::map<std::string, long> unexpected;
  std::atomic<long> calls{0}, expected_errors{0}, late{0}, connections{0};

  void wrong(const std::string& what) {
    std::lock_guard lk(mu);
    ++unexpected[what];
  }
};

// A call may return this long after its deadline (scheduling on a loaded 2-core machine); later
// than that it counts as a call that did not end.
constexpr auto kGrace = 2s;

void client_loop(int index, const std::vector<std::string>& uris, const std::string& ca,
                 Clock::time_point end, Tally& tally) {
  std::mt19937 random(unsigned(index) * 7919u + 17u);
  std::uniform_int_distribution<int> pick(0, 99);
  brine::ClientOptions options;
  options.timeout = 3s;
  options.tls.ca_file = ca;
  for (int life = 0; Clock::now() < end; ++life) {
    const std::string& uri = uris[std::size_t(index + life) % uris.size()];
    brine::Client client(uri, options);
    tally.connections.fetch_add(1);
    const int calls = 20 + pick(random);  // then a new client: connection churn
    for (int i = 0; i < calls && Clock::now() < end; ++i) {
      const int kind = pick(random);
      const auto t0 = Clock::now();
      auto late = [&](std::chrono::milliseconds deadline) {
        if (Clock::now() - t0 > deadline + kGrace) tally.late.fetch_add(1);
      };
      tally.calls.fetch_add(1);
      if (kind < 55) {
        const auto r = client.try_call(calc::kAdd, {double(i), 1});
        late(options.timeout);
        if (!r.ok() || r.value().value != double(i) + 1) {
          tally.wrong("add: " + r.status().to_string());
          continue;
        }
        const double us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
        std::lock_guard lk(tally.mu);
        tally.latency_us.push_back(us);
      } else if (kind < 70) {
        std::vector<double> values(std::size_t(1 + pick(random) * 20), 0.5);
        const auto r = client.try_call(calc::kSum, {values});
        late(options.timeout);
        if (!r.ok() || r.value().value != double(values.size()) * 0.5)
          tally.wrong("sum: " + r.status().to_string());
      } else if (kind < 82) {
        std::vector<std::future<calc::Number>> pending;
        for (int k = 0; k < 4; ++k) pending.push_back(client.call_async(calc::kAdd, {1, 2}));
        for (auto& f : pending) {
          try {
            if (f.get().value != 3) tally.wrong("async add: wrong value");
          } catch (const brine::RpcError& e) {
            tally.wrong(std::string("async add: ") + e.what());
          }
        }
        late(options.timeout);
      } else if (kind < 88) {
        const brine::Status s = client.notify("add", calc::AddRequest{1, 1});
        if (!s.ok()) tally.wrong("oneway: " + s.to_string());
      } else if (kind < 94) {
        const auto r = client.try_call(calc::kDivide, {1, 0});
        late(options.timeout);
        if (r.ok() || r.status().message.find("division by zero") == std::string::npos) {
          tally.wrong("divide by zero: " + r.status().to_string());
        } else {
          tally.expected_errors.fetch_add(1);
        }
      } else {
        const auto r = client.try_call(calc::kWait, {200}, {.timeout = 20ms});
        late(20ms);
        if (r.code() != brine::StatusCode::deadline_exceeded) {
          tally.wrong("wait past its deadline: " + r.status().to_string());
        } else {
          tally.expected_errors.fetch_add(1);
        }
      }
    }
  }
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const auto k = std::size_t(p * double(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + std::ptrdiff_t(k), v.end());
  return v[k];
}

}  // namespace

int main(int argc, char** argv) {
  const Settings settings = parse(argc, argv);
  const auto& tls = brine_test::tls_files();
  const std::string unix_path = "/tmp/brine-soak-" + std::to_string(::getpid()) + ".sock";
  brine::ServerOptions server_options;
  server_options.tls.certificate_file = tls.server_crt;
  server_options.tls.private_key_file = tls.server_key;
  // Forked before this process has any thread (brine::testing: fork before threads).
  auto server = brine::testing::ServerProcess::fork(
      {"tcp://127.0.0.1:0", "unix://" + unix_path, "tls://127.0.0.1:0", "udp://127.0.0.1:0",
       "unixgram://" + unix_path + ".dgram"},
      [](brine::Server& s) { calc::register_calculator(s); }, server_options);
  const pid_t pid = server.pid();
  const int fds_before = descriptors(pid);
  const long rss_before = rss_kib(pid);
  std::printf("# brine_soak: %d s, %d clients, server pid %d on", settings.seconds,
              settings.clients, int(pid));
  for (const auto& e : server.endpoints()) std::printf(" %s", e.c_str());
  std::printf("\n# before the clients: server rss %ld KiB, %d descriptors\n", rss_before,
              fds_before);
  std::printf("%6s %9s %8s %9s %9s %7s %7s %10s %6s %10s %6s\n", "t_s", "calls", "calls/s",
              "p50_us", "p99_us", "errors", "late", "srv_rss", "srv_fd", "cli_rss", "cli_fd");
  std::fflush(stdout);

  Tally tally;
  const auto start = Clock::now();
  const auto end = start + std::chrono::seconds(settings.seconds);
  std::vector<std::thread> clients;
  for (int i = 0; i < settings.clients; ++i) {
    clients.emplace_back(client_loop, i, server.endpoints(), tls.ca, end, std::ref(tally));
  }
  long rss_warm = 0, rss_last = 0;
  double first_p99 = 0, last_p99 = 0;
  long last_calls = 0;
  for (auto next = start + std::chrono::seconds(settings.interval); next <= end;
       next += std::chrono::seconds(settings.interval)) {
    std::this_thread::sleep_until(next);  // the reporting period itself, not synchronisation
    std::vector<double> lat;
    long wrong = 0;
    {
      std::lock_guard lk(tally.mu);
      lat.swap(tally.latency_us);
      for (const auto& [what, n] : tally.unexpected) wrong += n;
    }
    const long calls = tally.calls.load();
    const double p50 = percentile(lat, 0.5), p99 = percentile(lat, 0.99);
    const long rss = rss_kib(pid);
    if (rss_warm == 0) {
      rss_warm = rss;
      first_p99 = p99;
    }
    rss_last = rss;
    last_p99 = p99;
    std::printf("%6ld %9ld %8ld %9.0f %9.0f %7ld %7ld %10ld %6d %10ld %6d\n",
                long(std::chrono::duration_cast<std::chrono::seconds>(next - start).count()), calls,
                (calls - last_calls) / settings.interval, p50, p99, wrong, tally.late.load(), rss,
                descriptors(pid), rss_kib(::getpid()), descriptors(::getpid()));
    std::fflush(stdout);
    last_calls = calls;
  }
  for (auto& t : clients) t.join();

  // Every client has gone: the server's descriptors come back to where they were.
  int fds_after = descriptors(pid);
  for (auto until = Clock::now() + 5s; fds_after > fds_before && Clock::now() < until;) {
    std::this_thread::sleep_for(10ms);  // polling /proc: nothing to wait on
    fds_after = descriptors(pid);
  }
  const bool alive = server.running();
  server.stop();

  bool ok = true;
  std::printf("# calls %ld (expected errors %ld), connections %ld\n", tally.calls.load(),
              tally.expected_errors.load(), tally.connections.load());
  std::printf("# server rss: before %ld KiB, after warm-up %ld KiB, at the end %ld KiB\n",
              rss_before, rss_warm, rss_last);
  std::printf("# server descriptors: before %d, after the clients left %d\n", fds_before,
              fds_after);
  std::printf("# blocking add p99: first interval %.0f us, last %.0f us\n", first_p99, last_p99);
  if (!alive) {
    std::printf("FAIL: the server process died (%s)\n", server.exit_status().describe().c_str());
    ok = false;
  }
  for (const auto& [what, n] : tally.unexpected) {
    std::printf("FAIL: %ld x %s\n", n, what.c_str());
    ok = false;
  }
  if (tally.late.load() > 0) {
    std::printf("FAIL: %ld calls returned later than their deadline allows\n", tally.late.load());
    ok = false;
  }
  if (rss_last - rss_warm > settings.rss_growth_mib * 1024) {
    std::printf("FAIL: the server grew by %ld KiB after the warm-up (limit %ld MiB)\n",
                rss_last - rss_warm, settings.rss_growth_mib);
    ok = false;
  }
  if (fds_after > fds_before) {
    std::printf("FAIL: the server holds %d descriptors more than before the clients\n",
                fds_after - fds_before);
    ok = false;
  }
  std::printf(ok ? "# soak passed\n" : "# soak FAILED\n");
  return ok ? 0 : 1;
}
