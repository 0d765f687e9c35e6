// ReverseChannel: calls in the other direction over one connection (internal).
//
// A client that passes one of its objects as an argument is called back by the server over the
// connection the call came on. Each end then runs both policies on one channel: its own (the
// client's ClientConnection, the server's ServerConnection) and the other side's for the calls
// that go the other way (a ServerConnection on the client for its objects, a ClientConnection on
// the server for the calls it makes back). The frame's kind says which policy a frame is for:
// requests, oneways and cancels go to whichever side serves, replies and errors to whichever
// calls (docs/wire-format.md, "Objects passed as arguments").
//
// The second policy sits on a ReverseChannel: a Channel whose sends go out on the connection's
// real channel, and whose frames are the ones the first policy hands it (deliver()). It carries
// no streams (item, end and credit frames would be ambiguous between the two directions).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>

#include "brine/client.hpp"
#include "event/loop.hpp"
#include "transport/channel.hpp"

namespace brine::detail {

class ReverseChannel final : public transport::Channel,
                             public std::enable_shared_from_this<ReverseChannel> {
 public:
  // Sends on `carrier`; `loop` runs a close that its own sink asks for (`keep`, if given, owns
  // it: the channel may outlive the loop's other owners).
  ReverseChannel(const std::shared_ptr<transport::Channel>& carrier, event::EventLoop& loop,
                 std::shared_ptr<event::EventLoop> keep = {});
  ReverseChannel(const std::shared_ptr<transport::Channel>& carrier,
                 std::shared_ptr<event::EventLoop> loop)
      : ReverseChannel(carrier, *loop, loop) {}

  // A frame for the policy on this channel (from the policy on the carrier, whose on_frame
  // calls never overlap). Dropped once closed.
  void deliver(const FrameView& frame);

  // transport::Channel
  void start(std::shared_ptr<transport::ChannelSink> sink) override;
  transport::SendStatus send(Buffer&& frame, transport::Deadline deadline,
                             transport::WhenFull when_full) override;
  // Ends this direction only (the carrier is its own policy's): the sink's on_close follows,
  // at once, or from the loop when the sink itself asked from inside a delivery.
  void close(const Status& why, transport::Deadline linger_until) override;
  void pause_reading(bool) override {}  // the carrier's policy bounds what it reads
  std::size_t queued_bytes() const override;
  transport::ChannelProgress progress() const override { return {}; }
  const transport::PeerInfo& peer() const override { return peer_; }
  std::size_t max_frame_length() const override;
  bool carries_streams() const override { return false; }
  std::string why_no_streams() const override {
    return "a call to an object passed as an argument (a call back) carries no streams";
  }
  bool closed() const { return closed_.load(std::memory_order_acquire); }

 private:
  void finish();

  const std::weak_ptr<transport::Channel> carrier_;
  const transport::PeerInfo peer_;
  const std::size_t max_frame_length_;
  event::EventLoop& loop_;
  const std::shared_ptr<event::EventLoop> keep_;
  std::mutex mu_;  // held while a frame is delivered, and to hand the sink its close
  std::shared_ptr<transport::ChannelSink> sink_;  // (mu_)
  bool started_ = false;                          // (mu_)
  bool finished_ = false;                         // on_close delivered or posted (mu_)
  Status why_;                                    // (mu_)
  std::atomic<bool> closed_{false};
  std::atomic<std::thread::id> delivering_{};  // the thread inside deliver(), if any
};

// Dials the one ReverseChannel a ServerConnection made for its calls back: a client core on it
// connects once, and never again once that connection is gone (the client, and its objects,
// went with it).
class ReverseDialer final : public transport::Dialer {
 public:
  explicit ReverseDialer(std::shared_ptr<ReverseChannel> channel) : channel_(std::move(channel)) {}
  std::shared_ptr<transport::Channel> dial(transport::Deadline, std::string& error) override;

 private:
  std::mutex mu_;
  std::shared_ptr<ReverseChannel> channel_;  // (mu_) handed out once
};

// For the policy on the carrier: hands `frame` to `channel` (read under `mu`); false if there is
// no channel (yet).
bool deliver_reverse(std::mutex& mu, const std::shared_ptr<ReverseChannel>& channel,
                     const FrameView& frame);
// Closes `channel` (read under `mu`), if there is one.
void close_reverse(std::mutex& mu, const std::shared_ptr<ReverseChannel>& channel,
                   const Status& why);

class ClientCore;
// A client core whose one connection is `channel`: a server's calls back to a client.
// (It keeps `loop`, which runs its timers, as long as it lives.)
std::shared_ptr<ClientCore> make_peer_core(std::shared_ptr<ReverseChannel> channel,
                                           ClientOptions options,
                                           std::shared_ptr<event::EventLoop> loop);

}  // namespace brine::detail
