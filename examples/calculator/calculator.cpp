#include "calculator.hpp"

#include <algorithm>
#include <chrono>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>

#include <unistd.h>

namespace calc {
namespace {

double divide(double n, double d) {
  if (d == 0) throw std::domain_error("division by zero");
  return n / d;
}

// Sleeps `ms`, in slices, and stops when the caller has stopped waiting (cancelled, its deadline
// passed, or the server stopping closed its connection), so a stopping server is not held up.
double wait_ms(std::uint32_t ms) {
  if (ms > kMaxWaitMs) {
    throw std::invalid_argument("wait takes at most " + std::to_string(kMaxWaitMs) + " ms, not " +
                                std::to_string(ms));
  }
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  for (auto now = std::chrono::steady_clock::now(); now < until;
       now = std::chrono::steady_clock::now()) {
    if (brine::this_call::cancelled()) {
      // Nobody reads this answer unless the server's clock saw the deadline a moment before the
      // caller's did: then it says what the caller would have said itself.
      if (brine::this_call::time_left().count() == 0) {
        throw brine::RpcError(brine::StatusCode::deadline_exceeded,
                              "the caller's deadline passed while waiting");
      }
      throw brine::RpcError(brine::StatusCode::cancelled, "the caller cancelled the wait");
    }
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(until - now, std::chrono::milliseconds(10)));
  }
  return ms;
}

pb::Number pb_number(double v) {
  pb::Number n;
  n.set_value(v);
  return n;
}

// The primes up to `limit`, one at a time, to `out` (trial division by the primes found: enough
// for a demo). A coroutine: while the client has no room for more, it waits without a thread.
template <class N, class Make>
brine::Task<void> primes(double limit, brine::Writer<N>& out, Make make) {
  if (!(limit <= kMaxPrimesLimit)) {
    throw brine::RpcError(brine::StatusCode::invalid_argument, "primes: the limit is at most 1e8");
  }
  std::vector<std::uint64_t> found;
  for (std::uint64_t n = 2; double(n) <= limit; ++n) {
    bool prime = true;
    for (std::uint64_t p : found) {
      if (p * p > n) break;
      if (n % p == 0) {
        prime = false;
        break;
      }
    }
    if (!prime) continue;
    found.push_back(n);
    if (!co_await out.async_write(make(double(n)))) co_return;  // the caller left
  }
}

// Running totals: each number read is answered with the sum so far.
template <class N, class Make, class Value>
brine::Task<void> accumulate(double total, brine::Reader<N>& in, brine::Writer<N>& out, Make make,
                             Value value) {
  while (auto n = co_await in.async_read()) {
    total += value(*n);
    if (!co_await out.async_write(make(total))) co_return;
  }
}

}  // namespace

void register_calculator(brine::Server& server) {
  const brine::HandlerOptions idempotent{.idempotent = true};
  // The messages could serve json too (protobuf's JSON mapping); the structs do that here.
  const brine::HandlerOptions pb_idempotent{.idempotent = true,
                                            .codecs = {brine::CodecId::protobuf}};
  const brine::HandlerOptions pb_only{.codecs = {brine::CodecId::protobuf}};
  server.handle(
      kAdd, [](const AddRequest& r) { return Number{r.a + r.b}; }, idempotent);
  server.handle(
      kDivide, [](const DivideRequest& r) { return Number{divide(r.numerator, r.denominator)}; },
      idempotent);
  server.handle(
      kSum,
      [](const SumRequest& r) {
        return Number{std::accumulate(r.values.begin(), r.values.end(), 0.0)};
      },
      idempotent);
  server.handle(
      kPid, [](const Number&) { return Number{double(::getpid())}; }, idempotent);
  server.handle(kWait, [](const WaitRequest& r) { return Number{wait_ms(r.milliseconds)}; });
  server.handle(kPrimes, [](Number limit, brine::Writer<Number>& out) {
    return primes(limit.value, out, [](double v) { return Number{v}; });
  });
  server.handle(kAccumulate,
                [](Number start, brine::Reader<Number>& in, brine::Writer<Number>& out) {
                  return accumulate(
                      start.value, in, out, [](double v) { return Number{v}; },
                      [](const Number& n) { return n.value; });
                });

  server.handle(
      pb::kAdd, [](const pb::AddRequest& r) { return pb_number(r.a() + r.b()); }, pb_idempotent);
  server.handle(
      pb::kDivide,
      [](const pb::DivideRequest& r) { return pb_number(divide(r.numerator(), r.denominator())); },
      pb_idempotent);
  server.handle(
      pb::kSum,
      [](const pb::SumRequest& r) {
        return pb_number(std::accumulate(r.values().begin(), r.values().end(), 0.0));
      },
      pb_idempotent);
  server.handle(
      pb::kPid, [](const pb::Number&) { return pb_number(double(::getpid())); }, pb_idempotent);
  server.handle(
      pb::kWait, [](const pb::WaitRequest& r) { return pb_number(wait_ms(r.milliseconds())); },
      pb_only);
  server.handle(
      kPrimes,
      [](pb::Number limit, brine::Writer<pb::Number>& out) {
        return primes(limit.value(), out, pb_number);
      },
      pb_only);
  server.handle(
      kAccumulate,
      [](pb::Number start, brine::Reader<pb::Number>& in, brine::Writer<pb::Number>& out) {
        return accumulate(start.value(), in, out, pb_number,
                          [](const pb::Number& n) { return n.value(); });
      },
      pb_only);
}

}  // namespace calc
