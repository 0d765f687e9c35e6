// brine-broker with calculator_server workers, all as separate processes on loopback.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "families.hpp"
#include "memory.hpp"
#include "process.hpp"

namespace broker_objects {
struct Session {
  virtual ~Session() = default;
  virtual int ping() = 0;
};
BRINE_INTERFACE(Session, ping);
struct Lobby {
  virtual ~Lobby() = default;
  virtual int count() = 0;
  virtual brine::Ref<Session> join() = 0;
  virtual int greet(brine::Remote<Session> visitor) = 0;  // calls the visitor back
};
BRINE_INTERFACE(Lobby, count, join, greet);
struct SessionImpl final : Session {
  int ping() override { return 1; }
};
struct LobbyImpl final : Lobby {
  int count() override { return 7; }
  brine::Ref<Session> join() override { return brine::make_ref<Session, SessionImpl>(); }
  int greet(brine::Remote<Session> visitor) override { return visitor.ping(); }
};
}  // namespace broker_objects

namespace {

using brine::Client;
using brine::StatusCode;
using namespace brine_test;
using namespace std::chrono_literals;

using brine_test::kSanitized;

class Broker : public testing::Test {
 protected:
  void SetUp() override {
    broker_ = std::make_unique<ChildProcess>(std::vector<std::string>{
        BRINE_BROKER, "--frontend", "zmq+tcp://127.0.0.1:0", "--backend", "zmq+tcp://127.0.0.1:0"});
    frontend_ = expect_line("frontend ");
    backend_ = expect_line("backend ");
  }

  // Reads broker lines until one starts with `prefix`; returns the rest of it.
  std::string expect_line(const std::string& prefix) {
    for (;;) {
      const auto line = broker_->read_line(10s);
      if (!line) {
        ADD_FAILURE() << "the broker never printed '" << prefix << "'";
        return {};
      }
      if (line->rfind(prefix, 0) == 0) return line->substr(prefix.size());
    }
  }

  void start_workers(int n) {
    for (int i = 0; i < n; ++i) {
      workers_.push_back(std::make_unique<ChildProcess>(
          std::vector<std::string>{BRINE_CALCULATOR_SERVER, "--connect", backend_}));
      ASSERT_TRUE(workers_.back()->read_line(10s)) << "worker did not start";
      expect_line("worker joined ");
    }
  }

  std::unique_ptr<ChildProcess> broker_;
  std::string frontend_;
  std::string backend_;
  std::vector<std::unique_ptr<ChildProcess>> workers_;
  long rss_after_first_ = 0;
};

TEST_F(Broker, SpreadsCallsOverWorkersEachAnsweredOnce) {
  start_workers(3);
  Client client(frontend_, {.codec = "cereal", .timeout = 10s});
  for (int round = 0; round < 2; ++round) {
    std::mutex mu;
    std::map<long, int> by_pid;
    std::atomic<int> answered{0};
    std::atomic<int> wrong{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 375; ++i) {
          if (i % 2 == 0) {
            const auto pid = client.try_call(calc::kPid, {0});
            if (!pid.ok()) {
              ++wrong;
              continue;
            }
            std::lock_guard lk(mu);
            ++by_pid[long(pid->value)];
          } else {
            const auto sum = client.try_call(calc::kAdd, {double(t), double(i)});
            if (!sum.ok() || sum->value != t + i) {
              ++wrong;
              continue;
            }
          }
          ++answered;
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(answered.load(), 3000);
    EXPECT_EQ(wrong.load(), 0);
    ASSERT_EQ(by_pid.size(), 3u) << "every worker serves a share";
    for (const auto& [pid, n] : by_pid) EXPECT_GT(n, 150) << "worker " << pid;
    if (round == 0) {
      rss_after_first_ = long(brine_test::rss_kib(broker_->pid()));
    } else if (!kSanitized) {
      // The broker keeps no per-call state: another 3000 calls do not grow it. (Under a
      // sanitizer, freed memory sits in quarantine and resident memory grows regardless.)
      EXPECT_LT(long(brine_test::rss_kib(broker_->pid())) - rss_after_first_, 2048) << "KiB";
    }
  }
}

TEST_F(Broker, KilledWorkerLosesNoCallSilently) {
  start_workers(3);
  Client client(frontend_, {.codec = "protobuf", .timeout = 15s});
  std::atomic<int> done{0};
  std::atomic<int> ok_after_kill{0};
  std::atomic<bool> killed{false};
  std::mutex mu;
  std::map<StatusCode, int> idempotent_outcomes;
  std::map<StatusCode, int> other_outcomes;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < (t < 6 ? 375 : 40); ++i) {
        StatusCode code;
        if (t < 6) {  // idempotent: sent again to another worker if its worker dies
          const auto r = client.try_call(calc::pb::kAdd, ProtobufFamily::add(t, i));
          code = r.code();
          if (r.ok() && r->value() != t + i) code = StatusCode::internal;
        } else {  // not idempotent, and slow: some are running when the worker dies
          code = client.try_call(calc::pb::kWait, ProtobufFamily::wait(25)).code();
        }
        std::lock_guard lk(mu);
        ++(t < 6 ? idempotent_outcomes : other_outcomes)[code];
        if (killed && code == StatusCode::ok) ++ok_after_kill;
        ++done;
      }
    });
  }
  while (done < 600) std::this_thread::yield();
  workers_[1]->kill(SIGKILL);
  killed = true;
  for (auto& th : threads) th.join();
  const std::string lost = expect_line("worker lost ");
  std::printf("broker: worker lost %s\n", lost.c_str());
  // Every call ended with an answer or a status: none vanished, none hung.
  EXPECT_EQ(done.load(), 6 * 375 + 2 * 40);
  // Idempotent calls all succeeded (retried where needed); the others succeeded or were told
  // UNAVAILABLE.
  EXPECT_EQ(idempotent_outcomes[StatusCode::ok], 6 * 375);
  EXPECT_EQ(other_outcomes[StatusCode::ok] + other_outcomes[StatusCode::unavailable], 2 * 40);
  // The surviving workers carried on.
  EXPECT_GT(ok_after_kill.load(), 100);
}

// A stream stays with the worker its request went to: the client's items, ends and credits
// follow it there, the worker's items and credits come back, far beyond one window each way.
TEST_F(Broker, StreamsFlowBothWaysThroughTheBroker) {
  start_workers(2);
  Client client(frontend_, {.codec = "cereal", .timeout = 20s});
  std::vector<brine::Stream<calc::Number>> primes;
  for (int i = 0; i < 4; ++i)
    primes.push_back(client.stream<calc::Number>(calc::kPrimes, calc::Number{2e5}));
  for (auto& p : primes) {
    std::size_t n = 0;
    double last = 0;
    while (auto x = p.read()) {
      ++n;
      last = x->value;
    }
    EXPECT_TRUE(p.status().ok()) << p.status().to_string();
    EXPECT_EQ(n, 17984u);
    EXPECT_EQ(last, 199999);
  }
  auto totals = client.bidi<calc::Number, calc::Number>(calc::kAccumulate, calc::Number{100});
  double expect = 100;
  for (int i = 1; i <= 20000; ++i) {
    ASSERT_TRUE(totals.write({1.0 * i}));
    expect += i;
    if (i % 100 == 0) {  // read in batches: up to 100 answers wait in the window
      for (int k = 0; k < 100; ++k) ASSERT_TRUE(totals.read());
    }
  }
  totals.close_write();
  EXPECT_FALSE(totals.read());
  EXPECT_TRUE(totals.finish().ok());
  // The last answer was the total of everything.
  auto check = client.bidi<calc::Number, calc::Number>(calc::kAccumulate, calc::Number{0});
  ASSERT_TRUE(check.write({expect}));
  const auto echoed = check.read();
  ASSERT_TRUE(echoed);
  EXPECT_EQ(echoed->value, expect);
  EXPECT_TRUE(check.finish().ok());
}

// Metadata passes through the broker unchanged both ways, and a handler's onward call through
// the broker inherits its deadline: the worker's handler sees at most the first caller's time and
// stops at its deadline.
TEST_F(Broker, MetadataAndDeadlinesCrossTheBroker) {
  auto saw_left = std::make_shared<std::atomic<long>>(-1);
  auto stopped = std::make_shared<std::atomic<int>>(0);
  brine::Server worker;
  worker.handle("md", [](const calc::Number&) {
    std::string flat;
    for (const auto& [k, v] : brine::this_call::metadata()) flat += k + "=" + v + ";";
    brine::this_call::add_reply_metadata("worker", "yes");
    return brine_test::CerealBlob{flat};
  });
  worker.handle("patient", [saw_left, stopped](const calc::Number&) {
    saw_left->store(long(brine::this_call::time_left().count()));
    const auto end = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < end && !brine::this_call::cancelled()) {
      std::this_thread::sleep_for(1ms);
    }
    ++*stopped;
    return calc::Number{1};
  });
  worker.start();
  worker.connect(backend_);
  expect_line("worker joined ");
  Client client(frontend_, {.codec = "cereal", .timeout = 10s});
  brine::Metadata reply;
  brine::CallOptions opts;
  opts.metadata.add("trace-id", "t1").add("bin", std::string("\x00\x01", 2));
  opts.reply_metadata = &reply;
  const auto md = client.call<brine_test::CerealBlob>("md", calc::Number{0}, opts);
  EXPECT_EQ(md.data, "trace-id=t1;bin=" + std::string("\x00\x01", 2) + ";");
  EXPECT_EQ(reply.get("worker"), "yes");

  brine::Server near;
  auto onward = std::make_shared<Client>(frontend_, brine::ClientOptions{.codec = "cereal"});
  near.handle("hop",
              [onward](const calc::Number& n) { return onward->call<calc::Number>("patient", n); });
  near.start();
  Client first(near.listen("tcp://127.0.0.1:0"), {.codec = "cereal"});
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = first.try_call<calc::Number>("hop", calc::Number{0}, {.timeout = 500ms});
  EXPECT_EQ(r.code(), brine::StatusCode::deadline_exceeded) << r.status().to_string();
  ASSERT_TRUE([&] {
    for (auto until = t0 + 4s; std::chrono::steady_clock::now() < until;) {
      if (stopped->load() == 1) return true;
      std::this_thread::sleep_for(5ms);
    }
    return false;
  }());
  EXPECT_GT(saw_left->load(), 0);
  EXPECT_LE(saw_left->load(), 500);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
}

// A stream is never sent again to another worker: when its worker dies, it ends UNAVAILABLE.
TEST_F(Broker, AStreamWhoseWorkerDiesEndsUnavailable) {
  start_workers(1);
  Client client(frontend_, {.codec = "protobuf", .timeout = 30s});
  calc::pb::Number limit;
  limit.set_value(1e8);
  auto primes = client.stream<calc::pb::Number>(calc::kPrimes, limit);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(primes.read());
  workers_[0]->kill(SIGKILL);
  const auto start = std::chrono::steady_clock::now();
  while (primes.read()) {
  }
  EXPECT_EQ(primes.status().code, StatusCode::unavailable) << primes.status().to_string();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
}

TEST_F(Broker, NoWorkerIsUnavailable) {
  Client client(frontend_, {.codec = "cereal", .timeout = 5s});
  const auto r = client.try_call(calc::kAdd, {1, 2});
  EXPECT_EQ(r.code(), StatusCode::unavailable) << r.status().to_string();
}

TEST_F(Broker, OneCallAtATimeStillGoesRoundAllWorkers) {
  start_workers(3);
  Client client(frontend_, {.codec = "cereal", .timeout = 5s});
  std::map<long, int> by_pid;
  for (int i = 0; i < 30; ++i) ++by_pid[long(client.call(calc::kPid, {0}).value)];
  ASSERT_EQ(by_pid.size(), 3u);
  for (const auto& [pid, n] : by_pid) EXPECT_EQ(n, 10) << "worker " << pid;
}

TEST_F(Broker, WorkerJoiningLaterGetsCalls) {
  start_workers(1);
  Client client(frontend_, {.codec = "cereal", .timeout = 5s});
  const long first = long(client.call(calc::kPid, {0}).value);
  start_workers(1);
  std::set<long> pids;
  for (int i = 0; i < 50; ++i) {
    // Two in flight at a time, so that least-outstanding routing uses both workers.
    auto a = client.call_async(calc::kPid, {0});
    auto b = client.call_async(calc::kPid, {0});
    pids.insert(long(a.get().value));
    pids.insert(long(b.get().value));
  }
  EXPECT_EQ(pids.size(), 2u);
  EXPECT_TRUE(pids.count(first));
}

TEST_F(Broker, ObjectsWorkThroughABrokerButReferencesAreRefused) {
  // An in-process worker exposing an object: plain object calls are routed like any other; a
  // factory's reference would name an object inside one of several workers, so it is refused,
  // and so are objects passed as arguments (calls back).
  brine::Server worker({.workers = 1});
  worker.expose<broker_objects::Lobby>("lobby", std::make_shared<broker_objects::LobbyImpl>());
  worker.connect(backend_);
  worker.start();
  expect_line("worker joined ");
  Client c(frontend_, {.codec = "cereal"});
  const auto lobby = c.remote<broker_objects::Lobby>("lobby");
  EXPECT_EQ(lobby.count(), 7);
  const auto r = lobby.try_call().join();
  EXPECT_EQ(r.code(), StatusCode::unimplemented);
  EXPECT_NE(r.status().message.find("broker"), std::string::npos) << r.status().message;
  // Nor can a worker call back an object a client passes: the broker routes calls one way.
  auto visitor = std::make_shared<broker_objects::SessionImpl>();
  const auto g = lobby.try_call().greet(visitor);
  EXPECT_EQ(g.code(), StatusCode::unimplemented);
  EXPECT_NE(g.status().message.find("broker"), std::string::npos) << g.status().message;
  EXPECT_EQ(lobby.count(), 7);  // and the connection serves on
}

}  // namespace
