#include "event/loop.hpp"

#include <sys/eventfd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

namespace brine::event {
namespace {

constexpr std::uint64_t kWakeTag = ~std::uint64_t{0};

std::uint64_t tag_of(std::uint32_t slot, std::uint32_t generation) {
  return (std::uint64_t(generation) << 32) | slot;
}

bool later(const auto& a, const auto& b) {
  return a.when > b.when;
}

}  // namespace

EventLoop::EventLoop()
    : epoll_(::epoll_create1(EPOLL_CLOEXEC)), wake_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (!epoll_) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  if (!wake_fd_) throw std::system_error(errno, std::generic_category(), "eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeTag;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_fd_.get(), &ev) != 0) {
    throw std::system_error(errno, std::generic_category(), "epoll_ctl");
  }
}

EventLoop::~EventLoop() = default;

bool EventLoop::on_loop_thread() const noexcept {
  return owner_.load(std::memory_order_relaxed) == std::this_thread::get_id();
}

void EventLoop::wake() noexcept {
  if (!wake_pending_.exchange(true, std::memory_order_acq_rel)) {
    const std::uint64_t one = 1;
    (void)!::write(wake_fd_.get(), &one, sizeof one);
  }
}

void EventLoop::stop() noexcept {
  stop_.store(true, std::memory_order_release);
  wake();
}

std::span<std::byte> EventLoop::scratch() {
  constexpr std::size_t kScratch = 64 * 1024;
  if (!scratch_) scratch_ = std::make_unique_for_overwrite<std::byte[]>(kScratch);
  return {scratch_.get(), kScratch};
}

void EventLoop::post(Task task) {
  {
    std::lock_guard lk(posted_mu_);
    posted_.push_back(std::move(task));
  }
  if (sleeping_.load(std::memory_order_seq_cst)) wake();
}

EventLoop::TimerId EventLoop::at(Clock::time_point when, Task task) {
  bool wake_up = false;
  TimerId id = 0;
  {
    std::lock_guard lk(timers_mu_);
    std::uint32_t slot;
    if (free_timer_slots_.empty()) {
      slot = std::uint32_t(timer_slots_.size());
      timer_slots_.emplace_back();
    } else {
      slot = free_timer_slots_.back();
      free_timer_slots_.pop_back();
    }
    TimerSlot& t = timer_slots_[slot];
    t.task = std::move(task);
    t.armed = true;
    ++armed_;
    heap_.push_back({when, slot, t.generation});
    std::push_heap(heap_.begin(), heap_.end(), later<HeapEntry, HeapEntry>);
    id = (std::uint64_t(t.generation) << 32) | (std::uint64_t(slot) + 1);
    wake_up = sleeping_.load(std::memory_order_relaxed) && when < sleep_until_;
    if (wake_up) sleep_until_ = when;
  }
  if (wake_up) wake();
  return id;
}

void EventLoop::cancel(TimerId id) noexcept {
  if (id == 0) return;
  const auto slot = std::uint32_t((id & 0xFFFFFFFFu) - 1);
  const auto generation = std::uint32_t(id >> 32);
  Task dropped;  // destroyed after the lock: its captures may run arbitrary destructors
  {
    std::lock_guard lk(timers_mu_);
    if (slot >= timer_slots_.size()) return;
    TimerSlot& t = timer_slots_[slot];
    if (!t.armed || t.generation != generation) return;
    dropped = std::move(t.task);
    t.armed = false;
    ++t.generation;
    --armed_;
    free_timer_slots_.push_back(slot);
    compact_heap();
  }
}

void EventLoop::compact_heap() {
  if (heap_.size() < 64 || heap_.size() < 2 * armed_) return;
  std::erase_if(heap_, [&](const HeapEntry& e) {
    const TimerSlot& t = timer_slots_[e.slot];
    return !t.armed || t.generation != e.generation;
  });
  std::make_heap(heap_.begin(), heap_.end(), later<HeapEntry, HeapEntry>);
}

Clock::time_point EventLoop::run_timers() {
  for (;;) {
    Task due;
    {
      std::lock_guard lk(timers_mu_);
      const auto now = Clock::now();
      for (;;) {
        if (heap_.empty()) return Clock::time_point::max();
        const HeapEntry top = heap_.front();
        TimerSlot& t = timer_slots_[top.slot];
        if (!t.armed || t.generation != top.generation) {  // cancelled
          std::pop_heap(heap_.begin(), heap_.end(), later<HeapEntry, HeapEntry>);
          heap_.pop_back();
          continue;
        }
        if (top.when > now) return top.when;
        std::pop_heap(heap_.begin(), heap_.end(), later<HeapEntry, HeapEntry>);
        heap_.pop_back();
        due = std::move(t.task);
        t.armed = false;
        ++t.generation;
        --armed_;
        free_timer_slots_.push_back(top.slot);
        break;
      }
    }
    due();
    if (stop_.load(std::memory_order_acquire)) return Clock::time_point::max();
  }
}

void EventLoop::run_posted() {
  {
    std::lock_guard lk(posted_mu_);
    if (posted_.empty()) return;
    running_.swap(posted_);
  }
  for (Task& t : running_) {
    t();
    t.reset();
  }
  running_.clear();
}

EventLoop::Registration EventLoop::watch(int fd, std::uint32_t events,
                                         std::shared_ptr<Watcher> watcher) {
  std::uint32_t slot;
  if (free_slots_.empty()) {
    slot = std::uint32_t(slots_.size());
    slots_.emplace_back();
  } else {
    slot = free_slots_.back();
    free_slots_.pop_back();
  }
  Slot& s = slots_[slot];
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = tag_of(slot, s.generation);
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    const int err = errno;
    free_slots_.push_back(slot);
    throw std::system_error(err, std::generic_category(), "epoll_ctl");
  }
  s.watcher = std::move(watcher);
  return {slot, s.generation};
}

bool EventLoop::rearm(Registration r, int fd, std::uint32_t events) noexcept {
  if (!r) return false;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = tag_of(r.slot, r.generation);
  return ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &ev) == 0;
}

void EventLoop::unwatch(Registration& r, int fd) noexcept {
  if (!r) return;
  (void)::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
  Slot& s = slots_[r.slot];
  if (s.generation == r.generation) {
    std::shared_ptr<Watcher> dropped = std::move(s.watcher);
    if (++s.generation == 0) s.generation = 1;  // 0 means "not registered"
    free_slots_.push_back(r.slot);
  }
  r = {};
}

void EventLoop::dispatch(const epoll_event& e) {
  if (e.data.u64 == kWakeTag) {
    std::uint64_t count;
    (void)!::read(wake_fd_.get(), &count, sizeof count);
    wake_pending_.store(false, std::memory_order_release);
    return;
  }
  const auto slot = std::uint32_t(e.data.u64 & 0xFFFFFFFFu);
  const auto generation = std::uint32_t(e.data.u64 >> 32);
  if (slot >= slots_.size() || slots_[slot].generation != generation) return;  // unwatched
  // A copy: the watcher may unwatch itself (dropping the slot's reference) while it runs.
  const std::shared_ptr<Watcher> w = slots_[slot].watcher;
  if (w) w->on_ready(e.events);
}

void EventLoop::run(std::chrono::microseconds spin) {
  owner_.store(std::this_thread::get_id(), std::memory_order_relaxed);
  epoll_event events[64];
  auto last_event = Clock::now();
  while (!stop_.load(std::memory_order_acquire)) {
    run_posted();
    if (stop_.load(std::memory_order_acquire)) break;
    const auto next_timer = run_timers();
    if (stop_.load(std::memory_order_acquire)) break;
    int timeout = 0;
    const bool spinning = spin.count() > 0 && Clock::now() - last_event < spin;
    if (!spinning) {
      {
        std::lock_guard lk(timers_mu_);
        sleeping_.store(true, std::memory_order_seq_cst);
        sleep_until_ = heap_.empty() ? Clock::time_point::max() : heap_.front().when;
      }
      bool work;
      {
        std::lock_guard lk(posted_mu_);
        work = !posted_.empty();
      }
      Clock::time_point until;
      {
        std::lock_guard lk(timers_mu_);
        until = std::min(next_timer, sleep_until_);
      }
      if (work) {
        sleeping_.store(false, std::memory_order_relaxed);
        continue;
      }
      if (until == Clock::time_point::max()) {
        timeout = -1;
      } else {
        const auto left = until - Clock::now();
        timeout = left <= Clock::duration::zero()
                      ? 0
                      : int(std::min<std::int64_t>(
                            std::chrono::ceil<std::chrono::milliseconds>(left).count(), 3600000));
      }
    }
    const int n = ::epoll_wait(epoll_.get(), events, 64, timeout);
    sleeping_.store(false, std::memory_order_relaxed);
    if (n <= 0) continue;  // timeout, or EINTR
    bool real = false;
    for (int i = 0; i < n; ++i) {
      real = real || events[i].data.u64 != kWakeTag;
      dispatch(events[i]);
    }
    if (real && spin.count() > 0) last_event = Clock::now();
  }
  owner_.store(std::thread::id{}, std::memory_order_relaxed);
}

}  // namespace brine::event
