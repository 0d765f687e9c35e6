// libFuzzer target: a live server's connection handler fed a raw byte stream. Each input is
// written to a new connection of one in-process server (frame parser, dispatch, codecs, objects
// and references); the server must survive everything, and every 256 inputs a well-formed call
// on a fresh connection must still be answered.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <poll.h>
#include <algorithm>
#include <brine/brine.hpp>
#include <brine/codecs/cereal.hpp>
#include <brine/codecs/json.hpp>
#include <brine/codecs/protobuf.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "test_messages.pb.h"

namespace fuzz_server {

struct Pair {
  double a = 0;
  double b = 0;
  template <class A>
  void serialize(A& ar) {
    ar(CEREAL_NVP(a), CEREAL_NVP(b));
  }
};

struct Counter {
  virtual ~Counter() = default;
  virtual std::int64_t add(std::int64_t a, const std::string& label) = 0;
  virtual brine::Ref<Counter> fork() = 0;
  virtual void touch() = 0;
};
BRINE_INTERFACE(Counter, add, fork, touch);

struct CounterImpl final : Counter {
  std::int64_t add(std::int64_t a, const std::string& label) override {
    return a + std::int64_t(label.size());
  }
  brine::Ref<Counter> fork() override { return brine::make_ref<Counter, CounterImpl>(); }
  void touch() override {}
};

}  // namespace fuzz_server

namespace {

using namespace fuzz_server;

const std::string kName = "brine-fuzz-server-" + std::to_string(::getpid());

brine::Server& server() {
  static brine::Server* s = [] {
    auto* srv = new brine::Server({.workers = 1, .max_frame_size = 64 * 1024});
    srv->handle("add", [](const Pair& p) { return p.a + p.b; });
    srv->handle("echo", [](const brine_test::Everything& e) { return e; },
                {.codecs = {brine::CodecId::protobuf, brine::CodecId::json}});
    srv->expose<Counter>("counter", std::make_shared<CounterImpl>());
    // Streams: items out, items in, both ways. (Plain functions on the one worker, not
    // coroutines: clang 14 cannot compile coroutines with the fuzzer's coverage
    // instrumentation, "Cannot represent a difference across sections".)
    srv->handle("count", [](const Pair& p, brine::Writer<double>& out) {
      for (int i = 0; i < int(std::min(p.a, 100.0)); ++i) {
        if (!out.write(double(i))) return;
      }
    });
    srv->handle("total", [](const Pair& p, brine::Reader<double>& in) {
      double t = p.a;
      while (auto x = in.read()) t += *x;
      return t;
    });
    srv->handle("twice", [](const Pair&, brine::Reader<double>& in, brine::Writer<double>& out) {
      while (auto x = in.read()) {
        if (!out.write(2 * *x)) return;
      }
    });
    srv->listen("unix://@" + kName);
    srv->start();
    return srv;
  }();
  return *s;
}

int connect_abstract() {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path + 1, kName.data(), kName.size());
  const auto len = socklen_t(offsetof(sockaddr_un, sun_path) + 1 + kName.size());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), len) != 0) __builtin_trap();
  return fd;
}

// Writes what the server takes, reads what it says, until it closes or goes quiet.
void exchange(int fd, const std::uint8_t* data, std::size_t size) {
  std::size_t sent = 0;
  char sink[4096];
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
  bool write_done = size == 0;
  if (write_done) ::shutdown(fd, SHUT_WR);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, short(POLLIN | (write_done ? 0 : POLLOUT)), 0};
    if (::poll(&p, 1, 50) <= 0) {
      if (write_done) return;  // quiet: the server waits for the rest of a frame
      continue;
    }
    if (p.revents & POLLIN) {
      const ssize_t n = ::recv(fd, sink, sizeof sink, 0);
      if (n <= 0) return;  // closed: a bad frame cost its connection
    }
    if (!write_done && (p.revents & POLLOUT)) {
      const ssize_t n = ::send(fd, data + sent, size - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && errno != EAGAIN) return;
      if (n > 0) sent += std::size_t(n);
      if (sent == size) {
        ::shutdown(fd, SHUT_WR);
        write_done = true;
      }
    }
    if (p.revents & (POLLERR | POLLHUP)) return;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  (void)server();
  const int fd = connect_abstract();
  exchange(fd, data, size);
  ::close(fd);
  static unsigned runs = 0;
  if (++runs % 256 == 0) {
    brine::Client c("unix://@" + kName, {.codec = "cereal", .timeout = std::chrono::seconds(5)});
    if (c.call<double>("add", Pair{1, 2}) != 3) __builtin_trap();
  }
  return 0;
}
