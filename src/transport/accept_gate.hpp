// AcceptGate: between a listener and the channels it hands out, possibly later (after a TLS
// handshake, or when a ZeroMQ peer first speaks): after close() nothing reaches the sink, and
// close() waits for a hand-over in progress (internal).
#pragma once

#include <memory>
#include <mutex>

#include "transport/channel.hpp"

namespace brine::transport {

class AcceptGate {
 public:
  void open(ListenerSink& sink) {
    std::lock_guard lk(mu_);
    sink_ = &sink;
  }
  void close() {
    std::lock_guard lk(mu_);
    sink_ = nullptr;
  }
  // Hands `channel` over; false (the channel is dropped) once the listener closed.
  bool deliver(std::shared_ptr<Channel> channel) {
    std::lock_guard lk(mu_);
    if (sink_ == nullptr) return false;
    sink_->on_channel(std::move(channel));
    return true;
  }
  void handshake_failed(bool timed_out) {
    std::lock_guard lk(mu_);
    if (sink_ != nullptr) sink_->on_handshake_failed(timed_out);
  }

 private:
  std::mutex mu_;
  ListenerSink* sink_ = nullptr;
};

}  // namespace brine::transport
