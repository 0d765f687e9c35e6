// Which I/O core? Round-trip latency of a 64-byte echo over loopback TCP and a unix socket,
// served three ways, with the same blocking client:
//   blocking  - a thread per connection, blocking recv/send (the raw-socket baseline)
//   epoll     - a hand-written edge-triggered epoll loop, one thread, non-blocking sockets
//   asio      - standalone Asio, async_read_some/async_write on one io_context thread
// Prints the median over repeats of each run's p50, and the ratio to the baseline.
//   bench/io_core [round_trips_per_repeat] [repeats]
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <asio.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "raw_echo.hpp"

namespace {

using bench::kMsg;
using bench::nodelay;

void serve_epoll(int listen_fd, int family) {
  const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK);
  nodelay(fd, family);
  const int ep = ::epoll_create1(0);
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLET;
  ev.data.fd = fd;
  ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  char buf[4096];
  bool open = true;
  while (open) {
    epoll_event out[4];
    const int n = ::epoll_wait(ep, out, 4, -1);
    for (int i = 0; i < n; ++i) {
      for (;;) {
        const ssize_t r = ::recv(fd, buf, sizeof buf, 0);
        if (r > 0) {
          ::send(fd, buf, std::size_t(r), MSG_NOSIGNAL);
          continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) open = false;
        break;
      }
    }
  }
  ::close(ep);
  ::close(fd);
}

struct AsioEcho : std::enable_shared_from_this<AsioEcho> {
  explicit AsioEcho(asio::generic::stream_protocol::socket s) : socket(std::move(s)) {}
  void read() {
    socket.async_read_some(asio::buffer(buf),
                           [self = shared_from_this()](std::error_code ec, std::size_t n) {
                             if (ec) return;
                             asio::async_write(self->socket, asio::buffer(self->buf, n),
                                               [self](std::error_code e, std::size_t) {
                                                 if (!e) self->read();
                                               });
                           });
  }
  asio::generic::stream_protocol::socket socket;
  char buf[4096];
};

void serve_asio(int listen_fd, int family) {
  asio::io_context io(1);
  const int fd = ::accept(listen_fd, nullptr, nullptr);
  nodelay(fd, family);
  asio::generic::stream_protocol::socket s(
      io, asio::generic::stream_protocol(family, family == AF_INET ? IPPROTO_TCP : 0), fd);
  std::make_shared<AsioEcho>(std::move(s))->read();
  io.run();
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 20000;
  const int repeats = argc > 2 ? std::atoi(argv[2]) : 5;
  struct Core {
    const char* name;
    void (*serve)(int, int);
  };
  const Core cores[] = {
      {"blocking", bench::serve_blocking}, {"epoll", serve_epoll}, {"asio", serve_asio}};
  std::printf("# %d round trips x %d repeats, 64-byte echo; median of per-repeat p50\n", n,
              repeats);
  std::printf("%-6s %-9s %10s %8s\n", "socket", "server", "p50_us", "ratio");
  for (bool tcp : {true, false}) {
    // Interleave the cores within each repeat so drift on a noisy machine hits all alike.
    std::vector<std::vector<double>> p50s(std::size(cores));
    for (int r = 0; r < repeats; ++r) {
      for (std::size_t c = 0; c < std::size(cores); ++c) {
        p50s[c].push_back(bench::echo_p50(tcp, cores[c].serve, n));
      }
    }
    const double base = bench::median(p50s[0]);
    for (std::size_t c = 0; c < std::size(cores); ++c) {
      const double m = bench::median(p50s[c]);
      std::printf("%-6s %-9s %10.2f %8.3f\n", tcp ? "tcp" : "unix", cores[c].name, m, m / base);
    }
  }
}
