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

namespace {

constexpr std::size_t kMsg = 64;

struct Listener {
  int fd;
  sockaddr_storage addr;
  socklen_t len;
  int family;
};

Listener listen_on(bool tcp) {
  Listener l{};
  if (tcp) {
    l.family = AF_INET;
    l.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(l.fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  } else {
    l.family = AF_UNIX;
    l.fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    const std::string name = "@brine-io-bench-" + std::to_string(::getpid());
    std::memcpy(a.sun_path, name.data(), name.size());
    a.sun_path[0] = '\0';
    ::bind(l.fd, reinterpret_cast<sockaddr*>(&a),
           socklen_t(offsetof(sockaddr_un, sun_path) + name.size()));
  }
  ::listen(l.fd, 16);
  l.len = sizeof l.addr;
  ::getsockname(l.fd, reinterpret_cast<sockaddr*>(&l.addr), &l.len);
  return l;
}

void nodelay(int fd, int family) {
  if (family == AF_INET) {
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
}

bool read_exact(int fd, char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t r = ::recv(fd, p, n, 0);
    if (r <= 0) return false;
    p += r;
    n -= std::size_t(r);
  }
  return true;
}

// --- servers: each accepts one connection and echoes until EOF ---------------------------------
void serve_blocking(int listen_fd, int family) {
  const int fd = ::accept(listen_fd, nullptr, nullptr);
  nodelay(fd, family);
  char buf[kMsg];
  while (read_exact(fd, buf, kMsg)) ::send(fd, buf, kMsg, MSG_NOSIGNAL);
  ::close(fd);
}

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

// --- the client: p50 of n round trips ----------------------------------------------------------
double client_p50(const Listener& l, int n) {
  const int fd = ::socket(l.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ::connect(fd, reinterpret_cast<const sockaddr*>(&l.addr), l.len);
  nodelay(fd, l.family);
  char msg[kMsg] = {};
  std::vector<double> us;
  us.reserve(std::size_t(n));
  for (int i = 0; i < n + 200; ++i) {  // the first 200 warm up
    const auto t0 = std::chrono::steady_clock::now();
    ::send(fd, msg, kMsg, MSG_NOSIGNAL);
    read_exact(fd, msg, kMsg);
    const auto t1 = std::chrono::steady_clock::now();
    if (i >= 200) us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  ::close(fd);
  std::nth_element(us.begin(), us.begin() + long(us.size() / 2), us.end());
  return us[us.size() / 2];
}

double run_once(bool tcp, void (*serve)(int, int), int n) {
  Listener l = listen_on(tcp);
  std::thread server(serve, l.fd, l.family);
  const double p50 = client_p50(l, n);
  server.join();
  ::close(l.fd);
  return p50;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 20000;
  const int repeats = argc > 2 ? std::atoi(argv[2]) : 5;
  struct Core {
    const char* name;
    void (*serve)(int, int);
  };
  const Core cores[] = {{"blocking", serve_blocking}, {"epoll", serve_epoll}, {"asio", serve_asio}};
  std::printf("# %d round trips x %d repeats, 64-byte echo; median of per-repeat p50\n", n,
              repeats);
  std::printf("%-6s %-9s %10s %8s\n", "socket", "server", "p50_us", "ratio");
  for (bool tcp : {true, false}) {
    // Interleave the cores within each repeat so drift on a noisy machine hits all alike.
    std::vector<std::vector<double>> p50s(std::size(cores));
    for (int r = 0; r < repeats; ++r) {
      for (std::size_t c = 0; c < std::size(cores); ++c) {
        p50s[c].push_back(run_once(tcp, cores[c].serve, n));
      }
    }
    const double base = median(p50s[0]);
    for (std::size_t c = 0; c < std::size(cores); ++c) {
      const double m = median(p50s[c]);
      std::printf("%-6s %-9s %10.2f %8.3f\n", tcp ? "tcp" : "unix", cores[c].name, m, m / base);
    }
  }
}
