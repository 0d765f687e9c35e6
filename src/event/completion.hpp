// Completion: a one-shot flag that a waiting thread can spin on, poll, or sleep on (internal).
//
// set() is called once, from any thread. The waiter may read the flag without the mutex (spinning
// or reading the socket itself), but it must call settled() before it destroys the Completion:
// set() notifies the condition variable under the mutex, and the waiter must not destroy them
// while the setter is still inside.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>

namespace brine::event {

class Completion {
 public:
  void set() noexcept {
    std::lock_guard lk(mu_);  // notify under the lock: the waiter may return at once
    done_.store(true, std::memory_order_release);
    cv_.notify_one();
  }
  bool is_set() const noexcept { return done_.load(std::memory_order_acquire); }
  // True once set and the setter no longer touches this object.
  bool settled() {
    if (!is_set()) return false;
    std::lock_guard lk(mu_);
    return true;
  }
  // Sleeps until set (true) or `deadline` passes (false).
  template <class Clock, class Duration>
  bool sleep_until(std::chrono::time_point<Clock, Duration> deadline) {
    std::unique_lock lk(mu_);
    return cv_.wait_until(lk, deadline, [&] { return is_set(); });
  }
  // Sleeps until set (its setting is known to be under way).
  void sleep() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return is_set(); });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> done_{false};
};

}  // namespace brine::event
