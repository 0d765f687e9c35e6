// Datagram transports (udp://, unixgram://) on what a network does to datagrams: loss,
// duplicates, reordering (provoked by the test kit's proxy), a spoofed-source flood, and the
// at-most-once rule seen byte by byte (docs/wire-format.md, "Datagrams").
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <brine/testing.hpp>
#include <cstring>
#include <thread>
#include <vector>

#include "brine/detail/frame.hpp"
#include "eventually.hpp"
#include "families.hpp"
#include "test_server.hpp"
#include "transports.hpp"

namespace {

using namespace std::chrono_literals;
using brine::Client;
using brine::StatusCode;
using brine::testing::FaultProxy;
using brine::testing::Faults;
using brine_test::CerealFamily;
using brine_test::eventually;
using brine_test::TestServer;
using Clock = std::chrono::steady_clock;

class Datagrams : public testing::TestWithParam<std::string> {};

// Calls that each add 1 to the server's counter, from 4 threads, through `faults`: every call
// ends OK or DEADLINE_EXCEEDED, and the counter equals the calls that ran, each once.
void every_call_runs_at_most_once(const std::string& transport, const Faults& faults,
                                  int calls_per_thread) {
  TestServer s;
  const std::string uri = s.listen(transport);
  s.server.start();
  FaultProxy proxy(uri, faults);
  Client c(proxy.endpoint(),
           {.timeout = 8s, .heartbeat_timeout = 6000ms, .retransmit_interval = 10ms});
  std::atomic<int> ok{0}, timed_out{0}, other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < calls_per_thread; ++i) {
        const auto r = c.try_call<CerealFamily::Number>("count", CerealFamily::number(1));
        if (r.ok()) {
          ++ok;
        } else if (r.code() == StatusCode::deadline_exceeded) {
          ++timed_out;
        } else {
          ADD_FAILURE() << r.status().to_string();
          ++other;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(other.load(), 0);
  // Each call that succeeded ran once; one that timed out ran once or never. Never twice.
  const int ran = s.counted->load();
  EXPECT_GE(ran, ok.load());
  EXPECT_LE(ran, ok.load() + timed_out.load());
  EXPECT_GT(ok.load(), 4 * calls_per_thread * 9 / 10) << "timed out: " << timed_out.load();
}

TEST_P(Datagrams, ThirtyPercentLossEndsEveryCallInTimeAndRunsNoneTwice) {
  every_call_runs_at_most_once(GetParam(), {.loss = 0.3}, 50);
}

TEST_P(Datagrams, DuplicatedAndReorderedDatagramsRunEachCallOnce) {
  every_call_runs_at_most_once(
      GetParam(), {.latency = 1ms, .jitter = 3ms, .loss = 0.05, .duplicate = 0.5, .reorder = 0.3},
      50);
}

TEST_P(Datagrams, ABlackHoleEndsCallsByTheirDeadlineAndTheSessionByHeartbeats) {
  TestServer s;
  const std::string uri = s.listen(GetParam());
  s.server.start();
  FaultProxy proxy(uri);
  Client c(proxy.endpoint(),
           {.timeout = 2s, .heartbeat_interval = 100ms, .heartbeat_timeout = 500ms});
  EXPECT_EQ(c.call<CerealFamily::Number>("count", CerealFamily::number(1)).value, 1);
  proxy.set({.black_hole = true});
  const auto t0 = Clock::now();
  const auto r =
      c.try_call<CerealFamily::Number>("count", CerealFamily::number(1), {.timeout = 300ms});
  EXPECT_EQ(r.code(), StatusCode::deadline_exceeded) << r.status().to_string();
  EXPECT_LT(Clock::now() - t0, 2s);
  // Silence for heartbeat_timeout: the session is declared dead; calls after it fail at once
  // while the client cannot reach the server again.
  std::this_thread::sleep_for(700ms);
  const auto after =
      c.try_call<CerealFamily::Number>("count", CerealFamily::number(1), {.timeout = 300ms});
  EXPECT_TRUE(after.code() == StatusCode::unavailable ||
              after.code() == StatusCode::deadline_exceeded)
      << after.status().to_string();
  proxy.set({});
  EXPECT_TRUE(eventually(
      [&] { return c.try_call<CerealFamily::Number>("count", CerealFamily::number(1)).ok(); }, 5s));
  EXPECT_LE(s.counted->load(), 3);  // the call lost in the hole may have run; none twice
}

TEST_P(Datagrams, AResetProxyIsANewAddressWhichStartsANewSession) {
  TestServer s;
  const std::string uri = s.listen(GetParam());
  s.server.start();
  FaultProxy proxy(uri);
  Client c(proxy.endpoint(), {.timeout = 2s});
  EXPECT_EQ(c.call<CerealFamily::Number>("count", CerealFamily::number(1)).value, 1);
  proxy.reset();  // the server now sees the client's datagrams come from another address
  // The server does not know (address, session): the client is told, and starts again.
  EXPECT_TRUE(eventually(
      [&] { return c.try_call<CerealFamily::Number>("count", CerealFamily::number(1)).ok(); }, 5s));
  // The old session's socket through a fresh association (told its session is unknown), then
  // the new session's socket.
  EXPECT_EQ(proxy.accepted(), 3u);
}

INSTANTIATE_TEST_SUITE_P(Transports, Datagrams, testing::Values("udp4", "udp6", "unixgram"));

// --- byte by byte, over udp -----------------------------------------------------------------

// A raw UDP socket bound to `source` (any 127.0.0.0/8 address) and connected to `port`.
int raw_socket(const char* source, std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  ::inet_pton(AF_INET, source, &a.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return -1;
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) return -1;
  return fd;
}

std::uint16_t port_of(const std::string& uri) {
  return std::uint16_t(std::stoul(uri.substr(uri.rfind(':') + 1)));
}

// The envelope, as docs/wire-format.md writes it.
std::string client_datagram(std::uint8_t type, std::uint64_t session, const std::string& cookie,
                            const std::string& frame = {}) {
  std::string d = "bd";
  d += char(1);
  d += char(type);
  for (int i = 7; i >= 0; --i) d += char((session >> (8 * i)) & 0xFF);
  d += cookie.size() == 16 ? cookie : std::string(16, '\0');
  return d + frame;
}

// A cereal request frame for "count" adding `n`, with call id `id`.
std::string count_request(std::uint64_t id, double n) {
  std::string payload(1, '\x01');
  payload.append(reinterpret_cast<const char*>(&n), sizeof n);  // little-endian here
  const std::string method = "count";
  std::string f;
  const std::uint32_t length = std::uint32_t(16 + method.size() + payload.size());
  for (int i = 3; i >= 0; --i) f += char((length >> (8 * i)) & 0xFF);
  f += "br";
  f += char(1);  // version
  f += char(1);  // request
  f += char(1);  // cereal
  f += char(0);  // flags
  f += char(0);
  f += char(method.size());
  for (int i = 7; i >= 0; --i) f += char((id >> (8 * i)) & 0xFF);
  return f + method + payload;
}

// The next datagram on `fd` within `timeout`, or "" if none.
std::string receive(int fd, std::chrono::milliseconds timeout = 2000ms) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, int(timeout.count())) <= 0) return {};
  char buf[65536];
  const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  return n > 0 ? std::string(buf, std::size_t(n)) : std::string();
}

// A hello answered with a cookie; the cookie (16 bytes) or "".
std::string handshake(int fd, std::uint64_t session) {
  const std::string hello = client_datagram(1, session, "");
  EXPECT_EQ(hello.size(), 28u);
  ::send(fd, hello.data(), hello.size(), 0);
  const std::string answer = receive(fd);
  if (answer.size() != 28 || answer.substr(0, 4) != std::string("bd\x01\x03", 4)) return {};
  EXPECT_EQ(answer.substr(4, 8), hello.substr(4, 8));  // the session, echoed
  return answer.substr(12);
}

TEST(DatagramWire, ARequestSentAgainIsAnsweredFromMemoryAndRunsOnce) {
  TestServer s({.call_memory = 300ms});
  const std::string uri = s.listen("udp4");
  s.server.start();
  const int fd = raw_socket("127.0.0.1", port_of(uri));
  ASSERT_GE(fd, 0);
  const std::uint64_t session = 0x0123456789abcdefull;
  const std::string cookie = handshake(fd, session);
  ASSERT_EQ(cookie.size(), 16u);
  const std::string request = client_datagram(2, session, cookie, count_request(1, 5));
  ::send(fd, request.data(), request.size(), 0);
  const std::string reply = receive(fd);
  ASSERT_GT(reply.size(), 12u);
  EXPECT_EQ(reply.substr(0, 4), std::string("bd\x01\x04", 4));
  EXPECT_EQ(reply[12 + 7], char(2)) << "a reply frame";
  // The same datagram again (the reply was "lost"): the same answer, from memory.
  ::send(fd, request.data(), request.size(), 0);
  EXPECT_EQ(receive(fd), reply);
  EXPECT_EQ(s.counted->load(), 5);
  // Past call_memory the call is forgotten, and a copy of it is refused rather than run again.
  std::this_thread::sleep_for(400ms);
  const std::string other = client_datagram(2, session, cookie, count_request(2, 1));
  ::send(fd, other.data(), other.size(), 0);
  ASSERT_FALSE(receive(fd).empty());
  ::send(fd, request.data(), request.size(), 0);
  const std::string refused = receive(fd);
  ASSERT_GT(refused.size(), 12u + 20 + 4);
  EXPECT_EQ(refused[12 + 7], char(3)) << "an error frame";
  EXPECT_EQ(brine::detail::load_be32(reinterpret_cast<const std::byte*>(refused.data()) + 32),
            std::uint32_t(StatusCode::unavailable));
  EXPECT_EQ(s.counted->load(), 6);
  ::close(fd);
}

// A bye ends the session at once, and for good: the same session is not opened again, even with
// its valid cookie (its calls' memory is gone), and its client is told so.
TEST(DatagramWire, AByeEndsTheSessionForGood) {
  TestServer s;
  const std::string uri = s.listen("udp4");
  s.server.start();
  const int fd = raw_socket("127.0.0.1", port_of(uri));
  ASSERT_GE(fd, 0);
  const std::uint64_t session = 77;
  const std::string cookie = handshake(fd, session);
  ASSERT_EQ(cookie.size(), 16u);
  const std::string request = client_datagram(2, session, cookie, count_request(1, 1));
  ::send(fd, request.data(), request.size(), 0);
  ASSERT_FALSE(receive(fd).empty());
  EXPECT_TRUE(eventually([&] { return s.server.stats().connections == 1; }, 5s));
  const std::string bye = client_datagram(6, session, cookie);
  ASSERT_EQ(bye.size(), 28u);
  ::send(fd, bye.data(), bye.size(), 0);
  EXPECT_TRUE(eventually([&] { return s.server.stats().connections == 0; }, 5s));
  EXPECT_EQ(receive(fd, 100ms), "") << "a bye is not answered";
  // A copy of the request after the bye: "session unknown" (12 bytes), and it does not run.
  ::send(fd, request.data(), request.size(), 0);
  const std::string unknown = receive(fd);
  EXPECT_EQ(unknown, std::string("bd\x01\x05", 4) + request.substr(4, 8));
  EXPECT_EQ(s.counted->load(), 1);
  ::close(fd);
}

// Datagrams whose source address may be spoofed never get more bytes back than they carried,
// and make no state: hellos (answered with as many bytes), frames without a valid cookie
// (answered with fewer), garbage (not answered).
TEST(DatagramWire, ASpoofedSourceFloodIsNotAmplified) {
  TestServer s;
  const std::string uri = s.listen("udp4");
  s.server.start();
  std::size_t sent = 0, received = 0;
  std::vector<int> victims;
  for (int i = 2; i < 42; ++i) {
    const std::string source = "127.0.0." + std::to_string(i);
    const int fd = raw_socket(source.c_str(), port_of(uri));
    ASSERT_GE(fd, 0) << source;
    victims.push_back(fd);
    const std::uint64_t session = 1000 + std::uint64_t(i);
    const std::string frames[] = {
        client_datagram(1, session, ""),
        client_datagram(2, session, std::string(16, 'x'), count_request(1, 1)),
        client_datagram(2, session, "", count_request(2, 1)),
        std::string(1200, 'z'),
        client_datagram(2, session, std::string(16, 'q'),
                        count_request(3, 1) + std::string(900, 'p')),
    };
    for (const auto& f : frames) {
      ::send(fd, f.data(), f.size(), 0);
      sent += f.size();
    }
  }
  // Everything the server sent back, to any of the sources.
  for (int fd : victims) {
    for (std::string d = receive(fd, 200ms); !d.empty(); d = receive(fd, 50ms)) {
      received += d.size();
    }
    ::close(fd);
  }
  EXPECT_LE(received, sent / 4) << "sent " << sent << ", got back " << received;
  EXPECT_EQ(s.counted->load(), 0);
  EXPECT_EQ(s.server.stats().connections, 0u);
}

}  // namespace
