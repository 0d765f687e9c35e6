// The raw-socket baseline shared by the benchmarks: a 64-byte echo over loopback TCP or an
// abstract unix socket, timed from a blocking client. Header-only, bench-only.
#pragma once

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace bench {

inline constexpr std::size_t kMsg = 64;

struct Listener {
  int fd;
  sockaddr_storage addr;
  socklen_t len;
  int family;
};

inline Listener listen_on(bool tcp) {
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
    const std::string name = "@brine-raw-bench-" + std::to_string(::getpid());
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

inline void nodelay(int fd, int family) {
  if (family == AF_INET) {
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
}

inline bool read_exact(int fd, char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t r = ::recv(fd, p, n, 0);
    if (r <= 0) return false;
    p += r;
    n -= std::size_t(r);
  }
  return true;
}

// Accepts one connection and echoes 64-byte messages until EOF: a thread, blocking calls.
inline void serve_blocking(int listen_fd, int family) {
  const int fd = ::accept(listen_fd, nullptr, nullptr);
  nodelay(fd, family);
  char buf[kMsg];
  while (read_exact(fd, buf, kMsg)) ::send(fd, buf, kMsg, MSG_NOSIGNAL);
  ::close(fd);
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// p50 in microseconds of n round trips (after 200 to warm up) against the listener.
inline double client_p50(const Listener& l, int n) {
  const int fd = ::socket(l.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ::connect(fd, reinterpret_cast<const sockaddr*>(&l.addr), l.len);
  nodelay(fd, l.family);
  char msg[kMsg] = {};
  std::vector<double> us;
  us.reserve(std::size_t(n));
  for (int i = 0; i < n + 200; ++i) {
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

// One server (`serve` on its own thread) against the blocking client.
inline double echo_p50(bool tcp, void (*serve)(int, int), int n) {
  Listener l = listen_on(tcp);
  std::thread server(serve, l.fd, l.family);
  const double p50 = client_p50(l, n);
  server.join();
  ::close(l.fd);
  return p50;
}

}  // namespace bench
