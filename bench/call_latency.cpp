// What a brine call costs over the raw socket round trip it rides on.
//
// For tcp and unix: the p50 round trip of a raw blocking 64-byte ping-pong (the baseline), then
// of a small typed call (add) with each codec, handlers inline (workers=0) and on a pool
// (workers=4); the same call in json; the same addition as a remote object's method (cereal,
// json); then the same call over ZeroMQ (zmq+tcp / zmq+ipc) and through a brine-broker
// process to a worker. Servers run in this process on their own threads, as the baseline's does.
// The cereal add and the remote object's add also run with check_contracts off: a call after the
// first on a connection carries no contract, so the two should not differ (docs/performance.md,
// "Contracts").
// Prints the median over repeats of each repeat's p50, the ratio and the added microseconds.
//   bench/call_latency [calls_per_repeat] [repeats]
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "calculator.hpp"
#include "process.hpp"
#include "raw_echo.hpp"

namespace bench_objects {
// The same addition as a remote object's method.
struct Adder {
  virtual ~Adder() = default;
  virtual double add(double a, double b) = 0;
};
BRINE_INTERFACE(Adder, add);
struct AdderImpl final : Adder {
  double add(double a, double b) override { return a + b; }
};
}  // namespace bench_objects

namespace {

using Clock = std::chrono::steady_clock;

double p50_of(std::vector<double>& us) {
  std::nth_element(us.begin(), us.begin() + long(us.size() / 2), us.end());
  return us[us.size() / 2];
}

// Times n calls of f after 200 warm-up calls; returns the p50 in microseconds.
double time_p50(int n, const std::function<void()>& f) {
  std::vector<double> us;
  us.reserve(std::size_t(n));
  for (int i = 0; i < n + 200; ++i) {
    const auto t0 = Clock::now();
    f();
    const auto t1 = Clock::now();
    if (i >= 200) us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  return p50_of(us);
}

// The baseline: a blocking echo thread and a blocking client, 64 bytes each way.
double raw_p50(bool tcp, int n) {
  return bench::echo_p50(tcp, bench::serve_blocking, n);
}

double call_p50(const std::string& uri, const std::string& codec, int n, bool contracts = true) {
  brine::Client client(uri, {.codec = codec, .check_contracts = contracts});
  if (codec != "protobuf") {
    return time_p50(n, [&] { client.call(calc::kAdd, {1, 2}); });
  }
  calc::pb::AddRequest req;
  req.set_a(1);
  req.set_b(2);
  return time_p50(n, [&] { client.call(calc::pb::kAdd, req); });
}

double brine_p50(const std::string& listen, const std::string& codec, std::size_t workers, int n,
                 bool contracts = true) {
  brine::ServerOptions options;
  options.workers = workers;
  brine::Server server(options);
  calc::register_calculator(server);
  const std::string uri = server.listen(listen);
  server.start();
  return call_p50(uri, codec, n, contracts);
}

// calc.add(1, 2) through a proxy for an exposed object, handlers inline.
double object_p50(const std::string& listen, const std::string& codec, int n,
                  bool contracts = true) {
  brine::Server server({.workers = 0});
  server.expose<bench_objects::Adder>("calc", std::make_shared<bench_objects::AdderImpl>());
  const std::string uri = server.listen(listen);
  server.start();
  brine::Client client(uri, {.codec = codec, .check_contracts = contracts});
  const auto calc = client.remote<bench_objects::Adder>("calc");
  return time_p50(n, [&] { (void)calc.add(1, 2); });
}

// A brine-broker process between the client and an in-process worker.
double broker_p50(bool tcp, int n) {
  const std::string sock = "/tmp/brine-bench-" + std::to_string(::getpid());
  brine_test::ChildProcess broker(
      {BRINE_BROKER, "--frontend", tcp ? "zmq+tcp://127.0.0.1:0" : "zmq+ipc://" + sock + ".front",
       "--backend", tcp ? "zmq+tcp://127.0.0.1:0" : "zmq+ipc://" + sock + ".back"});
  std::string frontend;
  std::string backend;
  while (frontend.empty() || backend.empty()) {
    const auto line = broker.read_line(std::chrono::seconds(10));
    if (!line) throw std::runtime_error("brine-broker did not start");
    if (line->rfind("frontend ", 0) == 0) frontend = line->substr(9);
    if (line->rfind("backend ", 0) == 0) backend = line->substr(8);
  }
  brine::ServerOptions options;
  options.workers = 0;
  brine::Server worker(options);
  calc::register_calculator(worker);
  worker.connect(backend);
  worker.start();
  for (;;) {  // the worker is routed to once the broker says it joined
    const auto line = broker.read_line(std::chrono::seconds(10));
    if (!line) throw std::runtime_error("the worker never joined");
    if (line->rfind("worker joined", 0) == 0) break;
  }
  return call_p50(frontend, "cereal", n);
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 10000;
  const int repeats = argc > 2 ? std::atoi(argv[2]) : 5;
  struct Variant {
    std::string name;
    std::function<double(bool)> run;
  };
  const std::string abstract = "unix://@brine-call-bench-" + std::to_string(::getpid());
  const std::string ipc = "zmq+ipc:///tmp/brine-call-bench-" + std::to_string(::getpid());
  std::vector<Variant> variants = {
      {"raw socket ping-pong", [&](bool tcp) { return raw_p50(tcp, n); }}};
  for (const char* codec : {"cereal", "protobuf"}) {
    for (std::size_t workers : {std::size_t(0), std::size_t(4)}) {
      variants.push_back({std::string("brine ") + codec + " workers=" + std::to_string(workers),
                          [&, codec, workers](bool tcp) {
                            return brine_p50(tcp ? "tcp://127.0.0.1:0" : abstract, codec, workers,
                                             n);
                          }});
    }
  }
  variants.push_back({"brine json workers=0", [&](bool tcp) {
                        return brine_p50(tcp ? "tcp://127.0.0.1:0" : abstract, "json", 0, n);
                      }});
  for (const char* codec : {"cereal", "json"}) {
    variants.push_back({std::string("remote object ") + codec + " workers=0", [&, codec](bool tcp) {
                          return object_p50(tcp ? "tcp://127.0.0.1:0" : abstract, codec, n);
                        }});
  }
  variants.push_back({"brine cereal w=0 no contracts", [&](bool tcp) {
                        return brine_p50(tcp ? "tcp://127.0.0.1:0" : abstract, "cereal", 0, n,
                                         false);
                      }});
  variants.push_back({"remote object no contracts", [&](bool tcp) {
                        return object_p50(tcp ? "tcp://127.0.0.1:0" : abstract, "cereal", n, false);
                      }});
  variants.push_back({"zmq cereal workers=0", [&](bool tcp) {
                        return brine_p50(tcp ? "zmq+tcp://127.0.0.1:0" : ipc, "cereal", 0, n);
                      }});
  variants.push_back({"broker cereal", [&](bool tcp) { return broker_p50(tcp, n); }});
  std::printf("# %d calls x %d repeats; median of per-repeat p50\n", n, repeats);
  std::printf("%-6s %-28s %9s %7s %9s\n", "socket", "variant", "p50_us", "ratio", "added_us");
  for (bool tcp : {true, false}) {
    std::vector<std::vector<double>> p50s(variants.size());
    for (int r = 0; r < repeats; ++r) {
      for (std::size_t v = 0; v < variants.size(); ++v) p50s[v].push_back(variants[v].run(tcp));
    }
    const double base = bench::median(p50s[0]);
    for (std::size_t v = 0; v < variants.size(); ++v) {
      const double m = bench::median(p50s[v]);
      std::printf("%-6s %-28s %9.2f %7.3f %9.2f\n", tcp ? "tcp" : "unix", variants[v].name.c_str(),
                  m, m / base, m - base);
    }
  }
}
