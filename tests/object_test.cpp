// Remote objects end to end, in one process: every body runs over every transport and over each
// codec the interface's types allow (plain C++ types: cereal and json; protobuf messages:
// protobuf).
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "eventually.hpp"
#include "families.hpp"
#include "params.hpp"
#include "test_server.hpp"

namespace objects {

struct Point {
  double x = 0;
  double y = 0;
  template <class A>
  void serialize(A& ar) {
    ar(CEREAL_NVP(x), CEREAL_NVP(y));
  }
  bool operator==(const Point&) const = default;
};

// Objects alive on the server, counted by their constructors and destructors.
struct Census {
  std::atomic<int> live{0};
};

// --- plain C++ types: cereal and json ----------------------------------------------------------
struct Account {
  virtual ~Account() = default;
  virtual void deposit(std::int64_t amount) = 0;
  virtual std::int64_t balance() const = 0;
};
BRINE_INTERFACE(Account, deposit, balance);

struct Calc {
  virtual ~Calc() = default;
  virtual double add(double a, double b) = 0;
  virtual double divide(double a, double b) = 0;
  virtual void reset() = 0;
  virtual std::int64_t resets() = 0;
  virtual brine::Ref<Account> open(std::string owner) = 0;
  virtual std::string join(const std::vector<std::string>& parts, const std::string& sep,
                           int times) = 0;
  virtual Point midpoint(Point a, Point b) = 0;
};
BRINE_INTERFACE(Calc, add, divide, reset, resets, open, join, midpoint);

// What an older or newer client believes Calc to be: one method the server lacks.
struct CalcV2 {
  virtual ~CalcV2() = default;
  virtual double add(double a, double b) = 0;
  virtual double cube(double a) = 0;
};
BRINE_INTERFACE(CalcV2, add, cube);

class AccountImpl final : public Account {
 public:
  explicit AccountImpl(Census& census) : census_(census) { ++census_.live; }
  ~AccountImpl() override { --census_.live; }
  void deposit(std::int64_t amount) override { balance_ += amount; }
  std::int64_t balance() const override { return balance_; }

 private:
  Census& census_;
  std::atomic<std::int64_t> balance_{0};
};

class CalcImpl final : public Calc {
 public:
  explicit CalcImpl(Census& census) : census_(census) {}
  double add(double a, double b) override { return a + b; }
  double divide(double a, double b) override {
    if (b == 0) throw std::domain_error("division by zero");
    return a / b;
  }
  void reset() override { ++resets_; }
  std::int64_t resets() override { return resets_; }
  brine::Ref<Account> open(std::string owner) override {
    if (owner.empty()) throw std::invalid_argument("an account needs an owner");
    return brine::make_ref<Account, AccountImpl>(census_);
  }
  std::string join(const std::vector<std::string>& parts, const std::string& sep,
                   int times) override {
    std::string out;
    for (int t = 0; t < times; ++t) {
      for (const auto& p : parts) out += (out.empty() ? "" : sep) + p;
    }
    return out;
  }
  Point midpoint(Point a, Point b) override { return {(a.x + b.x) / 2, (a.y + b.y) / 2}; }

 private:
  Census& census_;
  std::atomic<std::int64_t> resets_{0};
};

// --- protobuf messages: one message in, one out ------------------------------------------------
using calc::pb::AddRequest;
using calc::pb::DivideRequest;
using calc::pb::Number;

Number number(double v) {
  Number n;
  n.set_value(v);
  return n;
}

struct PbAccount {
  virtual ~PbAccount() = default;
  virtual void deposit(const Number& amount) = 0;
  virtual Number balance() = 0;
};
BRINE_INTERFACE(PbAccount, deposit, balance);

struct PbCalc {
  virtual ~PbCalc() = default;
  virtual Number add(const AddRequest& r) = 0;
  virtual Number divide(const DivideRequest& r) = 0;
  virtual void reset() = 0;
  virtual Number resets() = 0;
  virtual brine::Ref<PbAccount> open(const Number& owner) = 0;
};
BRINE_INTERFACE(PbCalc, add, divide, reset, resets, open);

struct PbCalcV2 {
  virtual ~PbCalcV2() = default;
  virtual Number add(const AddRequest& r) = 0;
  virtual Number cube(const Number& a) = 0;
};
BRINE_INTERFACE(PbCalcV2, add, cube);

class PbAccountImpl final : public PbAccount {
 public:
  explicit PbAccountImpl(Census& census) : census_(census) { ++census_.live; }
  ~PbAccountImpl() override { --census_.live; }
  void deposit(const Number& amount) override { balance_ += amount.value(); }
  Number balance() override { return number(balance_); }

 private:
  Census& census_;
  std::atomic<double> balance_{0};
};

class PbCalcImpl final : public PbCalc {
 public:
  explicit PbCalcImpl(Census& census) : census_(census) {}
  Number add(const AddRequest& r) override { return number(r.a() + r.b()); }
  Number divide(const DivideRequest& r) override {
    if (r.denominator() == 0) throw std::domain_error("division by zero");
    return number(r.numerator() / r.denominator());
  }
  void reset() override { ++resets_; }
  Number resets() override { return number(double(resets_)); }
  brine::Ref<PbAccount> open(const Number&) override {
    return brine::make_ref<PbAccount, PbAccountImpl>(census_);
  }

 private:
  Census& census_;
  std::atomic<std::int64_t> resets_{0};
};

// --- one static interface over both, so each body is written once ------------------------------
struct PlainFamily {
  using I = Calc;
  using V2 = CalcV2;
  using Impl = CalcImpl;
  static double add(const brine::Remote<I>& c, double a, double b) { return c.add(a, b); }
  static brine::Result<double> try_divide(const brine::Remote<I>& c, double a, double b) {
    return c.try_call().divide(a, b);
  }
  static double resets(const brine::Remote<I>& c) { return double(c.resets()); }
  static brine::Remote<Account> open(const brine::Remote<I>& c) { return c.open("ann"); }
  static void deposit(const brine::Remote<Account>& a, double v) { a.deposit(std::int64_t(v)); }
  static double balance(const brine::Remote<Account>& a) { return double(a.balance()); }
  static double cube(const brine::Remote<V2>& c, double a) { return c.cube(a); }
  static std::future<double> add_async(const brine::Remote<I>& c, double a, double b) {
    return c.async().add(a, b);
  }
};

struct PbFamily {
  using I = PbCalc;
  using V2 = PbCalcV2;
  using Impl = PbCalcImpl;
  static AddRequest add_request(double a, double b) {
    AddRequest r;
    r.set_a(a);
    r.set_b(b);
    return r;
  }
  static double add(const brine::Remote<I>& c, double a, double b) {
    return c.add(add_request(a, b)).value();
  }
  static brine::Result<double> try_divide(const brine::Remote<I>& c, double a, double b) {
    DivideRequest r;
    r.set_numerator(a);
    r.set_denominator(b);
    auto n = c.try_call().divide(r);
    if (!n.ok()) return n.status();
    return n->value();
  }
  static double resets(const brine::Remote<I>& c) { return c.resets().value(); }
  static brine::Remote<PbAccount> open(const brine::Remote<I>& c) { return c.open(number(1)); }
  static void deposit(const brine::Remote<PbAccount>& a, double v) { a.deposit(number(v)); }
  static double balance(const brine::Remote<PbAccount>& a) { return a.balance().value(); }
  static double cube(const brine::Remote<V2>& c, double a) { return c.cube(number(a)).value(); }
  static std::future<double> add_async(const brine::Remote<I>& c, double a, double b) {
    // The future carries a message; the test wants the number.
    return std::async(std::launch::deferred,
                      [f = c.async().add(add_request(a, b))]() mutable { return f.get().value(); });
  }
};

}  // namespace objects

namespace {

using brine::Client;
using brine::RpcError;
using brine::StatusCode;
using namespace brine_test;
using namespace objects;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class Objects : public testing::TestWithParam<Param> {
 protected:
  template <class F>
  void run(F&& body) {
    if (GetParam().codec == "protobuf") {
      body.template operator()<PbFamily>();
    } else {
      body.template operator()<PlainFamily>();
    }
  }
  brine::ClientOptions client_options() const {
    brine::ClientOptions o;
    o.codec = GetParam().codec;
    o.timeout = 10s;
    o.tls.ca_file = tls_paths().ca;
    return o;
  }
  // A server with one object "calc" of the family's interface.
  template <class F>
  struct Served {
    explicit Served(const Param& p, brine::ServerOptions options = quick_peer_timeout())
        : server(std::move(options)), impl(std::make_shared<typename F::Impl>(census)) {
      server.expose<typename F::I>("calc", impl);
      if (test_transport(p.transport).tls) (void)tls_files();
      uri = server.listen(listen_uri(p.transport));
      server.start();
    }
    static brine::ServerOptions quick_peer_timeout() {
      brine::ServerOptions o;
      o.heartbeat_interval = 200ms;
      o.heartbeat_timeout = 1000ms;
      o.tls.certificate_file = tls_paths().server_crt;
      o.tls.private_key_file = tls_paths().server_key;
      return o;
    }
    Census census;
    brine::Server server;
    std::shared_ptr<typename F::Impl> impl;
    std::string uri;
  };
  brine::ClientOptions quick_client_options() const {
    brine::ClientOptions o = client_options();
    o.heartbeat_interval = 200ms;
    o.heartbeat_timeout = 1000ms;
    return o;
  }
};

TEST_P(Objects, ProxyCallsReturnAnswers) {
  run([&]<class F>() {
    Served<F> s(GetParam());
    Client c(s.uri, client_options());
    auto calc = c.template remote<typename F::I>("calc");
    EXPECT_EQ(calc.object_name(), "calc");
    EXPECT_EQ(F::add(calc, 2, 3), 5);
    EXPECT_EQ(F::add(calc, -1.5, 1.5), 0);
    calc.reset();  // void: returns once the server ran it
    calc.reset();
    EXPECT_EQ(F::resets(calc), 2);
    EXPECT_EQ(F::add_async(calc, 20, 22).get(), 42);
  });
}

// One client calls objects of both type families on one server, preferring this grid cell's
// codec: each call goes in the first codec its types can use and the server serves (a server
// that serves only protobuf makes the plain family's calls fail, naming what it serves).
TEST_P(Objects, OneClientCallsObjectsOfEveryTypeFamily) {
  Census census;
  brine::ServerOptions options = Served<PlainFamily>::quick_peer_timeout();
  brine::Server server(options);
  server.expose<Calc>("plain", std::make_shared<CalcImpl>(census));
  server.expose<PbCalc>("pb", std::make_shared<PbCalcImpl>(census));
  if (test_transport(GetParam().transport).tls) (void)tls_files();
  const std::string uri = server.listen(listen_uri(GetParam().transport));
  server.start();
  Client c(uri, client_options());
  auto plain = c.remote<Calc>("plain");
  auto pb = c.remote<PbCalc>("pb");
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(PlainFamily::add(plain, 2, 3), 5);
    EXPECT_EQ(PbFamily::add(pb, 2, 3), 5);
    EXPECT_EQ(PlainFamily::add_async(plain, 20, 22).get(), 42);
    EXPECT_EQ(PbFamily::add_async(pb, 1, 2).get(), 3);
  }
  // A factory's object in the other family's codec is a reference like any other.
  auto account = plain.open("ann");
  account.deposit(5);
  EXPECT_EQ(account.balance(), 5);
}

TEST_P(Objects, ExceptionKeepsMessageAndType) {
  run([&]<class F>() {
    Served<F> s(GetParam());
    Client c(s.uri, client_options());
    auto calc = c.template remote<typename F::I>("calc");
    const brine::Result<double> r = F::try_divide(calc, 1, 0);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.code(), StatusCode::internal);
    EXPECT_EQ(r.status().message, "division by zero");
    EXPECT_EQ(r.status().type, "std::domain_error");
    EXPECT_EQ(*F::try_divide(calc, 1, 4), 0.25);
  });
}

TEST_P(Objects, MissingObjectOrMethodIsNotFoundNamingIt) {
  run([&]<class F>() {
    Served<F> s(GetParam());
    Client c(s.uri, client_options());
    try {
      (void)F::add(c.template remote<typename F::I>("nobody"), 1, 2);
      ADD_FAILURE() << "no exception";
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), StatusCode::not_found);
      EXPECT_NE(std::string(e.what()).find("'nobody'"), std::string::npos) << e.what();
    }
    auto v2 = c.template remote<typename F::V2>("calc");
    try {
      (void)F::cube(v2, 3);
      ADD_FAILURE() << "no exception";
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), StatusCode::not_found);
      EXPECT_NE(std::string(e.what()).find("no method 'cube'"), std::string::npos) << e.what();
    }
  });
}

TEST_P(Objects, FactoryObjectIsFreedWhenTheClientDropsIt) {
  run([&]<class F>() {
    Served<F> s(GetParam());
    Client c(s.uri, client_options());
    auto calc = c.template remote<typename F::I>("calc");
    {
      auto account = F::open(calc);
      EXPECT_EQ(account.object_name().front(), '@');
      F::deposit(account, 30);
      auto copy = account;  // copies share one reference
      F::deposit(copy, 12);
      EXPECT_EQ(F::balance(account), 42);
      EXPECT_EQ(s.census.live.load(), 1);
    }
    EXPECT_TRUE(eventually([&] { return s.census.live == 0; })) << s.census.live;
    EXPECT_EQ(F::add(calc, 1, 1), 2);  // the connection carries on
  });
}

TEST_P(Objects, FactoryObjectsAreFreedWhenTheClientDisconnects) {
  run([&]<class F>() {
    Served<F> s(GetParam());
    auto c = std::make_unique<Client>(s.uri, quick_client_options());
    auto calc = c->template remote<typename F::I>("calc");
    std::vector<decltype(F::open(calc))> accounts;
    for (int i = 0; i < 5; ++i) accounts.push_back(F::open(calc));
    F::deposit(accounts[3], 7);
    EXPECT_EQ(s.census.live.load(), 5);
    c->close();  // the references are still held, but their connection is gone
    EXPECT_TRUE(eventually([&] { return s.census.live == 0; })) << s.census.live;
    try {
      (void)F::balance(accounts[3]);
      ADD_FAILURE() << "no exception";
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), StatusCode::cancelled);
    }
  });
}

// Issue 13: nothing limited how many remote objects one connection may hold.
TEST_P(Objects, AConnectionHoldsAtMostMaxObjectsPerConnection) {
  run([&]<class F>() {
    auto options = Served<F>::quick_peer_timeout();
    options.max_objects_per_connection = 3;
    Served<F> s(GetParam(), options);
    Client c(s.uri, client_options());
    auto calc = c.template remote<typename F::I>("calc");
    std::vector<decltype(F::open(calc))> accounts;
    for (int i = 0; i < 3; ++i) accounts.push_back(F::open(calc));
    try {
      (void)F::open(calc);
      ADD_FAILURE() << "a fourth object was kept";
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), StatusCode::resource_exhausted) << e.what();
      EXPECT_NE(e.message().find("max_objects_per_connection"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(eventually([&] { return s.census.live == 3; })) << s.census.live;
    accounts.pop_back();  // released: room for one more
    EXPECT_TRUE(eventually([&] { return s.census.live == 2; })) << s.census.live;
    accounts.push_back(F::open(calc));
    F::deposit(accounts.back(), 5);
    EXPECT_EQ(F::balance(accounts.back()), 5);
  });
}

TEST_P(Objects, ReferenceIsPrivateToItsConnection) {
  run([&]<class F>() {
    Served<F> s(GetParam());
    Client a(s.uri, client_options());
    Client b(s.uri, client_options());
    auto account = F::open(a.template remote<typename F::I>("calc"));
    F::deposit(account, 5);
    // Another connection that learns the name still cannot reach the object.
    using Acc = typename decltype(F::open(std::declval<brine::Remote<typename F::I>>()))::interface;
    try {
      (void)F::balance(b.template remote<Acc>(account.object_name()));
      ADD_FAILURE() << "no exception";
    } catch (const RpcError& e) {
      EXPECT_EQ(e.code(), StatusCode::not_found);
      EXPECT_NE(std::string(e.what()).find(account.object_name()), std::string::npos);
    }
    EXPECT_EQ(F::balance(account), 5);
  });
}

TEST_P(Objects, ManyThreadsShareOneProxy) {
  run([&]<class F>() {
    Served<F> s(GetParam());
    Client c(s.uri, client_options());
    const auto calc = c.template remote<typename F::I>("calc");
    std::vector<std::thread> threads;
    std::atomic<int> good{0};
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 50; ++i) {
          if (F::add(calc, t, i) == t + i) ++good;
          auto account = F::open(calc);
          F::deposit(account, i);
          if (F::balance(account) == i) ++good;
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(good.load(), 400);
    EXPECT_TRUE(eventually([&] { return s.census.live == 0; })) << s.census.live;
  });
}

INSTANTIATE_TEST_SUITE_P(AllTransportsAndCodecs, Objects, testing::ValuesIn(grid(transports())),
                         ParamName{});

// --- the plain interface's richer types: cereal and json ----------------------------------------
class PlainObjects : public testing::TestWithParam<std::string> {};

TEST_P(PlainObjects, ManyArgumentsStructsAndContainers) {
  Census census;
  brine::Server server;
  server.expose<Calc>("calc", std::make_shared<CalcImpl>(census));
  const std::string uri = server.listen("tcp://127.0.0.1:0");
  server.start();
  Client c(uri, {.codec = GetParam()});
  auto calc = c.remote<Calc>("calc");
  EXPECT_EQ(calc.join({"a", "b", "c"}, "-", 2), "a-b-c-a-b-c");
  EXPECT_EQ(calc.join({}, "-", 3), "");
  EXPECT_EQ(calc.midpoint({0, 0}, {2, 4}), (Point{1, 2}));
  // A factory's own exception reaches the caller; no object is left behind.
  try {
    (void)calc.open("");
    ADD_FAILURE() << "no exception";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.remote_type(), "std::invalid_argument");
  }
  EXPECT_EQ(census.live.load(), 0);
  // Per-call options travel with the proxy.
  EXPECT_EQ(calc.with({.timeout = 2s}).add(1, 2), 3);
  const brine::Result<void> done = calc.try_call().reset();
  EXPECT_TRUE(done.ok());
}

TEST_P(PlainObjects, BorrowedObjectAndSeveralObjectsOnOneServer) {
  Census census;
  CalcImpl first(census);
  CalcImpl second(census);
  brine::Server server;
  server.expose<Calc>("first", first).expose<Calc>("second", second);
  EXPECT_THROW(server.expose<Calc>("first", first), std::logic_error);
  EXPECT_THROW(server.expose<Calc>("bad.name", first), std::logic_error);
  EXPECT_THROW(server.expose<Calc>("@1", first), std::logic_error);
  const std::string uri = server.listen("unix://@brine-objects-" + std::to_string(::getpid()));
  server.start();
  Client c(uri, {.codec = GetParam()});
  c.remote<Calc>("first").reset();
  EXPECT_EQ(c.remote<Calc>("first").resets(), 1);
  EXPECT_EQ(c.remote<Calc>("second").resets(), 0);
}

INSTANTIATE_TEST_SUITE_P(Codecs, PlainObjects, testing::Values("cereal", "json"));

// --- configuration errors found at start, not at the first call ---------------------------------
TEST(ObjectCodecs, ServerRefusesToStartWithACodecTheTypesCannotUse) {
  Census census;
  brine::Server server({.codecs = {"protobuf"}});
  server.expose<Calc>("calc", std::make_shared<CalcImpl>(census));
  try {
    server.start();
    ADD_FAILURE() << "started";
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("calc.add"), std::string::npos) << what;
    EXPECT_NE(what.find("protobuf"), std::string::npos) << what;
    EXPECT_NE(what.find("double"), std::string::npos) << what;  // the types
  }
}

TEST(ObjectCodecs, TypedHandlersAreCheckedAtStartToo) {
  brine::Server server({.codecs = {"protobuf"}});
  server.handle(calc::kAdd, [](const calc::AddRequest& r) { return calc::Number{r.a + r.b}; });
  try {
    server.start();
    ADD_FAILURE() << "started";
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    // One line: the method, its declaration, what the server serves, what the types can use.
    EXPECT_EQ(what,
              "method 'add' (calc::Number add(calc::AddRequest)) can use none of the codecs this "
              "server serves (protobuf): its types can use cereal, json");
  }
}

// Issue 13: [server] codecs demanded that every method serve every listed codec. It means "serve
// these where the types allow": a server of cereal-typed and protobuf-typed objects and
// handlers with codecs = {cereal, protobuf} starts and serves each in its own.
TEST(ObjectCodecs, ACodecListServesEachMethodWhereItsTypesAllow) {
  Census census;
  brine::Server server({.codecs = {"cereal", "protobuf"}});
  server.expose<Calc>("calc", std::make_shared<CalcImpl>(census));
  server.expose<PbCalc>("pbcalc", std::make_shared<PbCalcImpl>(census));
  server.handle(calc::kAdd, [](const calc::AddRequest& r) { return calc::Number{r.a + r.b}; });
  const std::string uri = server.listen("mem://object-codecs-" + std::to_string(::getpid()));
  ASSERT_NO_THROW(server.start());
  // One client, preferring json (which this server does not serve), calls all three.
  brine::Client client(uri, {.codec = "json"});
  EXPECT_EQ(client.remote<Calc>("calc").add(2, 3), 5);
  EXPECT_EQ(client.call(calc::kAdd, {2, 3}).value, 5);
  calc::pb::AddRequest r;
  r.set_a(2);
  r.set_b(3);
  EXPECT_EQ(client.remote<PbCalc>("pbcalc").add(r).value(), 5);
}

TEST(ObjectCodecs, FactoryResultsInterfacesAreCheckedToo) {
  // PbCalc's own methods all use protobuf, and so do those of the PbAccount objects it makes;
  // with json also configured, every method is checked for json as well.
  Census census;
  brine::Server ok({.codecs = {"protobuf", "json"}});
  ok.expose<PbCalc>("calc", std::make_shared<PbCalcImpl>(census));
  EXPECT_NO_THROW(ok.start());
  brine::Server bad({.codecs = {"cereal"}});
  bad.expose<PbCalc>("calc", std::make_shared<PbCalcImpl>(census));
  EXPECT_THROW(bad.start(), std::invalid_argument);
}

TEST(ObjectCodecs, HandlerCodecConflictIsRefusedWithAHint) {
  brine::Server server;
  server.handle("add", [](const calc::AddRequest& r) { return calc::Number{r.a + r.b}; });
  try {
    server.handle("add", [](const AddRequest& r) { return number(r.a() + r.b()); });
    ADD_FAILURE() << "registered twice for json";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("json"), std::string::npos) << e.what();
  }
}

}  // namespace
