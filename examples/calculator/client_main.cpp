// calculator_client [--config FILE] [--connect URI] [--codec NAME] [--calls N]
//
// Calls add, divide, sum and a divide by zero, printing each call and its answer, reads the
// stream "primes" up to 50, then times
// N small calls (add) and prints the round-trip p50 and p99. Settings come from the [client]
// part of the configuration file and BRINE_* environment variables (brine/config.hpp); the
// flags override them.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "calculator.hpp"
#include "flags.hpp"

namespace {

// The two type families behind one interface, so the demo body is written once.
struct CerealCalls {
  static double add(brine::Client& c, double a, double b) {
    return c.call(calc::kAdd, {a, b}).value;
  }
  static double divide(brine::Client& c, double n, double d) {
    return c.call(calc::kDivide, {n, d}).value;
  }
  static double sum(brine::Client& c, const std::vector<double>& v) {
    return c.call(calc::kSum, {v}).value;
  }
  static brine::Stream<calc::Number> primes(brine::Client& c, double limit) {
    return c.stream<calc::Number>(calc::kPrimes, calc::Number{limit});
  }
  static double value(const calc::Number& n) { return n.value; }
};

struct ProtobufCalls {
  static double add(brine::Client& c, double a, double b) {
    calc::pb::AddRequest r;
    r.set_a(a);
    r.set_b(b);
    return c.call(calc::pb::kAdd, r).value();
  }
  static double divide(brine::Client& c, double n, double d) {
    calc::pb::DivideRequest r;
    r.set_numerator(n);
    r.set_denominator(d);
    return c.call(calc::pb::kDivide, r).value();
  }
  static double sum(brine::Client& c, const std::vector<double>& v) {
    calc::pb::SumRequest r;
    for (double x : v) r.add_values(x);
    return c.call(calc::pb::kSum, r).value();
  }
  static brine::Stream<calc::pb::Number> primes(brine::Client& c, double limit) {
    calc::pb::Number r;
    r.set_value(limit);
    return c.stream<calc::pb::Number>(calc::kPrimes, r);
  }
  static double value(const calc::pb::Number& n) { return n.value(); }
};

template <class Calls>
void demo(brine::Client& client, int calls) {
  const char* uri = client.uri().c_str();
  const std::string codec_text(brine::codec_name(client.codec()));
  const char* codec = codec_text.c_str();
  std::printf("[%s %s] add(2, 3) = %g\n", uri, codec, Calls::add(client, 2, 3));
  std::printf("[%s %s] divide(22, 7) = %.6f\n", uri, codec, Calls::divide(client, 22, 7));
  std::printf("[%s %s] sum(1..10) = %g\n", uri, codec,
              Calls::sum(client, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
  try {
    Calls::divide(client, 1, 0);
  } catch (const brine::RpcError& e) {
    std::printf("[%s %s] divide(1, 0) failed: %s\n", uri, codec, e.what());
  }
  // A stream: the primes arrive one by one as the server finds them.
  auto primes = Calls::primes(client, 50);
  std::string found;
  while (auto p = primes.read()) found += " " + std::to_string(int(Calls::value(*p)));
  if (primes.status().ok()) {
    std::printf("[%s %s] primes up to 50 (a stream):%s\n", uri, codec, found.c_str());
  } else {
    std::printf("[%s %s] primes up to 50 (a stream): %s\n", uri, codec,
                primes.status().to_string().c_str());
  }
  std::vector<double> micros;
  micros.reserve(std::size_t(calls));
  for (int i = 0; i < calls; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    Calls::add(client, i, 1);
    const auto t1 = std::chrono::steady_clock::now();
    micros.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  if (micros.empty()) return;
  std::sort(micros.begin(), micros.end());
  auto pct = [&](double p) { return micros[std::size_t(p * double(micros.size() - 1))]; };
  std::printf("[%s %s] round trip over %d add calls: p50 %.1f us, p99 %.1f us\n", uri, codec, calls,
              pct(0.50), pct(0.99));
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  std::string uri;
  std::string codec;
  long calls = 2000;
  examples::Flags flags("calculator_client",
                        "Calls add, divide, sum and a divide by zero, then times N add calls.");
  flags
      .text("--config", "FILE", "configuration file: its [client] part (brine/config.hpp)",
            &config_path)
      .text("--connect", "URI", "the server (or broker frontend) to call", &uri)
      .text("--codec", "NAME", "cereal, protobuf or json", &codec)
      .count("--calls", "add calls to time (default 2000)", 0, 100000000, &calls);
  flags.parse(argc, argv);
  try {
    brine::ClientConfig config = config_path.empty() ? brine::config_from_environment().client
                                                     : brine::load_config(config_path).client;
    if (!uri.empty()) config.connect = uri;
    if (!codec.empty()) config.options.codec = codec;
    if (config.connect.empty()) flags.fail("no server: give --connect URI or client.connect");
    brine::Client client(config.connect, config.options);
    if (client.codec() == brine::CodecId::protobuf) {
      demo<ProtobufCalls>(client, int(calls));
    } else {
      demo<CerealCalls>(client, int(calls));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "calculator_client: %s\n", e.what());
    return 1;
  }
  return 0;
}
