// Server::metrics() and prometheus_text(), the built-in ~describe through a typed client, and the
// rules around built-in names. (The HTTP front door and the brine command drive the same
// figures from outside: tests/tools/.)
#include <gtest/gtest.h>

#include <algorithm>
#include <brine/brine.hpp>
#include <brine/codecs/cereal.hpp>
#include <brine/codecs/json.hpp>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include "eventually.hpp"

namespace metrics_test {

struct Account {
  virtual ~Account() = default;
  virtual std::int64_t deposit(std::int64_t amount) = 0;
};
BRINE_INTERFACE(Account, deposit);

struct Bank {
  virtual ~Bank() = default;
  virtual brine::Ref<Account> open(std::string owner) = 0;
};
BRINE_INTERFACE(Bank, open);

struct AccountImpl final : Account {
  std::int64_t total = 0;
  std::int64_t deposit(std::int64_t amount) override { return total += amount; }
};
struct BankImpl final : Bank {
  brine::Ref<Account> open(std::string) override { return std::make_shared<AccountImpl>(); }
};

}  // namespace metrics_test

namespace {

using brine::StatusCode;
using brine_test::eventually;
using metrics_test::Bank;
using metrics_test::BankImpl;

const brine::MethodMetrics* find(const brine::ServerMetrics& m, const std::string& name) {
  const auto it = std::find_if(m.methods.begin(), m.methods.end(),
                               [&](const brine::MethodMetrics& x) { return x.name == name; });
  return it == m.methods.end() ? nullptr : &*it;
}

struct Served {
  explicit Served(brine::ServerOptions o = {}) : server(std::move(o)) {
    server.handle("add", [](const std::int32_t& v) { return v + 1; });
    server.handle("fail", [](const std::int32_t&) -> std::int32_t {
      throw std::runtime_error("refused on purpose");
    });
    server.handle("count", [](const std::int32_t& n, brine::Writer<std::int32_t>& out) {
      for (std::int32_t i = 0; i < n; ++i) out.write(i);
    });
    server.handle("we\"ird", [](const std::int32_t& v) { return v; });
    server.expose<Bank>("bank", std::make_shared<BankImpl>());
    uri = server.listen("tcp://127.0.0.1:0");
    server.start();
  }
  brine::Server server;
  std::string uri;
};

TEST(Metrics, CountCallsByMethodAndStatusWithTheirLatencies) {
  Served s;
  brine::Client client(s.uri);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(client.call<std::int32_t>("add", std::int32_t{i}), i + 1);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(client.try_call<std::int32_t>("fail", std::int32_t{0}).status().code,
              StatusCode::internal);
  }
  EXPECT_EQ(client.try_call<std::int32_t>("nope", std::int32_t{0}).status().code,
            StatusCode::not_found);

  const brine::ServerMetrics m = s.server.metrics();
  const auto* add = find(m, "add");
  ASSERT_NE(add, nullptr);
  EXPECT_EQ(add->by_status[0], 5u);
  EXPECT_EQ(add->calls(), 5u);
  EXPECT_EQ(add->failures(), 0u);
  std::uint64_t in_buckets = 0;
  for (auto b : add->buckets) in_buckets += b;
  EXPECT_EQ(in_buckets, 5u);
  EXPECT_GT(add->seconds_total, 0.0);
  EXPECT_GT(add->percentile(0.5), 0.0);
  EXPECT_LE(add->percentile(0.5), add->percentile(0.99));

  const auto* fail = find(m, "fail");
  ASSERT_NE(fail, nullptr);
  EXPECT_EQ(fail->by_status[std::size_t(StatusCode::internal)], 2u);
  EXPECT_EQ(fail->failures(), 2u);
  // A method the server does not have is counted without its (the caller's) name.
  const auto* unknown = find(m, "~unknown");
  ASSERT_NE(unknown, nullptr);
  EXPECT_EQ(unknown->by_status[std::size_t(StatusCode::not_found)], 1u);
  EXPECT_EQ(find(m, "nope"), nullptr);
  EXPECT_EQ(m.calls_refused, 1u);

  ASSERT_GE(m.recent_errors.size(), 3u);
  EXPECT_EQ(m.recent_errors[0].method, "~unknown");  // newest first
  EXPECT_EQ(m.recent_errors[1].method, "fail");
  EXPECT_EQ(m.recent_errors[1].status.code, StatusCode::internal);
  EXPECT_EQ(m.recent_errors[1].status.message, "refused on purpose");

  EXPECT_EQ(m.connections_open, 1u);
  EXPECT_EQ(m.connections_total, 1u);
  EXPECT_EQ(m.calls_in_flight, 0u);
  EXPECT_GT(m.bytes_received, 8u * 20);  // eight requests of 20 bytes and more
  EXPECT_GT(m.bytes_sent, 8u * 20);
  EXPECT_GT(m.uptime.count(), 0);
}

TEST(Metrics, StreamsAndFactoryMadeObjectsAreCounted) {
  Served s;
  brine::Client client(s.uri);
  auto stream = client.stream<std::int32_t>("count", std::int32_t{3});
  int items = 0;
  while (stream.read()) ++items;
  EXPECT_EQ(items, 3);
  ASSERT_TRUE(stream.status().ok()) << stream.status().message;
  auto bank = client.remote<Bank>("bank");
  auto a = bank.open("x");
  auto b = bank.open("y");
  EXPECT_EQ(a.deposit(5), 5);
  EXPECT_EQ(b.deposit(7), 7);

  ASSERT_TRUE(eventually([&] { return s.server.metrics().streams_open == 0; }));
  const brine::ServerMetrics m = s.server.metrics();
  EXPECT_EQ(m.streams_total, 1u);
  ASSERT_NE(find(m, "count"), nullptr);
  EXPECT_EQ(find(m, "count")->by_status[0], 1u);
  ASSERT_NE(find(m, "bank.open"), nullptr);
  EXPECT_EQ(find(m, "bank.open")->by_status[0], 2u);
  // Every object a factory made, under its interface: not one series per object.
  ASSERT_NE(find(m, "@Account.deposit"), nullptr);
  EXPECT_EQ(find(m, "@Account.deposit")->by_status[0], 2u);
  EXPECT_EQ(m.remote_objects, 2u);
}

TEST(Metrics, ThePrometheusTextHoldsTheFigures) {
  Served s;
  brine::Client client(s.uri);
  for (int i = 0; i < 3; ++i) (void)client.call<std::int32_t>("add", std::int32_t{i});
  (void)client.call<std::int32_t>("we\"ird", std::int32_t{1});
  const std::string text = brine::prometheus_text(s.server.metrics());
  const auto has = [&](const std::string& line) {
    return text.find("\n" + line + "\n") != std::string::npos;
  };
  EXPECT_TRUE(has("# TYPE brine_server_calls_total counter")) << text;
  EXPECT_TRUE(has("brine_server_calls_total{method=\"add\",code=\"OK\"} 3")) << text;
  EXPECT_TRUE(has("brine_server_call_duration_seconds_bucket{method=\"add\",le=\"+Inf\"} 3"));
  EXPECT_TRUE(has("brine_server_call_duration_seconds_count{method=\"add\"} 3"));
  // The first bound as Prometheus writes it (its count depends on the machine).
  EXPECT_NE(text.find("\nbrine_server_call_duration_seconds_bucket{method=\"add\",le=\"1e-05\"} "),
            std::string::npos);
  // Label values are escaped.
  EXPECT_TRUE(has("brine_server_calls_total{method=\"we\\\"ird\",code=\"OK\"} 1")) << text;
  EXPECT_TRUE(has("brine_server_connections_open 1")) << text;
  EXPECT_TRUE(has("# TYPE brine_server_connections_open gauge"));
}

TEST(Metrics, OffCountsNoCalls) {
  Served s(brine::ServerOptions{.metrics = false});
  brine::Client client(s.uri);
  EXPECT_EQ(client.call<std::int32_t>("add", std::int32_t{1}), 2);
  const brine::ServerMetrics m = s.server.metrics();
  EXPECT_TRUE(m.methods.empty());
  EXPECT_EQ(m.connections_open, 1u);  // what the server knows anyway
}

TEST(Metrics, PercentilesInterpolateWithinBuckets) {
  brine::MethodMetrics m;
  EXPECT_EQ(m.percentile(0.5), 0.0);
  m.by_status[0] = 10;
  m.buckets[3] = 10;  // all between 50 us and 100 us
  EXPECT_DOUBLE_EQ(m.percentile(0.5), 0.000075);
  EXPECT_DOUBLE_EQ(m.percentile(1.0), 0.0001);
  m.by_status[0] = 11;
  m.buckets.back() = 1;  // one above every bound
  EXPECT_DOUBLE_EQ(m.percentile(1.0), brine::kLatencyBuckets.back());
}

TEST(Describe, ATypedClientReadsIt) {
  Served s;
  brine::Client client(s.uri);  // contracts on: built-ins take none, so none is checked
  const brine::JsonText d = client.call<brine::JsonText>("~describe", brine::JsonText{"[]"});
  EXPECT_NE(d.text.find(R"x("name":"add","object":"","interface":"","method":"add",)x"
                        R"x("declaration":"int add(int)")x"),
            std::string::npos)
      << d.text;
  EXPECT_NE(d.text.find(R"("json":{"request":0,"response":0})"), std::string::npos) << d.text;
  EXPECT_NE(d.text.find(R"("name":"bank.open","object":"bank","interface":"Bank")"),
            std::string::npos);
  EXPECT_NE(d.text.find(R"("name":"@Account.deposit","object":"@","interface":"Account")"),
            std::string::npos);
  EXPECT_NE(d.text.find(R"("shape":"server-stream")"), std::string::npos);
  EXPECT_EQ(d.text.find("~ready"), std::string::npos);  // built-ins are not listed
  const brine::JsonText ready = client.call<brine::JsonText>("~ready", brine::JsonText{"[]"});
  EXPECT_EQ(ready.text, R"({"status":"ready"})");
}

TEST(Describe, CanBeTurnedOffAndIsServedInJsonWhateverTheCodecs) {
  Served off(brine::ServerOptions{.describe = false});
  brine::Client c1(off.uri);
  EXPECT_EQ(c1.try_call<brine::JsonText>("~describe", brine::JsonText{"[]"}).status().code,
            StatusCode::not_found);
  Served cereal_only(brine::ServerOptions{.codecs = {"cereal"}});
  brine::Client c2(cereal_only.uri);
  EXPECT_TRUE(c2.try_call<brine::JsonText>("~describe", brine::JsonText{"[]"}));
  EXPECT_EQ(c2.try_call<brine::JsonText>("add", brine::JsonText{"1"}).status().code,
            StatusCode::unimplemented);  // a user's method is not served in json there
}

TEST(Describe, BuiltinNamesAreBrinesOwn) {
  brine::Server server;
  EXPECT_THROW(server.handle("~mine", [](const std::int32_t& v) { return v; }), std::logic_error);
}

TEST(JsonText, RefusesWhatIsNotOneJsonValue) {
  Served s;
  brine::Client client(s.uri);
  const auto r = client.try_call<brine::JsonText>("add", brine::JsonText{"{\"a\":"});
  EXPECT_EQ(r.status().code, StatusCode::invalid_argument);
  EXPECT_EQ(r.status().retry, brine::Retry::not_sent);
  EXPECT_EQ(client.call<brine::JsonText>("add", brine::JsonText{" 41 "}).text, "42");
}

TEST(HttpScheme, IsServedNotDialed) {
  try {
    brine::Client client("http://127.0.0.1:1");
    FAIL() << "a client dialed http://";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("front door"), std::string::npos) << e.what();
  }
}

}  // namespace
