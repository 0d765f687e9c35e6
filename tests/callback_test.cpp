// Objects passed both ways, in one process: a client passes one of its own objects as an
// argument (a Remote<T> parameter) and the server calls it back over the same connection, while
// the client waits in a call or later; a reference knows when its connection was lost. Every
// body runs over every transport and codec (plain C++ types: cereal and json; protobuf messages:
// protobuf).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "eventually.hpp"
#include "families.hpp"
#include "params.hpp"
#include "test_server.hpp"

namespace callbacks {

// --- plain C++ types: cereal and json -----------------------------------------------------------
struct Listener {
  virtual ~Listener() = default;
  virtual std::int64_t on_tick(std::int64_t n) = 0;
};
BRINE_INTERFACE(Listener, on_tick);

// A listener under the same method name, with another parameter type: another contract.
struct OtherListener {
  virtual ~OtherListener() = default;
  virtual std::int64_t on_tick(std::string n) = 0;
};
BRINE_INTERFACE(OtherListener, on_tick);

struct Ticker {
  virtual ~Ticker() = default;
  // Keeps an OtherListener (calls nothing).
  virtual void hold(brine::Remote<OtherListener> l) = 0;
  // Calls l.on_tick(1), (2) and (3) before it answers; the sum of their answers.
  virtual std::int64_t tick(brine::Remote<Listener> l) = 0;
  // Keeps l, and calls l.on_tick(100) from a thread of its own once the call has returned.
  virtual void subscribe(brine::Remote<Listener> l) = 0;
  // Calls on_tick(n) of every kept listener: how many answered.
  virtual std::int64_t publish(std::int64_t n) = 0;
  // Forgets the kept listeners.
  virtual void drop() = 0;
  // 7: what a listener calls while the server waits for its answer.
  virtual std::int64_t seven() = 0;
};
BRINE_INTERFACE(Ticker, hold, tick, subscribe, publish, drop, seven);

// --- protobuf messages: one message (or one object) in, one out ----------------------------------
using calc::pb::Number;

struct PbListener {
  virtual ~PbListener() = default;
  virtual Number on_tick(const Number& n) = 0;
};
BRINE_INTERFACE(PbListener, on_tick);

struct PbTicker {
  virtual ~PbTicker() = default;
  virtual void hold(brine::Remote<OtherListener> l) = 0;
  virtual Number tick(brine::Remote<PbListener> l) = 0;
  virtual void subscribe(brine::Remote<PbListener> l) = 0;
  virtual Number publish(const Number& n) = 0;
  virtual void drop() = 0;
  virtual Number seven() = 0;
};
BRINE_INTERFACE(PbTicker, hold, tick, subscribe, publish, drop, seven);

struct PlainFamily {
  using Listener = callbacks::Listener;
  using Ticker = callbacks::Ticker;
  using N = std::int64_t;
  using Arg = std::int64_t;
  static N num(std::int64_t v) { return v; }
  static std::int64_t val(N n) { return n; }
};
struct PbFamily {
  using Listener = PbListener;
  using Ticker = PbTicker;
  using N = Number;
  using Arg = const Number&;
  static N num(std::int64_t v) {
    Number n;
    n.set_value(double(v));
    return n;
  }
  static std::int64_t val(const N& n) { return std::int64_t(n.value()); }
};

// What the client's listeners saw, and how many are alive.
struct Tally {
  std::atomic<int> live{0};
  std::atomic<int> calls{0};
  std::atomic<std::int64_t> last{0};
  std::mutex mu;
  std::vector<std::thread::id> threads;
};

// Answers on_tick(n) with 2n; 13 throws, 99 outlasts the server's callback timeout, 50 asks
// the server (through `ticker`) while the server waits for this answer.
template <class F>
class ListenerImpl final : public F::Listener {
 public:
  explicit ListenerImpl(std::shared_ptr<Tally> tally) : tally_(std::move(tally)) { ++tally_->live; }
  ~ListenerImpl() override { --tally_->live; }
  typename F::N on_tick(typename F::Arg arg) override {
    const std::int64_t n = F::val(arg);
    ++tally_->calls;
    tally_->last = n;
    {
      std::lock_guard lk(tally_->mu);
      tally_->threads.push_back(std::this_thread::get_id());
    }
    if (n == 13) throw std::invalid_argument("13 is unlucky");
    if (n == 99) std::this_thread::sleep_for(std::chrono::milliseconds(800));
    if (n == 50 && ticker) return F::num(n + F::val(ticker->seven()));
    return F::num(2 * n);
  }
  std::optional<brine::Remote<typename F::Ticker>> ticker;

 private:
  std::shared_ptr<Tally> tally_;
};

// What the server's Ticker saw of its calls back.
struct Seen {
  std::mutex mu;
  std::vector<std::string> failures;  // "CODE: message" of each failed call back
  std::atomic<int> background{0};     // subscribe's later call answered
  std::atomic<int> connected{-1};     // connected() of the kept listeners at the last publish
  void fail(const brine::RpcError& e) {
    std::lock_guard lk(mu);
    failures.push_back(std::string(brine::status_name(e.code())) + ": " + e.message());
  }
  std::vector<std::string> take() {
    std::lock_guard lk(mu);
    return std::exchange(failures, {});
  }
};

template <class F>
class TickerImpl final : public F::Ticker {
 public:
  explicit TickerImpl(std::shared_ptr<Seen> seen) : seen_(std::move(seen)) {}
  ~TickerImpl() override {
    for (auto& t : threads_) t.join();
  }
  typename F::N tick(brine::Remote<typename F::Listener> l) override {
    std::int64_t sum = 0;
    for (std::int64_t i = 1; i <= 3; ++i) sum += F::val(l.on_tick(F::num(i)));
    return F::num(sum);
  }
  void subscribe(brine::Remote<typename F::Listener> l) override {
    {
      std::lock_guard lk(mu_);
      kept_.push_back(l);
    }
    std::lock_guard lk(threads_mu_);
    threads_.emplace_back([l, seen = seen_] {
      // After the call has returned: the client is not waiting in a call now.
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      try {
        if (F::val(l.on_tick(F::num(100))) == 200) ++seen->background;
      } catch (const brine::RpcError& e) {
        seen->fail(e);
      }
    });
  }
  typename F::N publish(typename F::Arg n) override {
    std::vector<brine::Remote<typename F::Listener>> kept;
    {
      std::lock_guard lk(mu_);
      kept = kept_;
    }
    std::int64_t answered = 0;
    int connected = 0;
    for (auto& l : kept) {
      connected += l.connected() ? 1 : 0;
      try {
        (void)l.on_tick(n);
        ++answered;
      } catch (const brine::RpcError& e) {
        seen_->fail(e);
      }
    }
    seen_->connected = connected;
    return F::num(answered);
  }
  void drop() override {
    std::lock_guard lk(mu_);
    kept_.clear();
  }
  typename F::N seven() override { return F::num(7); }
  void hold(brine::Remote<OtherListener> l) override {
    std::lock_guard lk(mu_);
    other_.push_back(std::move(l));
  }

 private:
  std::shared_ptr<Seen> seen_;
  std::mutex mu_;
  std::vector<brine::Remote<typename F::Listener>> kept_;
  std::vector<brine::Remote<OtherListener>> other_;
  std::mutex threads_mu_;
  std::vector<std::thread> threads_;
};

// A factory's object, for the lost-connection test.
struct Account {
  virtual ~Account() = default;
  virtual std::int64_t balance() = 0;
};
BRINE_INTERFACE(Account, balance);
struct Bank {
  virtual ~Bank() = default;
  virtual brine::Ref<Account> open() = 0;
  virtual std::int64_t size(std::string blob) = 0;
  // The balance of one of the bank's own accounts, passed back by a client: plus one.
  virtual std::int64_t read(brine::Remote<Account> account) = 0;
};
BRINE_INTERFACE(Bank, open, size, read);

}  // namespace callbacks

namespace {

using brine::Client;
using brine::RpcError;
using brine::StatusCode;
using namespace brine_test;
using namespace callbacks;
using namespace std::chrono_literals;

brine::ServerOptions server_options() {
  brine::ServerOptions o;
  o.heartbeat_interval = 200ms;
  o.heartbeat_timeout = 1000ms;
  o.callback_timeout = 400ms;
  o.tls.certificate_file = tls_paths().server_crt;
  o.tls.private_key_file = tls_paths().server_key;
  return o;
}
// A server with one Ticker, "ticker".
template <class F>
struct Served {
  explicit Served(const Param& p, brine::ServerOptions options = server_options())
      : seen(std::make_shared<Seen>()),
        impl(std::make_shared<TickerImpl<F>>(seen)),
        server(std::move(options)) {
    server.expose<typename F::Ticker>("ticker", impl);
    if (test_transport(p.transport).tls) (void)tls_files();
    uri = server.listen(listen_uri(p.transport));
    server.start();
  }
  std::shared_ptr<Seen> seen;
  std::shared_ptr<TickerImpl<F>> impl;
  brine::Server server;
  std::string uri;
};

class Callbacks : public testing::TestWithParam<Param> {
 protected:
  template <class B>
  void run(B&& body) {
    if (GetParam().codec == "protobuf") {
      body.template operator()<PbFamily>();
    } else {
      body.template operator()<PlainFamily>();
    }
  }
  bool datagram() const { return test_transport(GetParam().transport).datagram; }
  brine::ClientOptions client_options() const {
    brine::ClientOptions o;
    o.codec = GetParam().codec;
    o.timeout = 10s;
    o.heartbeat_interval = 200ms;
    o.heartbeat_timeout = 1000ms;
    o.tls.ca_file = tls_paths().ca;
    return o;
  }
  // A server with a Ticker, a client, and one of the client's listeners subscribed, which the
  // server has called once from a thread of its own. The client keeps no pointer to it.
  template <class F>
  struct Subscribed {
    Subscribed(const Param& p, const brine::ClientOptions& o, bool calls_server = false)
        : s(p),
          c(s.uri, o),
          ticker(c.template remote<typename F::Ticker>("ticker")),
          tally(std::make_shared<Tally>()) {
      auto me = std::make_shared<ListenerImpl<F>>(tally);
      if (calls_server) me->ticker = ticker;
      ticker.subscribe(me);
      EXPECT_TRUE(eventually([&] { return s.seen->background == 1; }))
          << testing::PrintToString(s.seen->take());
    }
    Served<F> s;
    Client c;
    brine::Remote<typename F::Ticker> ticker;
    std::shared_ptr<Tally> tally;
  };
};

TEST_P(Callbacks, TheServerCallsBackWhileTheClientWaitsInACall) {
  run([&]<class F>() {
    Served<F> s(GetParam());
    Client c(s.uri, client_options());
    auto ticker = c.template remote<typename F::Ticker>("ticker");
    auto tally = std::make_shared<Tally>();
    auto me = std::make_shared<ListenerImpl<F>>(tally);
    if (datagram()) {
      // Calls back need the connection both ways: datagrams refuse, saying why.
      try {
        (void)ticker.tick(me);
        ADD_FAILURE() << "no exception";
      } catch (const RpcError& e) {
        EXPECT_EQ(e.code(), StatusCode::unimplemented) << e.what();
        EXPECT_NE(e.message().find("datagrams"), std::string::npos) << e.what();
      }
      return;
    }
    EXPECT_EQ(F::val(ticker.tick(me)), 2 + 4 + 6);
    EXPECT_EQ(tally->calls.load(), 3);
    // A Ref<I> converts as the shared_ptr does.
    EXPECT_EQ(F::val(ticker.tick(brine::Ref<typename F::Listener>(me))), 12);
    EXPECT_EQ(tally->calls.load(), 6);
    {
      // Not on the thread that waited in the call: the client's callback workers run them.
      std::lock_guard lk(tally->mu);
      for (auto id : tally->threads) EXPECT_NE(id, std::this_thread::get_id());
    }
    // Again, and from several threads at once: each call passes its object, each is called.
    std::vector<std::thread> threads;
    std::atomic<int> good{0};
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&] {
        for (int i = 0; i < 10; ++i) {
          if (F::val(ticker.tick(std::make_shared<ListenerImpl<F>>(tally))) == 12) ++good;
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(good.load(), 40);
    // The server dropped each Remote when its call ended: the client frees the objects.
    me.reset();
    EXPECT_TRUE(eventually([&] { return tally->live == 0; })) << tally->live;
  });
}

TEST_P(Callbacks, TheServerCallsBackLaterWhileTheClientIsIdle) {
  run([&]<class F>() {
    if (datagram()) GTEST_SKIP() << "no calls back over datagrams (see the first test)";
    // Nobody waits in a call when subscribe's thread calls: the client's loop reads the server's
    // call and answers it.
    Subscribed<F> sub(GetParam(), client_options());
    EXPECT_EQ(sub.tally->last.load(), 100);
  });
}

TEST_P(Callbacks, ACallbackMayCallTheServerWhileTheServerWaitsForIt) {
  run([&]<class F>() {
    if (datagram()) GTEST_SKIP() << "no calls back over datagrams (see the first test)";
    Subscribed<F> sub(GetParam(), client_options(), true);
    // publish(50) waits for on_tick(50), which calls seven() on the same connection.
    EXPECT_EQ(F::val(sub.ticker.publish(F::num(50))), 1);
    EXPECT_EQ(sub.tally->last.load(), 50);
    EXPECT_TRUE(sub.s.seen->take().empty());
  });
}

TEST_P(Callbacks, ErrorsAndTimeoutsOfCallsBackReachTheServer) {
  run([&]<class F>() {
    if (datagram()) GTEST_SKIP() << "no calls back over datagrams (see the first test)";
    Subscribed<F> sub(GetParam(), client_options());
    // The listener's exception comes back to the server as an error, message and type kept.
    EXPECT_EQ(F::val(sub.ticker.publish(F::num(13))), 0);
    auto failures = sub.s.seen->take();
    ASSERT_EQ(failures.size(), 1u);
    EXPECT_NE(failures[0].find("13 is unlucky"), std::string::npos) << failures[0];
    // A call back that outlasts callback_timeout (400 ms) fails DEADLINE_EXCEEDED.
    EXPECT_EQ(F::val(sub.ticker.publish(F::num(99))), 0);
    failures = sub.s.seen->take();
    ASSERT_EQ(failures.size(), 1u);
    EXPECT_EQ(failures[0].rfind("DEADLINE_EXCEEDED", 0), 0u) << failures[0];
    // And the connection carries on both ways.
    EXPECT_EQ(F::val(sub.ticker.publish(F::num(5))), 1);
    EXPECT_EQ(sub.tally->last.load(), 5);
  });
}

TEST_P(Callbacks, AnObjectTheClientDropsLivesWhileTheServerHoldsIt) {
  run([&]<class F>() {
    if (datagram()) GTEST_SKIP() << "no calls back over datagrams (see the first test)";
    Subscribed<F> sub(GetParam(), client_options());  // keeps no pointer to its listener
    EXPECT_EQ(sub.tally->live.load(), 1);
    EXPECT_EQ(F::val(sub.ticker.publish(F::num(8))), 1);
    EXPECT_EQ(sub.tally->last.load(), 8);
    // The server drops its Remote: the client frees the object.
    sub.ticker.drop();
    EXPECT_TRUE(eventually([&] { return sub.tally->live == 0; })) << sub.tally->live;
    EXPECT_EQ(F::val(sub.ticker.publish(F::num(9))), 0);
  });
}

TEST_P(Callbacks, ObjectsEndWithTheirConnection) {
  run([&]<class F>() {
    if (datagram()) GTEST_SKIP() << "no calls back over datagrams (see the first test)";
    Subscribed<F> sub(GetParam(), client_options());
    sub.c.close();  // the connection ends, and the client's object with it
    EXPECT_TRUE(eventually([&] { return sub.tally->live == 0; })) << sub.tally->live;
    // The server still holds a Remote: it knows the connection is lost, and says so.
    Client other(sub.s.uri, client_options());
    auto ticker = other.template remote<typename F::Ticker>("ticker");
    EXPECT_TRUE(eventually([&] {
      (void)ticker.publish(F::num(1));
      return sub.s.seen->connected == 0;
    }));
    const auto failures = sub.s.seen->take();
    ASSERT_FALSE(failures.empty());
    EXPECT_EQ(failures.back().rfind("UNAVAILABLE", 0), 0u) << failures.back();
  });
}

INSTANTIATE_TEST_SUITE_P(AllTransportsAndCodecs, Callbacks, testing::ValuesIn(grid(transports())),
                         ParamName{});

// --- what is refused, and references that know their connection ------------------------------
brine::ClientOptions cereal_client() {
  brine::ClientOptions o;
  o.codec = "cereal";
  o.timeout = 10s;
  return o;
}
const Param kTcp4{"tcp4", "cereal"};
struct CallbackRules : testing::Test {
  static brine::ClientOptions client_options() { return cereal_client(); }
};
struct LostReferences : testing::TestWithParam<std::string> {
  static brine::ClientOptions client_options() { return cereal_client(); }
};

TEST_F(CallbackRules, AMismatchedCallbackInterfaceIsRefusedNotDecoded) {
  // The server calls on_tick(int64) of a Listener; the object named is an OtherListener, whose
  // on_tick takes a string: the contracts differ, and the call back fails FAILED_PRECONDITION
  // on the client instead of decoding an int64 as a string.
  Served<PlainFamily> s(kTcp4);
  const auto& seen = s.seen;
  const std::string& uri = s.uri;
  Client c(uri, client_options());
  auto ticker = c.remote<Ticker>("ticker");
  struct Other final : OtherListener {
    std::int64_t on_tick(std::string) override {
      ADD_FAILURE() << "called with the wrong types";
      return 1;
    }
  };
  ticker.hold(std::make_shared<Other>());  // the client's first object: "@c1"
  ticker.subscribe(c.remote<Listener>("@c1"));
  EXPECT_TRUE(eventually([&] {
    std::lock_guard lk(seen->mu);
    return !seen->failures.empty();
  }));
  const auto failures = seen->take();
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures[0].rfind("FAILED_PRECONDITION", 0), 0u) << failures[0];
  EXPECT_EQ(seen->background.load(), 0);
}

TEST_F(CallbackRules, ARemoteOfAnotherConnectionCannotBePassed) {
  Served<PlainFamily> s(kTcp4);
  const std::string& uri = s.uri;
  Client a(uri, client_options());
  Client b(uri, client_options());
  // a's proxy of a listener it does not own (a name on a's connection) given to b: refused.
  auto foreign = a.remote<Listener>("nobody");
  auto r = b.remote<Ticker>("ticker").try_call().tick(foreign);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), StatusCode::invalid_argument) << r.status().message;
  EXPECT_NE(r.status().message.find("another connection"), std::string::npos);
}

TEST_F(CallbackRules, AServerWithoutWorkersRefusesToCallBack) {
  brine::ServerOptions so = server_options();
  so.workers = 0;
  Served<PlainFamily> s(kTcp4, so);
  const std::string& uri = s.uri;
  Client c(uri, client_options());
  auto tally = std::make_shared<Tally>();
  auto r = c.remote<Ticker>("ticker").try_call().tick(
      std::make_shared<ListenerImpl<PlainFamily>>(tally));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), StatusCode::failed_precondition) << r.status().message;
  EXPECT_NE(r.status().message.find("workers"), std::string::npos);
  EXPECT_EQ(tally->calls.load(), 0);
}

TEST_F(CallbackRules, AnObjectPassedInACallRefusedUnrunIsFreed) {
  // The server refuses the call before it decodes the arguments (no such object: NOT_FOUND,
  // not run): nothing there can hold the object, so the client frees it.
  Served<PlainFamily> s(kTcp4);
  const std::string& uri = s.uri;
  Client c(uri, client_options());
  auto tally = std::make_shared<Tally>();
  auto r = c.remote<Ticker>("nobody").try_call().tick(
      std::make_shared<ListenerImpl<PlainFamily>>(tally));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.code(), StatusCode::not_found);
  EXPECT_EQ(r.status().retry, brine::Retry::not_run);
  EXPECT_EQ(tally->live.load(), 0);
  // A future's too.
  auto f =
      c.remote<Ticker>("nobody").async().tick(std::make_shared<ListenerImpl<PlainFamily>>(tally));
  EXPECT_THROW((void)f.get(), RpcError);
  EXPECT_EQ(tally->live.load(), 0);
}

TEST_F(CallbackRules, ALocalRemoteCallsTheObjectDirectly) {
  auto tally = std::make_shared<Tally>();
  const brine::Ref<Listener> ref = std::make_shared<ListenerImpl<PlainFamily>>(tally);
  brine::Remote<Listener> local = ref;
  EXPECT_EQ(local.on_tick(4), 8);
  EXPECT_TRUE(local.connected());
  auto r = local.try_call().on_tick(13);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message.find("13 is unlucky"), std::string::npos);
  EXPECT_EQ(local.async().on_tick(5).get(), 10);
  EXPECT_THROW((void)local.on_tick(13), std::invalid_argument);
  EXPECT_EQ(tally->calls.load(), 4);
}

// A factory's reference lives with the connection that made it: once that connection is lost,
// the reference says so (connected() false, UNAVAILABLE) instead of reaching a new connection
// that has no such object (NOT_FOUND).

TEST_P(LostReferences, AReferenceKnowsItsConnectionWasLost) {
  struct AccountImpl final : Account {
    std::int64_t balance() override { return 42; }
  };
  struct BankImpl final : Bank {
    brine::Ref<Account> open() override { return brine::make_ref<Account, AccountImpl>(); }
    std::int64_t size(std::string blob) override { return std::int64_t(blob.size()); }
    std::int64_t read(brine::Remote<Account> account) override {
      // The server's own object: called in place, not over the connection.
      EXPECT_TRUE(account.connected());
      return account.balance() + 1;
    }
  };
  brine::ServerOptions so;
  so.max_frame_size = 64 * 1024;
  so.tls.certificate_file = tls_paths().server_crt;
  so.tls.private_key_file = tls_paths().server_key;
  brine::Server server(so);
  server.expose<Bank>("bank", std::make_shared<BankImpl>());
  if (test_transport(GetParam()).tls) (void)tls_files();
  const std::string uri = server.listen(listen_uri(GetParam()));
  server.start();
  brine::ClientOptions co = client_options();
  co.tls.ca_file = tls_paths().ca;
  Client c(uri, co);
  auto bank = c.remote<Bank>("bank");
  auto account = bank.open();
  EXPECT_TRUE(account.connected());
  EXPECT_EQ(account.balance(), 42);
  EXPECT_EQ(bank.read(account), 43);  // passed back: the server's own object
  // A frame over the server's limit costs the connection (the client's own limit is larger).
  auto big = bank.try_call().size(std::string(100 * 1024, 'x'));
  EXPECT_FALSE(big.ok());
  EXPECT_TRUE(eventually([&] { return !account.connected(); }));
  EXPECT_EQ(bank.size("abc"), 3);  // a new connection: the bank is there
  try {
    (void)account.balance();
    ADD_FAILURE() << "no exception";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::unavailable) << e.what();
    EXPECT_NE(e.message().find("was lost"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(account.connected());
  EXPECT_TRUE(bank.open().connected());
}

INSTANTIATE_TEST_SUITE_P(StreamTransports, LostReferences,
                         testing::Values("tcp4", "tcp6", "unix", "tls4", "mem"));

}  // namespace
