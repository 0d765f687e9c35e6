// The server side of brine_bench, in its own process. Prints one "listening <uri>" line per
// endpoint, then "ready", and serves until killed.
//
//   bench_server raw [--spin]   raw sockets: tcp4, tcp6 and unix, a thread per connection
//                               echoing frames with a 4-byte big-endian length prefix; --spin
//                               busy-polls a non-blocking socket instead of sleeping in recv
//   bench_server zmq            raw ZeroMQ: one ROUTER (tcp and ipc) echoing each message
//   bench_server brine [--workers N] [--io-threads N] [--busy-poll US] [--tls CERT KEY]
//                      [--interceptors N] [--metrics 0|1]
//                               a brine server on tcp4, tcp6, unix, zmq+tcp, zmq+ipc (and tls)
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "bench_common.hpp"

namespace {

using namespace brine_bench;

std::string tmp_name(const char* what) {
  return "/tmp/brine-bench-" + std::string(what) + "-" + std::to_string(::getpid());
}

// --- raw sockets ---------------------------------------------------------------------------------

bool read_exact(int fd, char* p, std::size_t n, bool spin) {
  while (n > 0) {
    const ssize_t r = ::recv(fd, p, n, 0);
    if (r > 0) {
      p += r;
      n -= std::size_t(r);
    } else if (r < 0 && spin && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      continue;  // busy-poll
    } else if (r < 0 && errno == EINTR) {
      continue;
    } else {
      return false;
    }
  }
  return true;
}

bool write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w > 0) {
      p += w;
      n -= std::size_t(w);
    } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      continue;
    } else {
      return false;
    }
  }
  return true;
}

// The raw stream: `count` frames of `size` bytes (from the request at `spec`), then an empty one.
// Each frame is written as it is made, as a stream's writer does.
bool write_items(int fd, const char* spec) {
  std::uint32_t be[2];
  std::memcpy(be, spec, 8);
  const std::uint32_t count = ntohl(be[0]);
  const std::uint32_t size = std::min<std::uint32_t>(ntohl(be[1]), 64u << 20);
  std::vector<char> item(4 + std::size_t(size), 'x');
  const std::uint32_t len = htonl(size);
  std::memcpy(item.data(), &len, 4);
  for (std::uint32_t i = 0; i < count; ++i) {
    if (!write_all(fd, item.data(), item.size())) return false;
  }
  const std::uint32_t zero = 0;
  return write_all(fd, reinterpret_cast<const char*>(&zero), 4);
}

void echo_frames(int fd, bool spin) {
  if (spin) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  std::vector<char> buf(4 + 1024);
  for (;;) {
    if (!read_exact(fd, buf.data(), 4, spin)) break;
    std::uint32_t be = 0;
    std::memcpy(&be, buf.data(), 4);
    const std::size_t n = ntohl(be);
    if (n > (64u << 20)) break;
    if (buf.size() < 4 + n) buf.resize(4 + n);
    if (!read_exact(fd, buf.data() + 4, n, spin)) break;
    if (n == 12 && std::memcmp(buf.data() + 4, kRawStreamMagic.data(), 4) == 0) {
      if (!write_items(fd, buf.data() + 8)) break;
      continue;
    }
    if (!write_all(fd, buf.data(), 4 + n)) break;
  }
  ::close(fd);
}

int listen_socket(int family, const sockaddr* addr, socklen_t len) {
  const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || ::bind(fd, addr, len) != 0 || ::listen(fd, 4096) != 0) {
    throw std::runtime_error(std::string("cannot listen: ") + std::strerror(errno));
  }
  return fd;
}

void accept_loop(int listen_fd, bool tcp, bool spin) {
  for (;;) {
    const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE) continue;
      return;
    }
    if (tcp) {
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    std::thread(echo_frames, fd, spin).detach();
  }
}

// Datagrams: each one is sent back as it came, to where it came from.
void echo_datagrams(int fd) {
  std::vector<char> buf(65536);
  for (;;) {
    sockaddr_storage from{};
    socklen_t len = sizeof from;
    const ssize_t n =
        ::recvfrom(fd, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    ::sendto(fd, buf.data(), std::size_t(n), 0, reinterpret_cast<sockaddr*>(&from), len);
  }
}

int run_raw(bool spin) {
  std::vector<std::thread> acceptors;
  if (!spin) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    socklen_t len = sizeof a;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      throw std::runtime_error(std::string("cannot bind udp: ") + std::strerror(errno));
    }
    std::printf("listening udp://127.0.0.1:%u\n", unsigned(ntohs(a.sin_port)));
    acceptors.emplace_back(echo_datagrams, fd);
    const std::string path = tmp_name("raw-dgram");
    ::unlink(path.c_str());
    sockaddr_un u{};
    u.sun_family = AF_UNIX;
    std::memcpy(u.sun_path, path.c_str(), path.size() + 1);
    const int ufd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (ufd < 0 || ::bind(ufd, reinterpret_cast<sockaddr*>(&u), sizeof u) != 0) {
      throw std::runtime_error(std::string("cannot bind unixgram: ") + std::strerror(errno));
    }
    std::printf("listening unixgram://%s\n", path.c_str());
    acceptors.emplace_back(echo_datagrams, ufd);
  }
  {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const int fd = listen_socket(AF_INET, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    std::printf("listening tcp://127.0.0.1:%u\n", unsigned(ntohs(a.sin_port)));
    acceptors.emplace_back(accept_loop, fd, true, spin);
  }
  {
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    const int fd = listen_socket(AF_INET6, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    std::printf("listening tcp://[::1]:%u\n", unsigned(ntohs(a.sin6_port)));
    acceptors.emplace_back(accept_loop, fd, true, spin);
  }
  {
    const std::string path = tmp_name(spin ? "raw-spin" : "raw");
    ::unlink(path.c_str());
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    const int fd = listen_socket(AF_UNIX, reinterpret_cast<sockaddr*>(&a), sizeof a);
    std::printf("listening unix://%s\n", path.c_str());
    acceptors.emplace_back(accept_loop, fd, false, spin);
  }
  std::printf("ready\n");
  std::fflush(stdout);
  for (auto& t : acceptors) t.join();
  return 0;
}

// --- raw ZeroMQ ---------------------------------------------------------------------------------

int run_zmq() {
  zmq::context_t ctx(1);
  zmq::socket_t router(ctx, zmq::socket_type::router);
  router.set(zmq::sockopt::linger, 0);
  router.set(zmq::sockopt::sndhwm, 0);
  router.set(zmq::sockopt::rcvhwm, 0);
  router.bind("tcp://127.0.0.1:*");
  std::printf("listening zmq+%s\n", router.get(zmq::sockopt::last_endpoint).c_str());
  const std::string ipc = "ipc://" + tmp_name("zmq");
  router.bind(ipc);
  std::printf("listening zmq+%s\n", ipc.c_str());
  std::printf("ready\n");
  std::fflush(stdout);
  for (;;) {
    zmq::message_t id;
    zmq::message_t body;
    if (!router.recv(id) || !router.recv(body)) continue;
    router.send(id, zmq::send_flags::sndmore);
    router.send(body, zmq::send_flags::none);
  }
}

// --- brine ---------------------------------------------------------------------------------------

int run_brine(int argc, char** argv) {
  brine::ServerOptions options;
  options.max_frame_size = 64u << 20;
  options.max_connections = 20000;
  std::string cert;
  std::string key;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--workers" && i + 1 < argc) {
      options.workers = std::size_t(std::atoi(argv[++i]));
    } else if (a == "--io-threads" && i + 1 < argc) {
      options.io_threads = std::size_t(std::atoi(argv[++i]));
    } else if (a == "--interceptors" && i + 1 < argc) {
      // That many interceptors that do nothing: the cost of the chain itself.
      struct Nothing final : brine::Interceptor {};
      for (int n = std::atoi(argv[++i]); n > 0; --n) {
        options.interceptors.push_back(std::make_shared<Nothing>());
      }
    } else if (a == "--metrics" && i + 1 < argc) {
      options.metrics = std::atoi(argv[++i]) != 0;
    } else if (a == "--busy-poll" && i + 1 < argc) {
      options.busy_poll = std::chrono::microseconds(std::atoi(argv[++i]));
    } else if (a == "--tls" && i + 2 < argc) {
      cert = argv[++i];
      key = argv[++i];
    } else {
      std::fprintf(stderr, "bench_server brine: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  options.tls.certificate_file = cert;
  options.tls.private_key_file = key;
  brine::Server server(options);
  // The structs serve cereal and json, the messages protobuf.
  const brine::HandlerOptions structs{.codecs = {brine::CodecId::cereal, brine::CodecId::json}};
  const brine::HandlerOptions messages{.codecs = {brine::CodecId::protobuf}};
  server.handle(
      kEcho, [](Blob b) { return b; }, structs);
  server.handle(
      kEchoPb, [](pb::Blob b) { return b; }, messages);
  server.handle(
      kAdd, [](const Pair& p) { return Sum{p.a + p.b}; }, structs);
  server.handle(
      kAddPb,
      [](const pb::Pair& p) {
        pb::Sum s;
        s.set_value(p.a() + p.b());
        return s;
      },
      messages);
  server.handle(kAllocations, [](const Count&) { return Count{allocations()}; });
  struct BouncerImpl final : Bouncer {
    Blob bounce(brine::Remote<Echoer> to, const Blob& b) override { return to.echo(b); }
    Blob echo(const Blob& b) override { return b; }
  };
  server.expose<Bouncer>("bouncer", std::make_shared<BouncerImpl>());
  // A stream of Pair{count, size} items: coroutines, so that 16 streams at once hold no thread.
  server.handle(
      kItems,
      [](Pair spec, brine::Writer<Blob>& out) -> brine::Task<void> {
        const Blob item{std::string(std::size_t(spec.b), 'x')};
        for (std::uint64_t i = 0; i < std::uint64_t(spec.a); ++i) {
          if (!co_await out.async_write(item)) co_return;
        }
      },
      structs);
  server.handle(
      kItems,
      [](pb::Pair spec, brine::Writer<pb::Blob>& out) -> brine::Task<void> {
        pb::Blob item;
        item.set_data(std::string(std::size_t(spec.b()), 'x'));
        for (std::uint64_t i = 0; i < std::uint64_t(spec.a()); ++i) {
          if (!co_await out.async_write(item)) co_return;
        }
      },
      messages);
  std::vector<std::string> listen = {"tcp://127.0.0.1:0",
                                     "tcp://[::1]:0",
                                     "unix://" + tmp_name("brine"),
                                     "zmq+tcp://127.0.0.1:0",
                                     "zmq+ipc://" + tmp_name("brine-zmq"),
                                     "udp://127.0.0.1:0",
                                     "unixgram://" + tmp_name("brine-dgram"),
                                     "http://127.0.0.1:0"};
  if (!cert.empty()) listen.push_back("tls://127.0.0.1:0");
  for (const auto& uri : listen) std::printf("listening %s\n", server.listen(uri).c_str());
  server.start();
  std::printf("ready\n");
  std::fflush(stdout);
  server.wait();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the bench
  const std::string mode = argc > 1 ? argv[1] : "";
  try {
    if (mode == "raw") return run_raw(argc > 2 && std::string(argv[2]) == "--spin");
    if (mode == "zmq") return run_zmq();
    if (mode == "brine") return run_brine(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_server: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "usage: bench_server raw [--spin] | zmq | brine [options]\n");
  return 2;
}
