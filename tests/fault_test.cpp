// Slow, silent, greedy and vanished peers, in one process: the server's connection timeouts,
// connection limit and back-pressure, the client's heartbeats and reconnection backoff. Peers
// that misbehave are raw sockets driven byte by byte (RawPeer); processes that die or stop are in
// process_test.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <vector>

#include "backoff.hpp"
#include "eventually.hpp"
#include "families.hpp"
#include "raw_peer.hpp"
#include "test_server.hpp"

namespace {

using brine::Client;
using brine::StatusCode;
using brine::detail::FrameKind;
using namespace brine_test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

calc::Number add(Client& c, double a, double b) {
  return c.call<calc::Number>("add", calc::AddRequest{a, b});
}

// The message of a connection-level error frame.
std::string error_message(const RawPeer::Frame& f) {
  const auto s = brine::detail::parse_error_payload(
      {reinterpret_cast<const std::byte*>(f.payload.data()), f.payload.size()});
  return s.to_string();
}

// --- backoff ------------------------------------------------------------------------------------

TEST(Backoff, GrowsByThe16FactorWithJitterUpToTheCap) {
  brine::detail::Backoff b(100ms, 2000ms, 42);
  double expected = 100;
  for (int i = 0; i < 12; ++i) {
    const auto d = b.next();
    EXPECT_GE(double(d.count()), expected * 0.8 - 1) << "attempt " << i;
    EXPECT_LE(double(d.count()), expected * 1.2 + 1) << "attempt " << i;
    expected = std::min(expected * 1.6, 2000.0);
  }
  b.reset();
  const auto d = b.next();
  EXPECT_GE(d.count(), 79);
  EXPECT_LE(d.count(), 121);
}

TEST(Backoff, JitterSpreadsClients) {
  std::vector<long> firsts;
  for (std::uint64_t seed = 1; seed <= 50; ++seed) {
    brine::detail::Backoff b(1000ms, 10000ms, seed);
    firsts.push_back(long(b.next().count()));
  }
  std::sort(firsts.begin(), firsts.end());
  EXPECT_GT(firsts.back() - firsts.front(), 200);  // spread over most of [800, 1200]
}

TEST(Reconnect, CallsFailFastWhileBackingOff) {
  const LoopbackPort dead(LoopbackPort::refusing);
  Client c(dead.uri(), {.reconnect_backoff_initial = 500ms, .reconnect_backoff_max = 500ms});
  const auto first = c.try_call<calc::Number>("add", calc::AddRequest{1, 2});
  EXPECT_EQ(first.code(), StatusCode::unavailable);
  const auto t0 = Clock::now();
  const auto second = c.try_call<calc::Number>("add", calc::AddRequest{1, 2});
  EXPECT_EQ(second.code(), StatusCode::unavailable);
  EXPECT_NE(second.status().message.find("next attempt in"), std::string::npos)
      << second.status().to_string();
  EXPECT_LT(Clock::now() - t0, 100ms);
  EXPECT_EQ(c.stats().connect_attempts, 1u);
}

TEST(Reconnect, WaitForReadyRetriesWithGrowingWaits) {
  const LoopbackPort dead(LoopbackPort::refusing);
  Client c(dead.uri(), {.reconnect_backoff_initial = 50ms, .wait_for_ready = true});
  const auto r = c.try_call<calc::Number>("add", calc::AddRequest{1, 2}, {.timeout = 1500ms});
  EXPECT_EQ(r.code(), StatusCode::deadline_exceeded) << r.status().to_string();
  // Waits 50, 80, 128, 205, 328, 524 ms (each +-20%) fit 1.5 s: about 6 attempts, not hundreds.
  const auto attempts = c.stats().connect_attempts;
  EXPECT_GE(attempts, 4u);
  EXPECT_LE(attempts, 9u);
}

// --- server timeouts --------------------------------------------------------------------------

TEST(ServerTimeouts, ASilentConnectionIsClosedAfterTheFirstFrameTimeout) {
  TestServer s({.first_frame_timeout = 300ms});
  const std::string uri = s.listen("tcp4");
  s.server.start();
  RawPeer silent(uri);
  Client c(uri);
  const auto t0 = Clock::now();
  const auto f = silent.read_frame(3s);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->kind, FrameKind::error);
  EXPECT_NE(error_message(*f).find("first_frame_timeout"), std::string::npos) << error_message(*f);
  EXPECT_TRUE(silent.wait_closed(2s));
  EXPECT_GE(Clock::now() - t0, 250ms);
  // Others were served all along, and still are.
  EXPECT_EQ(add(c, 1, 2).value, 3);
  EXPECT_EQ(s.server.stats().connections_timed_out, 1u);
}

TEST(ServerTimeouts, APeerTricklingOneBytePerTickIsClosedAfterTheFrameTimeout) {
  TestServer s({.frame_timeout = 500ms});
  const std::string uri = s.listen("tcp4");
  s.server.start();
  RawPeer slow(uri);
  Client c(uri);
  const auto frame = request_frame<calc::Number>("add", calc::AddRequest{1, 2}, 1);
  const auto t0 = Clock::now();
  std::size_t sent = 0;
  // One byte every 50 ms: the frame would take over 2 s.
  while (sent < frame.size() && slow.send_all(frame.data() + sent, 1)) {
    ++sent;
    EXPECT_EQ(add(c, 2, 2).value, 4);  // nobody else waits for the slow peer
    if (slow.read_frame(50ms) || slow.closed()) break;
  }
  EXPECT_TRUE(slow.wait_closed(2s));
  EXPECT_LT(sent, frame.size());
  EXPECT_LT(Clock::now() - t0, 1500ms);
  EXPECT_EQ(s.server.stats().connections_timed_out, 1u);
}

TEST(ServerTimeouts, AnIdlePeerIsClosedButAHeartbeatingClientIsNot) {
  TestServer s({.idle_timeout = 400ms});
  const std::string uri = s.listen("tcp4");
  s.server.start();
  RawPeer quiet(uri);
  ASSERT_TRUE(quiet.send_all(control_frame(FrameKind::heartbeat)));
  const auto pong = quiet.read_frame(2s);  // a heartbeat is answered
  ASSERT_TRUE(pong.has_value());
  EXPECT_EQ(pong->kind, FrameKind::heartbeat);
  Client c(uri, {.heartbeat_interval = 100ms, .heartbeat_timeout = 1000ms});
  EXPECT_EQ(add(c, 1, 1).value, 2);
  const auto f = quiet.read_frame(3s);
  ASSERT_TRUE(f.has_value());
  EXPECT_NE(error_message(*f).find("idle_timeout"), std::string::npos) << error_message(*f);
  EXPECT_TRUE(quiet.wait_closed(2s));
  // The client stayed idle as long, but its heartbeats kept its connection.
  std::this_thread::sleep_for(600ms);  // idle on purpose: longer than idle_timeout
  EXPECT_EQ(add(c, 2, 2).value, 4);
  EXPECT_EQ(c.stats().connections, 1u);
}

TEST(ServerLimits, ConnectionsBeyondTheLimitAreRefusedWithAReason) {
  TestServer s({.max_connections = 2});
  const std::string uri = s.listen("tcp4");
  s.server.start();
  Client a(uri);
  Client b(uri);
  EXPECT_EQ(add(a, 1, 1).value, 2);
  EXPECT_EQ(add(b, 1, 1).value, 2);
  RawPeer third(uri);
  const auto f = third.read_frame(3s);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->kind, FrameKind::error);
  EXPECT_NE(error_message(*f).find("max_connections"), std::string::npos) << error_message(*f);
  EXPECT_TRUE(third.wait_closed(2s));
  EXPECT_EQ(s.server.stats().connections_refused, 1u);
  // A slot freed is a slot available.
  a.close();
  ASSERT_TRUE(eventually([&] { return s.server.stats().connections == 1; }));
  Client d(uri);
  EXPECT_EQ(add(d, 3, 3).value, 6);
}

TEST(ServerLimits, APeerThatDoesNotReadIsHeldBackNotBuffered) {
  TestServer s({.max_outbound_bytes = 64 * 1024});
  const std::string uri = s.listen("unix");
  s.server.start();
  RawPeer greedy(uri);
  // Pipeline requests, never read: the server stops reading once 64 KiB of replies wait, the
  // socket buffers fill, and sending blocks. Count what got out before it did.
  const auto frame = request_frame<calc::Number>("add", calc::AddRequest{1, 2}, 1);
  std::size_t sent = 0;
  for (; sent < 100000; ++sent) {
    pollfd p{greedy.fd(), POLLOUT, 0};
    if (::poll(&p, 1, 500) <= 0) break;  // blocked for half a second: held back
    if (!greedy.send_all(frame)) break;
  }
  EXPECT_LT(sent, 100000u) << "the server kept reading a peer that does not read";
  // Others are still served.
  Client c(uri);
  EXPECT_EQ(add(c, 1, 1).value, 2);
  EXPECT_EQ(s.server.stats().connections, 2u);
}

TEST(ServerLimits, ClosingAConnectionCancelsItsCalls) {
  TestServer s;
  const std::string uri = s.listen("tcp4");
  s.server.start();
  {
    RawPeer peer(uri);
    ASSERT_TRUE(
        peer.send_all(request_frame<calc::Number>("until_cancelled", calc::Number{10000}, 1)));
    ASSERT_TRUE(eventually([&] { return s.running_cancellable->load() == 1; }));
  }  // gone without a word
  EXPECT_TRUE(eventually([&] { return s.saw_cancel->load() == 1; }, 2s));
  EXPECT_TRUE(eventually([&] { return s.server.stats().calls_in_flight == 0; }, 2s));
  EXPECT_TRUE(eventually([&] { return s.server.stats().connections == 0; }, 2s));
}

// --- client heartbeats ---------------------------------------------------------------------------

TEST(ClientHeartbeats, ASilentServerIsDetectedWithinTheHeartbeatTimeout) {
  // A "server" that accepts and then never sends a byte: what a stopped process or a vanished
  // host looks like from the client.
  const LoopbackPort stopped(LoopbackPort::silent);
  Client c(stopped.uri(),
           {.timeout = 20s, .heartbeat_interval = 100ms, .heartbeat_timeout = 500ms});
  const auto t0 = Clock::now();
  const auto r = c.try_call<calc::Number>("add", calc::AddRequest{1, 2});
  EXPECT_EQ(r.code(), StatusCode::unavailable) << r.status().to_string();
  EXPECT_NE(r.status().message.find("heartbeat_timeout"), std::string::npos);
  EXPECT_LT(Clock::now() - t0, 2s);  // not the call's 20 s
}

}  // namespace
