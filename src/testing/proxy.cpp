// brine::testing::FaultProxy: a loopback proxy for stream endpoints that delays, throttles, cuts,
// resets or swallows what passes.
//
// One thread polls the listening socket, every connection's two sockets and a wake-up pipe.
// Bytes read from one side wait in a queue with the time they may leave (latency and jitter,
// order kept) and leave no faster than the cap allows. Cuts are decided when bytes are read: a
// connection passes what came before the cut, then closes both ways. Frames are counted by their
// length prefixes (docs/wire-format.md, "Frame"), so a cut can fall exactly between two frames.
//
// Datagram endpoints (udp://, unixgram://) are relayed by the same thread: one front socket,
// and per client address a socket connected to the server. Each datagram is dropped, delayed,
// doubled or held back as the faults say, and waits in a queue ordered by the time it may leave.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "brine/detail/frame.hpp"
#include "brine/testing.hpp"

namespace brine::testing {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxQueued = 1 << 20;  // per direction: past it, the source is not read
constexpr std::size_t kReadSize = 64 * 1024;

[[noreturn]] void fail_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), "brine::testing::FaultProxy: " + what);
}

struct Address {
  sockaddr_storage storage{};
  socklen_t length = 0;
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  int family() const { return storage.ss_family; }
};

Address unix_address(const std::string& path) {  // "@name": abstract
  Address a;
  auto* un = reinterpret_cast<sockaddr_un*>(&a.storage);
  un->sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof un->sun_path) {
    throw std::invalid_argument("brine::testing::FaultProxy: bad Unix path '" + path + "'");
  }
  std::memcpy(un->sun_path, path.data(), path.size());
  if (path[0] == '@') un->sun_path[0] = '\0';
  a.length = socklen_t(offsetof(sockaddr_un, sun_path) + path.size() + (path[0] == '@' ? 0 : 1));
  return a;
}

Address ip_address(const std::string& host, std::uint16_t port) {
  Address a;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    if (::inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &in6->sin6_addr) != 1) {
      throw std::invalid_argument("brine::testing::FaultProxy: bad IPv6 address " + host);
    }
    a.length = sizeof(sockaddr_in6);
  } else {
    auto* in = reinterpret_cast<sockaddr_in*>(&a.storage);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    if (::inet_pton(AF_INET, host.c_str(), &in->sin_addr) != 1) {
      throw std::invalid_argument("brine::testing::FaultProxy: bad IPv4 address " + host +
                                  " (numeric loopback addresses only)");
    }
    a.length = sizeof(sockaddr_in);
  }
  return a;
}

void close_fd(int& fd, bool reset) {
  if (fd < 0) return;
  if (reset) {
    const linger hard{1, 0};  // RST instead of FIN (ignored by Unix sockets)
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
  }
  ::close(fd);
  fd = -1;
}

struct Chunk {
  Clock::time_point due;
  std::string bytes;
  std::size_t sent = 0;
};

// One way through a connection.
struct Direction {
  std::deque<Chunk> queue;
  std::size_t queued = 0;
  Clock::time_point last_due{};
  Clock::time_point next_free{};
  bool eof = false;        // the source said it sends no more
  bool shut = false;       // and that was passed on (shutdown of the destination's write side)
  std::uint32_t need = 0;  // bytes left of the current frame after its length prefix
  std::byte prefix[4]{};
  int have = 0;  // bytes of the length prefix seen so far
};

// Datagrams: one client address and the socket that carries its datagrams to the server.
struct Association {
  Address client;
  int upstream = -1;
};

struct Datagram {
  int fd;
  std::optional<Address> to;  // the front socket's destination; upstream sockets are connected
  std::string bytes;
};

struct Connection {
  int client = -1;
  int server = -1;
  bool connecting = true;
  bool cutting = false;  // cut: nothing more is read; closed once the queues are empty
  std::size_t passed = 0;
  std::size_t frames = 0;
  Direction up;    // client -> server
  Direction down;  // server -> client
};

}  // namespace

struct FaultProxy::State {
  std::string target_uri;
  Address target;
  bool tcp = true;
  bool datagram = false;  // udp:// or unixgram://: listener is the front socket
  std::string endpoint;
  std::string unix_path;  // a listening path to remove at the end
  int listener = -1;
  int wake_r = -1, wake_w = -1;

  mutable std::mutex mu;
  Faults faults;
  bool reset_requested = false;
  bool stopping = false;

  std::atomic<std::size_t> open{0}, accepted{0};
  std::list<Connection> conns;
  std::map<std::string, Association> associations;     // by the client's address bytes
  std::multimap<Clock::time_point, Datagram> waiting;  // datagrams waiting for their time
  std::mt19937 random{std::random_device{}()};
  std::thread thread;

  ~State() {
    for (auto& c : conns) {
      close_fd(c.client, false);
      close_fd(c.server, false);
    }
    for (auto& [key, a] : associations) close_fd(a.upstream, false);
    if (listener >= 0) ::close(listener);
    if (wake_r >= 0) ::close(wake_r);
    if (wake_w >= 0) ::close(wake_w);
    if (!unix_path.empty()) ::unlink(unix_path.c_str());
  }

  void wake() const {
    const char one = 1;
    (void)!::write(wake_w, &one, 1);
  }

  void listen_on(const Address& a) {
    listener = ::socket(a.family(),
                        (datagram ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listener < 0) fail_errno("socket");
    if (::bind(listener, a.get(), a.length) != 0) fail_errno("bind");
    if (!datagram && ::listen(listener, 128) != 0) fail_errno("listen");
  }

  // --- datagrams ---

  // Applies the faults to one datagram: dropped, delayed, doubled, held back.
  void schedule(int fd, const std::optional<Address>& to, const char* data, std::size_t n,
                const Faults& f, Clock::time_point now) {
    std::uniform_real_distribution<double> share(0.0, 1.0);
    if (f.black_hole || share(random) < f.loss) return;
    const int copies = share(random) < f.duplicate ? 2 : 1;
    for (int i = 0; i < copies; ++i) {
      auto at = now + f.latency;
      if (f.jitter.count() > 0) {
        at += std::chrono::milliseconds(
            std::uniform_int_distribution<long>(0, long(f.jitter.count()))(random));
      }
      if (share(random) < f.reorder) at += f.latency + std::chrono::milliseconds(10);
      waiting.emplace(at, Datagram{fd, to, std::string(data, n)});
    }
  }

  void relay_in(const Faults& f) {  // from clients, at the front socket
    char buf[65536];
    for (int budget = 0; budget < 256; ++budget) {
      Address from;
      from.length = sizeof from.storage;
      const ssize_t n = ::recvfrom(listener, buf, sizeof buf, MSG_DONTWAIT,
                                   reinterpret_cast<sockaddr*>(&from.storage), &from.length);
      if (n < 0) return;
      const std::string key(reinterpret_cast<const char*>(&from.storage), from.length);
      auto it = associations.find(key);
      if (it == associations.end()) {
        Association a{from,
                      ::socket(target.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
        if (a.upstream < 0) continue;
        if (!tcp) {  // a unix datagram socket needs a name to be answered: the kernel's choice
          const sa_family_t only = AF_UNIX;
          ::bind(a.upstream, reinterpret_cast<const sockaddr*>(&only), sizeof only);
        }
        if (::connect(a.upstream, target.get(), target.length) != 0) {
          close_fd(a.upstream, false);
          continue;
        }
        it = associations.emplace(key, a).first;
        accepted.fetch_add(1);
        open.store(associations.size());
      }
      schedule(it->second.upstream, std::nullopt, buf, std::size_t(n), f, Clock::now());
    }
  }

  void relay_out(Association& a, const Faults& f) {  // from the server, towards one client
    char buf[65536];
    for (int budget = 0; budget < 256; ++budget) {
      const ssize_t n = ::recv(a.upstream, buf, sizeof buf, MSG_DONTWAIT);
      if (n < 0) return;
      schedule(listener, a.client, buf, std::size_t(n), f, Clock::now());
    }
  }

  void send_due(Clock::time_point now) {
    while (!waiting.empty() && waiting.begin()->first <= now) {
      const Datagram& d = waiting.begin()->second;
      if (d.to) {
        ::sendto(d.fd, d.bytes.data(), d.bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL, d.to->get(),
                 d.to->length);
      } else {
        ::send(d.fd, d.bytes.data(), d.bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      }
      waiting.erase(waiting.begin());
    }
  }

  // The faults for this turn, and whether reset() was asked for; false once stopping.
  bool next_turn(Faults& f, bool& reset_now) {
    std::lock_guard lk(mu);
    if (stopping) return false;
    f = faults;
    reset_now = std::exchange(reset_requested, false);
    return true;
  }

  void run_datagrams() {
    std::vector<pollfd> fds;
    std::vector<Association*> owners;
    for (;;) {
      Faults f;
      bool reset_now = false;
      if (!next_turn(f, reset_now)) return;
      if (reset_now) {
        for (auto& [key, a] : associations) close_fd(a.upstream, false);
        associations.clear();
        // Datagrams still waiting may name a closed socket: they go too.
        for (auto it = waiting.begin(); it != waiting.end();) {
          it = it->second.to ? std::next(it) : waiting.erase(it);
        }
        open.store(0);
      }
      const auto now = Clock::now();
      send_due(now);
      fds.assign({{wake_r, POLLIN, 0}, {listener, POLLIN, 0}});
      owners.assign(2, nullptr);
      for (auto& [key, a] : associations) {
        fds.push_back({a.upstream, POLLIN, 0});
        owners.push_back(&a);
      }
      int timeout = -1;
      if (!waiting.empty()) {
        timeout = int(std::max<std::int64_t>(
            0, std::chrono::ceil<std::chrono::milliseconds>(waiting.begin()->first - now).count()));
      }
      const int n = ::poll(fds.data(), nfds_t(fds.size()), timeout);
      if (n < 0 && errno != EINTR) return;
      if ((fds[0].revents & POLLIN) != 0) {
        char buf[64];
        while (::read(wake_r, buf, sizeof buf) > 0) {
        }
      }
      {
        std::lock_guard lk(mu);
        f = faults;
      }
      if ((fds[1].revents & POLLIN) != 0) relay_in(f);
      for (std::size_t i = 2; i < fds.size(); ++i) {
        // POLLERR: an ICMP error (the server's port closed) waits on the socket; recv() takes
        // it, or poll() would report it for ever.
        if ((fds[i].revents & (POLLIN | POLLERR)) != 0) relay_out(*owners[i], f);
      }
    }
  }

  void open_listener(const std::string& uri) {
    const auto sep = uri.find("://");
    if (sep == std::string::npos) throw std::invalid_argument("FaultProxy: bad URI " + uri);
    const std::string scheme = uri.substr(0, sep);
    const std::string rest = uri.substr(sep + 3);
    static std::atomic<unsigned> counter{0};
    const std::string name =
        "brine-proxy-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
    datagram = scheme == "udp" || scheme == "unixgram";
    if (scheme == "unix" || scheme == "unixgram") {
      tcp = false;
      target = unix_address(rest);
      const std::string path = rest[0] == '@' ? "@" + name : "/tmp/" + name + ".sock";
      if (path[0] != '@') {
        ::unlink(path.c_str());
        unix_path = path;
      }
      listen_on(unix_address(path));
      endpoint = scheme + "://" + path;
      return;
    }
    if (scheme != "tcp" && scheme != "tls" && scheme != "udp") {
      throw std::invalid_argument("brine::testing::FaultProxy: '" + uri +
                                  "': only tcp://, tls://, unix://, udp:// and unixgram:// "
                                  "endpoints are proxied");
    }
    const auto colon = rest.rfind(':');
    if (colon == std::string::npos) throw std::invalid_argument("FaultProxy: no port in " + uri);
    const std::string host = rest.substr(0, colon);
    target = ip_address(host, std::uint16_t(std::stoul(rest.substr(colon + 1))));
    listen_on(ip_address(host, 0));
    sockaddr_storage bound{};
    socklen_t len = sizeof bound;
    ::getsockname(listener, reinterpret_cast<sockaddr*>(&bound), &len);
    const auto port = bound.ss_family == AF_INET6
                          ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                          : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    endpoint = scheme + "://" + host + ":" + std::to_string(port);
  }

  void accept_all() {
    for (;;) {
      const int fd = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      Connection c;
      c.client = fd;
      c.server = ::socket(target.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (c.server < 0 || (::connect(c.server, target.get(), target.length) != 0 &&
                           errno != EINPROGRESS && errno != EAGAIN)) {
        close_fd(c.server, false);
        close_fd(c.client, true);  // as a refused connection would be
        continue;
      }
      if (tcp) {
        const int one = 1;
        ::setsockopt(c.client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        ::setsockopt(c.server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      }
      conns.push_back(std::move(c));
      accepted.fetch_add(1);
      open.fetch_add(1);
    }
  }

  // How many of the `n` bytes at `p` may pass before a cut; marks the connection cut if any.
  std::size_t admit(Connection& c, Direction& d, const std::byte* p, std::size_t n,
                    const Faults& f) {
    std::size_t i = 0;
    while (i < n) {
      if (d.need == 0 && d.have == 0) {  // a frame starts here
        if (f.cut_at_frame != 0 && c.frames + 1 >= f.cut_at_frame) {
          c.cutting = true;
          break;
        }
        ++c.frames;
      }
      if (d.need == 0) {
        const std::size_t take = std::min<std::size_t>(4 - std::size_t(d.have), n - i);
        std::memcpy(d.prefix + d.have, p + i, take);
        d.have += int(take);
        i += take;
        if (d.have == 4) {
          d.need = brine::detail::load_be32(d.prefix);
          d.have = 0;
        }
      } else {
        const std::size_t take = std::min<std::size_t>(d.need, n - i);
        d.need -= std::uint32_t(take);
        i += take;
      }
    }
    if (f.cut_after_bytes != 0 && c.passed + i >= f.cut_after_bytes) {
      i = f.cut_after_bytes - std::min(c.passed, f.cut_after_bytes);
      c.cutting = true;
    }
    c.passed += i;
    return i;
  }

  // Reads what `from` has; false if the connection must be reset.
  bool pump_in(Connection& c, int from, Direction& d, const Faults& f, Clock::time_point now) {
    unsigned char buf[kReadSize];
    std::size_t size = kReadSize;
    if (f.bytes_per_second != 0) size = std::clamp<std::size_t>(f.bytes_per_second / 50, 1, size);
    const ssize_t got = ::recv(from, buf, size, 0);
    if (got == 0) {
      d.eof = true;
      return true;
    }
    if (got < 0) return errno == EAGAIN || errno == EINTR;
    const std::size_t pass =
        admit(c, d, reinterpret_cast<const std::byte*>(buf), std::size_t(got), f);
    if (pass == 0) return true;
    auto due = now + f.latency;
    if (f.jitter.count() > 0) {
      due += std::chrono::milliseconds(
          std::uniform_int_distribution<long>(0, long(f.jitter.count()))(random));
    }
    due = std::max(due, d.last_due);
    d.last_due = due;
    d.queue.push_back({due, std::string(reinterpret_cast<char*>(buf), pass), 0});
    d.queued += pass;
    return true;
  }

  // Writes what is due to `to`; false if the connection must be reset.
  bool pump_out(int to, Direction& d, const Faults& f, Clock::time_point now) {
    while (!d.queue.empty() && d.queue.front().due <= now) {
      if (f.bytes_per_second != 0 && d.next_free > now) return true;
      Chunk& ch = d.queue.front();
      std::size_t size = ch.bytes.size() - ch.sent;
      if (f.bytes_per_second != 0) {
        size = std::min(size, std::clamp<std::size_t>(f.bytes_per_second / 50, 1, kReadSize));
      }
      const ssize_t n = ::send(to, ch.bytes.data() + ch.sent, size, MSG_NOSIGNAL);
      if (n < 0) return errno == EAGAIN || errno == EINTR;
      ch.sent += std::size_t(n);
      d.queued -= std::size_t(n);
      if (f.bytes_per_second != 0) {
        d.next_free =
            std::max(d.next_free, now) +
            std::chrono::microseconds(std::int64_t(n) * 1000000 / std::int64_t(f.bytes_per_second));
      }
      if (ch.sent == ch.bytes.size()) d.queue.pop_front();
    }
    if (d.queue.empty() && d.eof && !d.shut) {
      ::shutdown(to, SHUT_WR);
      d.shut = true;
    }
    return true;
  }

  // The next moment something queued may leave, or max().
  static Clock::time_point next_due(const Direction& d, const Faults& f) {
    if (d.queue.empty()) return Clock::time_point::max();
    auto t = d.queue.front().due;
    if (f.bytes_per_second != 0) t = std::max(t, d.next_free);
    return t;
  }

  void run() {
    std::vector<pollfd> fds;
    std::vector<Connection*> owners;
    for (;;) {
      Faults f;
      bool reset_now = false;
      if (!next_turn(f, reset_now)) return;
      if (reset_now) {
        for (auto& c : conns) {
          close_fd(c.client, true);
          close_fd(c.server, true);
        }
      }
      // Finished connections go.
      for (auto it = conns.begin(); it != conns.end();) {
        Connection& c = *it;
        const bool drained = c.up.queue.empty() && c.down.queue.empty();
        const bool done =
            c.client < 0 || c.server < 0 || (c.cutting && drained) || (c.up.shut && c.down.shut);
        if (done) {
          close_fd(c.client, false);
          close_fd(c.server, false);
          it = conns.erase(it);
          open.fetch_sub(1);
        } else {
          ++it;
        }
      }
      const auto now = Clock::now();
      auto wake_at = Clock::time_point::max();
      fds.assign({{wake_r, POLLIN, 0}, {listener, POLLIN, 0}});
      owners.assign(2, nullptr);
      for (auto& c : conns) {
        short client_events = 0, server_events = 0;
        if (c.connecting) {
          server_events = POLLOUT;
        } else if (!f.black_hole) {
          const bool readable = !c.cutting;
          if (readable && !c.up.eof && c.up.queued < kMaxQueued) client_events |= POLLIN;
          if (readable && !c.down.eof && c.down.queued < kMaxQueued) server_events |= POLLIN;
          const auto up_due = next_due(c.up, f), down_due = next_due(c.down, f);
          if (up_due <= now) server_events |= POLLOUT;
          if (down_due <= now) client_events |= POLLOUT;
          // What is due now waits for POLLOUT; what is due later, for the timeout.
          if (up_due > now) wake_at = std::min(wake_at, up_due);
          if (down_due > now) wake_at = std::min(wake_at, down_due);
        }
        fds.push_back({c.client, client_events, 0});
        fds.push_back({c.server, server_events, 0});
        owners.push_back(&c);
        owners.push_back(&c);
      }
      int timeout = -1;
      if (wake_at != Clock::time_point::max()) {
        timeout = int(std::max<std::int64_t>(
            0, std::chrono::ceil<std::chrono::milliseconds>(wake_at - now).count()));
      }
      const int n = ::poll(fds.data(), nfds_t(fds.size()), timeout);
      if (n < 0 && errno != EINTR) return;
      if ((fds[0].revents & POLLIN) != 0) {
        char buf[64];
        while (::read(wake_r, buf, sizeof buf) > 0) {
        }
      }
      if ((fds[1].revents & POLLIN) != 0) accept_all();
      {
        // Faults set while this thread polled apply to what it found: "from now on" includes
        // bytes that arrived with the change.
        std::lock_guard lk(mu);
        f = faults;
      }
      const auto after = Clock::now();
      for (std::size_t i = 2; i + 1 < fds.size(); i += 2) {
        Connection& c = *owners[i];
        const short cr = fds[i].revents, sr = fds[i + 1].revents;
        bool ok = true;
        if (c.connecting) {
          if (sr == 0) continue;
          int err = 0;
          socklen_t len = sizeof err;
          ::getsockopt(c.server, SOL_SOCKET, SO_ERROR, &err, &len);
          if (err != 0) {
            close_fd(c.client, true);  // refused behind the proxy: refused in front of it
            continue;
          }
          c.connecting = false;
          continue;
        }
        if (f.black_hole) continue;
        if ((cr & POLLIN) != 0) ok = ok && pump_in(c, c.client, c.up, f, after);
        if ((sr & POLLIN) != 0) ok = ok && pump_in(c, c.server, c.down, f, after);
        if ((cr & (POLLERR | POLLHUP)) != 0 && (cr & POLLIN) == 0) ok = false;
        if ((sr & (POLLERR | POLLHUP)) != 0 && (sr & POLLIN) == 0) ok = false;
        if (ok) {
          ok = pump_out(c.server, c.up, f, after) && pump_out(c.client, c.down, f, after);
        }
        if (!ok) {  // one side reset or failed: so does the other
          close_fd(c.client, true);
          close_fd(c.server, true);
        }
      }
    }
  }
};

FaultProxy::FaultProxy(std::string target, Faults faults) : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.target_uri = std::move(target);
  s.faults = faults;
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) != 0) fail_errno("pipe2");
  s.wake_r = pipe_fds[0];
  s.wake_w = pipe_fds[1];
  s.open_listener(s.target_uri);
  s.thread = std::thread([&s] { s.datagram ? s.run_datagrams() : s.run(); });
}

FaultProxy::~FaultProxy() {
  {
    std::lock_guard lk(state_->mu);
    state_->stopping = true;
  }
  state_->wake();
  state_->thread.join();
}

const std::string& FaultProxy::endpoint() const {
  return state_->endpoint;
}

void FaultProxy::set(const Faults& faults) {
  {
    std::lock_guard lk(state_->mu);
    state_->faults = faults;
  }
  state_->wake();
}

Faults FaultProxy::faults() const {
  std::lock_guard lk(state_->mu);
  return state_->faults;
}

void FaultProxy::reset() {
  {
    std::lock_guard lk(state_->mu);
    state_->reset_requested = true;
  }
  state_->wake();
}

std::size_t FaultProxy::connections() const {
  return state_->open.load();
}

std::size_t FaultProxy::accepted() const {
  return state_->accepted.load();
}

}  // namespace brine::testing
