// Task<T>: the coroutine type of brine's asynchronous code.
//
// A handler may be a coroutine that returns brine::Task<Resp>: it finishes later without holding
// a worker thread while it waits (for stream room, for an item, for another call):
//
//   server.handle("slow_add", [&](AddRequest r) -> brine::Task<AddReply> {
//     int base = co_await other.co_call<int>("base", Empty{});   // no thread waits here
//     co_return AddReply{r.a + r.b + base};
//   });
//
// A Task starts when it is awaited (lazily) and resumes its awaiter when it finishes, on the
// thread that finished it. Another coroutine may co_await a Task; the server drives the Task a
// handler returns. What the Task throws is rethrown in its awaiter (for a handler: it becomes
// the call's error, as from a plain handler).
#pragma once

#include <condition_variable>
#include <coroutine>
#include <exception>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>

namespace brine {

template <class T = void>
class Task;

namespace detail {

struct TaskPromiseBase {
  std::coroutine_handle<> continuation{};
  std::exception_ptr error{};

  std::suspend_always initial_suspend() const noexcept { return {}; }
  struct Final {
    bool await_ready() const noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) const noexcept {
      std::coroutine_handle<> next = h.promise().continuation;
      return next ? next : std::noop_coroutine();
    }
    void await_resume() const noexcept {}
  };
  Final final_suspend() const noexcept { return {}; }
  void unhandled_exception() noexcept { error = std::current_exception(); }
};

template <class T>
struct TaskPromise : TaskPromiseBase {
  std::optional<T> value;
  Task<T> get_return_object() noexcept;
  template <class U>
  requires std::is_convertible_v<U&&, T>
  void return_value(U&& v) { value.emplace(std::forward<U>(v)); }
  T result() {
    if (error) std::rethrow_exception(error);
    return std::move(*value);
  }
};

template <>
struct TaskPromise<void> : TaskPromiseBase {
  Task<void> get_return_object() noexcept;
  void return_void() const noexcept {}
  void result() const {
    if (error) std::rethrow_exception(error);
  }
};

// A coroutine nobody awaits: starts at once and frees itself when it ends. What drives a
// handler's Task (the code after co_await reports the outcome; it must not throw).
struct Detached {
  struct promise_type {
    Detached get_return_object() const noexcept { return {}; }
    std::suspend_never initial_suspend() const noexcept { return {}; }
    std::suspend_never final_suspend() const noexcept { return {}; }
    void return_void() const noexcept {}
    void unhandled_exception() const noexcept { std::terminate(); }
  };
};

}  // namespace detail

template <class T>
class [[nodiscard]] Task {
 public:
  using promise_type = detail::TaskPromise<T>;
  using value_type = T;

  Task(Task&& other) noexcept : h_(std::exchange(other.h_, {})) {}
  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      if (h_) h_.destroy();
      h_ = std::exchange(other.h_, {});
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() {
    if (h_) h_.destroy();
  }

  // co_await: runs the Task to its end and returns its value (or rethrows).
  bool await_ready() const noexcept { return !h_ || h_.done(); }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiting) noexcept {
    h_.promise().continuation = awaiting;
    return h_;
  }
  T await_resume() { return h_.promise().result(); }

 private:
  friend promise_type;
  explicit Task(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
  std::coroutine_handle<promise_type> h_;
};

namespace detail {
template <class T>
Task<T> TaskPromise<T>::get_return_object() noexcept {
  return Task<T>(std::coroutine_handle<TaskPromise<T>>::from_promise(*this));
}
inline Task<void> TaskPromise<void>::get_return_object() noexcept {
  return Task<void>(std::coroutine_handle<TaskPromise<void>>::from_promise(*this));
}

template <class>
struct is_task : std::false_type {};
template <class T>
struct is_task<Task<T>> : std::true_type {};
// What a result R gives: R itself, or T for a coroutine's Task<T>.
template <class R>
struct task_value {
  using type = R;
};
template <class T>
struct task_value<Task<T>> {
  using type = T;
};
}  // namespace detail

namespace detail {
struct Latch {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
};
template <class T>
Detached run_to_end(Task<T>& task, std::optional<T>& value, std::exception_ptr& error,
                    Latch& latch) {
  try {
    value.emplace(co_await task);
  } catch (...) {
    error = std::current_exception();
  }
  std::lock_guard lk(latch.mu);
  latch.done = true;
  latch.cv.notify_all();
}
inline Detached run_to_end(Task<void>& task, std::exception_ptr& error, Latch& latch) {
  try {
    co_await task;
  } catch (...) {
    error = std::current_exception();
  }
  std::lock_guard lk(latch.mu);
  latch.done = true;
  latch.cv.notify_all();
}
}  // namespace detail

// Runs `task` from code that is not a coroutine: starts it on this thread and blocks until it
// has finished (wherever it resumed meanwhile); returns its value or rethrows. Not from a thread
// the task needs to finish (a client's callback, a server's only worker).
template <class T>
T sync_wait(Task<T> task) {
  detail::Latch latch;
  std::exception_ptr error;
  if constexpr (std::is_void_v<T>) {
    detail::run_to_end(task, error, latch);
  } else {
    std::optional<T> value;
    detail::run_to_end(task, value, error, latch);
    std::unique_lock lk(latch.mu);
    latch.cv.wait(lk, [&] { return latch.done; });
    if (error) std::rethrow_exception(error);
    return std::move(*value);
  }
  std::unique_lock lk(latch.mu);
  latch.cv.wait(lk, [&] { return latch.done; });
  if (error) std::rethrow_exception(error);
}

}  // namespace brine
