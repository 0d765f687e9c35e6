// The event loop (src/event/loop.hpp): posted tasks, timers, descriptor events, waking from
// other threads. Every wait here is bounded.
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>
#include <vector>

#include "event/loop.hpp"

namespace {

using namespace std::chrono_literals;
using brine::event::Clock;
using brine::event::EventLoop;

struct Running {
  EventLoop loop;
  std::thread thread{[this] { loop.run(); }};
  ~Running() {
    loop.stop();
    thread.join();
  }
};

TEST(Loop, PostedTasksRunInOrderOnTheLoopThread) {
  Running r;
  std::vector<int> order;
  std::promise<void> done;
  for (int i = 0; i < 1000; ++i) {
    r.loop.post([&, i] {
      EXPECT_TRUE(r.loop.on_loop_thread());
      order.push_back(i);
      if (i == 999) done.set_value();
    });
  }
  ASSERT_EQ(done.get_future().wait_for(5s), std::future_status::ready);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(order[std::size_t(i)], i);
  EXPECT_FALSE(r.loop.on_loop_thread());
}

TEST(Loop, ManyThreadsPostingWakeASleepingLoop) {
  Running r;
  std::atomic<int> ran{0};
  std::vector<std::thread> posters;
  for (int t = 0; t < 4; ++t) {
    posters.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        r.loop.post([&] { ++ran; });
        if (i % 100 == 0) std::this_thread::sleep_for(1ms);  // let the loop fall asleep
      }
    });
  }
  for (auto& p : posters) p.join();
  const auto until = Clock::now() + 5s;
  while (ran.load() < 8000 && Clock::now() < until) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(ran.load(), 8000);
}

TEST(Loop, TimersRunInTheirOrderAndCancelledOnesNot) {
  Running r;
  std::mutex mu;
  std::vector<int> fired;
  const auto t0 = Clock::now();
  std::vector<EventLoop::TimerId> ids;
  for (int i = 9; i >= 0; --i) {
    ids.push_back(r.loop.at(t0 + std::chrono::milliseconds(10 * i + 10), [&, i] {
      std::lock_guard lk(mu);
      fired.push_back(i);
    }));
  }
  r.loop.cancel(ids[0]);  // the timer of 9
  r.loop.cancel(ids[5]);  // the timer of 4
  r.loop.cancel(0);       // no timer: nothing happens
  std::this_thread::sleep_for(250ms);
  std::lock_guard lk(mu);
  EXPECT_EQ(fired, (std::vector<int>{0, 1, 2, 3, 5, 6, 7, 8}));
}

TEST(Loop, AnEarlierTimerWakesALoopSleepingForALaterOne) {
  Running r;
  std::promise<Clock::time_point> late;
  r.loop.after(10s, [] {});
  std::this_thread::sleep_for(20ms);  // asleep until the 10 s timer
  const auto t0 = Clock::now();
  r.loop.after(20ms, [&] { late.set_value(Clock::now()); });
  auto f = late.get_future();
  ASSERT_EQ(f.wait_for(2s), std::future_status::ready);
  EXPECT_LT(f.get() - t0, 500ms);
}

TEST(Loop, ManyCancelledTimersDoNotPileUp) {
  Running r;
  for (int round = 0; round < 50; ++round) {
    std::vector<EventLoop::TimerId> ids;
    for (int i = 0; i < 1000; ++i) ids.push_back(r.loop.after(1h, [] {}));
    for (auto id : ids) r.loop.cancel(id);
  }
  std::promise<void> ran;
  r.loop.after(1ms, [&] { ran.set_value(); });
  EXPECT_EQ(ran.get_future().wait_for(2s), std::future_status::ready);
}

struct Counter final : brine::event::Watcher {
  void on_ready(std::uint32_t) override { ++events; }
  std::atomic<int> events{0};
};

TEST(Loop, AOneShotRegistrationReportsOnceUntilRearmedAndRearmingSeesWhatIsThere) {
  Running r;
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
  brine::event::Fd a(fds[0]), b(fds[1]);
  auto counter = std::make_shared<Counter>();
  EventLoop::Registration reg;
  std::promise<void> watched;
  r.loop.post([&] {
    reg = r.loop.watch(a.get(), EPOLLIN | EPOLLONESHOT, counter);
    watched.set_value();
  });
  watched.get_future().wait();
  ASSERT_EQ(::send(b.get(), "x", 1, 0), 1);
  ASSERT_EQ(::send(b.get(), "y", 1, 0), 1);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(counter->events.load(), 1);  // one-shot: not again, though more arrived
  // Re-arming while data waits reports it at once (no edge is lost while disarmed).
  std::promise<void> rearmed;
  r.loop.post([&] {
    EXPECT_TRUE(r.loop.rearm(reg, a.get(), EPOLLIN | EPOLLONESHOT));
    rearmed.set_value();
  });
  rearmed.get_future().wait();
  const auto until = Clock::now() + 2s;
  while (counter->events.load() < 2 && Clock::now() < until) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(counter->events.load(), 2);
  std::promise<void> gone;
  r.loop.post([&] {
    r.loop.unwatch(reg, a.get());
    gone.set_value();
  });
  gone.get_future().wait();
  EXPECT_EQ(counter.use_count(), 1);  // the loop let go of it
}

TEST(Loop, BusyPollingStillRunsTimersAndTasks) {
  EventLoop loop;
  std::thread t([&] { loop.run(200us); });
  std::promise<void> both;
  std::atomic<int> n{0};
  loop.after(5ms, [&] {
    if (++n == 2) both.set_value();
  });
  loop.post([&] {
    if (++n == 2) both.set_value();
  });
  EXPECT_EQ(both.get_future().wait_for(2s), std::future_status::ready);
  loop.stop();
  t.join();
}

}  // namespace
