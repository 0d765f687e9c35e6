#include "calculator.hpp"

#include <chrono>
#include <numeric>
#include <stdexcept>
#include <thread>

#include <unistd.h>

namespace calc {
namespace {

double divide(double n, double d) {
  if (d == 0) throw std::domain_error("division by zero");
  return n / d;
}

double wait_ms(std::uint32_t ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}

pb::Number pb_number(double v) {
  pb::Number n;
  n.set_value(v);
  return n;
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
}

}  // namespace calc
