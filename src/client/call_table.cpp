#include "client/call_table.hpp"

namespace brine::detail {

bool CallTable::add(std::uint64_t id, PendingCall* call, std::unique_ptr<PendingCall>& owned) {
  std::lock_guard lk(mu_);
  if (closed_) return false;
  if (spare_.empty()) {
    pending_.emplace(id, Entry{call, std::move(owned), 0, nullptr});
    return true;
  }
  auto node = std::move(spare_.back());  // a completed call's node: no allocation
  spare_.pop_back();
  node.key() = id;
  node.mapped().call = call;
  node.mapped().owned = std::move(owned);
  pending_.insert(std::move(node));
  return true;
}

bool CallTable::set_timer(std::uint64_t id, event::EventLoop::TimerId timer) {
  std::lock_guard lk(mu_);
  const auto it = pending_.find(id);
  if (it == pending_.end()) return false;
  it->second.timer = timer;
  return true;
}

bool CallTable::set_cancel(std::uint64_t id, std::unique_ptr<CancelCallback>& on_cancel) {
  std::lock_guard lk(mu_);
  const auto it = pending_.find(id);
  if (it == pending_.end()) return false;
  it->second.on_cancel = std::move(on_cancel);
  return true;
}

TakenCall CallTable::take(std::uint64_t id) {
  std::unique_ptr<CancelCallback> on_cancel;  // destroyed outside the lock: it may be running
  TakenCall taken;
  {
    std::lock_guard lk(mu_);
    const auto it = pending_.find(id);
    if (it == pending_.end()) return taken;
    auto node = pending_.extract(it);
    taken.call = node.mapped().call;
    taken.owned = std::move(node.mapped().owned);
    taken.timer = node.mapped().timer;
    on_cancel = std::move(node.mapped().on_cancel);
    node.mapped().timer = 0;
    if (spare_.size() < kSpareNodes) spare_.push_back(std::move(node));
  }
  return taken;
}

std::vector<TakenCall> CallTable::close() {
  Map pending;
  {
    std::lock_guard lk(mu_);
    closed_ = true;
    pending.swap(pending_);
  }
  std::vector<TakenCall> out;
  out.reserve(pending.size());
  for (auto& [id, entry] : pending) {
    entry.on_cancel.reset();
    out.push_back({entry.call, std::move(entry.owned), entry.timer});
  }
  return out;
}

bool CallTable::pending(std::uint64_t id) const {
  std::lock_guard lk(mu_);
  return pending_.count(id) != 0;
}

std::size_t CallTable::size() const {
  std::lock_guard lk(mu_);
  return pending_.size();
}

}  // namespace brine::detail
