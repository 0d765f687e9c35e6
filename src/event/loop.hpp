// EventLoop: one thread's epoll loop with posted tasks and timers (internal).
//
// Every I/O thread of a server and the one thread of a client run an EventLoop. It is written
// here rather than taken from Asio because of what a call costs in system calls: Asio 1.22's
// reactor either reads speculatively before it waits (one recv that returns EAGAIN per request)
// or re-arms the descriptor with epoll_ctl for every wait, so a request/reply on a server costs
// four system calls where epoll needs three (epoll_wait, recv, send). docs/design.md, "The event
// loop", has the measurement.
//
// Contract:
// * run() is called by one thread at a time; the loop's thread is the one inside run().
// * post() and at()/after()/cancel() are safe from any thread. Posted tasks run in order. A
//   timer runs once, on the loop's thread, at or after its time; cancel() keeps one that has not
//   started from running (one already due may still run: timer tasks must tolerate that).
// * watch()/rearm()/unwatch() are for the loop's thread (or before run() starts). A watched
//   object is kept alive by the loop (shared_ptr) until it is unwatched, so it may close itself
//   from its own on_ready(). Events are reported as registered: with EPOLLET once per arrival,
//   with EPOLLONESHOT once until rearm().
// * Waking a sleeping loop costs one eventfd write; a loop that is busy is never woken.
#pragma once

#include <sys/epoll.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "event/fd.hpp"
#include "event/task.hpp"

namespace brine::event {

using Clock = std::chrono::steady_clock;

// What the loop reports descriptor readiness to.
class Watcher {
 public:
  // On the loop's thread. `events`: the epoll events (EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP, ...).
  virtual void on_ready(std::uint32_t events) = 0;

 protected:
  ~Watcher() = default;
};

class EventLoop {
 public:
  // 0 is never a timer id.
  using TimerId = std::uint64_t;
  // Names one registration; a default-constructed one names none.
  struct Registration {
    std::uint32_t slot = 0;
    std::uint32_t generation = 0;  // 0: not registered
    explicit operator bool() const noexcept { return generation != 0; }
  };

  // Throws std::system_error when epoll or the wake-up eventfd cannot be created.
  EventLoop();
  // The loop must not be running. Tasks and timers that never ran are destroyed.
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Runs tasks, timers and descriptor events until stop(). With `spin` > 0 the loop polls
  // (epoll_wait with timeout 0) for that long after each event before it sleeps (low-latency
  // mode: a request arriving within it is taken without a wake-up).
  void run(std::chrono::microseconds spin = {});
  // Makes run() return after the task or event it is handling. Any thread.
  void stop() noexcept;
  // True on the thread inside run().
  bool on_loop_thread() const noexcept;
  // True while some thread is inside run().
  bool running() const noexcept { return owner_.load() != std::thread::id{}; }

  // A buffer for the loop's own reading (64 KiB, made on first use): what a channel reads on
  // the loop goes here, its frames are parsed in place, and only a partial frame is copied out,
  // so connections hold no read buffer between frames. Loop thread only; valid until the next
  // read on the loop.
  std::span<std::byte> scratch();

  void post(Task task);
  TimerId at(Clock::time_point when, Task task);
  TimerId after(Clock::duration delay, Task task) {
    return at(Clock::now() + delay, std::move(task));
  }
  void cancel(TimerId id) noexcept;

  // Registers `fd` with `events` (EPOLLIN, EPOLLOUT, EPOLLET, EPOLLONESHOT, ...). Throws
  // std::system_error if epoll refuses it.
  Registration watch(int fd, std::uint32_t events, std::shared_ptr<Watcher> watcher);
  // Changes the events of a registration (re-arms an EPOLLONESHOT one). Returns false if epoll
  // refused (the descriptor was closed).
  bool rearm(Registration r, int fd, std::uint32_t events) noexcept;
  // Removes the registration and drops the loop's reference to the watcher.
  void unwatch(Registration& r, int fd) noexcept;

 private:
  struct Slot {
    std::shared_ptr<Watcher> watcher;
    std::uint32_t generation = 1;
  };
  struct TimerSlot {
    Task task;
    std::uint32_t generation = 1;
    bool armed = false;
  };
  struct HeapEntry {
    Clock::time_point when;
    std::uint32_t slot;
    std::uint32_t generation;
  };

  void wake() noexcept;
  void run_posted();
  // Runs the timers that are due; returns when the next one is due (max() if none).
  Clock::time_point run_timers();
  // Under timers_mu_: drops heap entries of cancelled timers when they are most of the heap.
  void compact_heap();
  void dispatch(const epoll_event& e);

  Fd epoll_;
  Fd wake_fd_;
  std::atomic<bool> stop_{false};
  std::atomic<std::thread::id> owner_{};
  // True while the loop is (about to be) blocked in epoll_wait; wake_pending_ while a wake-up
  // written to wake_fd_ has not been read.
  std::atomic<bool> sleeping_{false};
  std::atomic<bool> wake_pending_{false};

  std::mutex posted_mu_;
  std::vector<Task> posted_;
  std::vector<Task> running_;  // the batch being run (loop thread only)

  std::mutex timers_mu_;
  std::vector<TimerSlot> timer_slots_;
  std::vector<std::uint32_t> free_timer_slots_;
  std::vector<HeapEntry> heap_;  // min-heap on `when`; entries of cancelled timers are skipped
  std::size_t armed_ = 0;
  Clock::time_point sleep_until_ = Clock::time_point::max();  // (timers_mu_)

  std::unique_ptr<std::byte[]> scratch_;  // loop thread only
  std::vector<Slot> slots_;               // loop thread only
  std::vector<std::uint32_t> free_slots_;
};

}  // namespace brine::event
