// brine_bench: brine beside the raw socket, in one run.
//
// Starts the servers as separate processes (bench_server: raw sockets, raw sockets busy-polling,
// raw ZeroMQ, and brine servers), then measures from this process, for every transport and
// codec: latency of a 64-byte echo (p50/p99/p99.9), throughput (4 connections x 1 call in
// flight; 1 connection x 64 pipelined), bulk echo of 1 MiB and 16 MiB, allocations per call
// (client and server), and server RSS per idle connection. Every brine figure is printed next to
// its raw baseline from the same run, as a ratio. Each figure is the median of --repeats runs,
// with the spread (min-max). Writes the table to stdout and every figure to a JSON file.
//
//   brine_bench [--repeats N] [--calls N] [--json FILE] [--smoke] [--only SECTION,...]
//               [--codecs cereal,protobuf,json]
//               [--transports tcp4,tcp6,unix,tls,zmq+tcp,zmq+ipc,udp,unixgram]
//   sections: latency, lowlat, pinned, throughput, pipelined, bulk, stream, context, callback,
//             memory, allocs, peers, compression
// stream: a server stream of 64-byte items (items/s) and of 1 MiB items (MB/s), one stream and
// 16 at once (16 streams on one brine connection; 16 raw connections, each writing its items),
// over tcp4 and unix.
//
// peers: gRPC and Cap'n Proto (bench/peers, when built) beside brine and raw sockets on tcp4, in
// the latency, throughput and bulk sections, then a table of brine against each; `--only peers`
// runs just that comparison (raw tcp4, brine workers=4 cereal and protobuf, gRPC, Cap'n Proto).
//
// --smoke runs tiny counts (ctest's check that the bench runs and prints a complete table).
#include <fcntl.h>
#include <http_parser.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <latch>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "bench_common.hpp"
#include "caller.hpp"
#include "peers/peers.hpp"
#include "process.hpp"
#include "server/metrics.hpp"
#include "server/registry.hpp"
#include "tls_files.hpp"

namespace {

using namespace brine_bench;
using Clock = std::chrono::steady_clock;
using brine_test::ChildProcess;

constexpr std::size_t kSmall = 64;
constexpr std::size_t kMaxFrame = 64u << 20;

struct Settings {
  int repeats = 3;
  int latency_calls = 20000;
  int warmup = 500;
  int throughput_calls = 40000;
  int pipelined_calls = 200000;
  int bulk1_rounds = 40;
  int bulk16_rounds = 8;
  int idle_connections = 1000;
  int stream_small_items = 400000;  // 64-byte items per measurement (all streams together)
  int stream_big_items = 512;       // 1 MiB items per measurement
  int alloc_calls = 20000;
  int busy_poll_us = 100;
  std::string json = "brine-bench.json";
  std::set<std::string> only;
  bool smoke = false;
  bool wants(const std::string& s) const {
    return only.empty() || only.count(s) != 0 ||
           (peers_only() && (s == "latency" || s == "throughput" || s == "bulk"));
  }
  // `--only peers` without latency, throughput or bulk: those three sections, narrowed to the
  // cells of the peer comparison.
  bool peers_only() const {
    return only.count("peers") != 0 &&
           only.count("latency") + only.count("throughput") + only.count("bulk") == 0;
  }
};

// --- servers
// --------------------------------------------------------------------------------------

// A bench_server process and its endpoints by transport (tcp4, tcp6, unix, tls, zmq+tcp, zmq+ipc).
struct ServerProc {
  std::unique_ptr<ChildProcess> child;
  std::map<std::string, std::string> uri;
};

std::string transport_of(const std::string& uri) {
  if (uri.rfind("tcp://[", 0) == 0) return "tcp6";
  if (uri.rfind("tcp://", 0) == 0) return "tcp4";
  if (uri.rfind("unix://", 0) == 0) return "unix";
  if (uri.rfind("tls://", 0) == 0) return "tls";
  if (uri.rfind("zmq+tcp://", 0) == 0) return "zmq+tcp";
  if (uri.rfind("zmq+ipc://", 0) == 0) return "zmq+ipc";
  if (uri.rfind("udp://", 0) == 0) return "udp";
  if (uri.rfind("unixgram://", 0) == 0) return "unixgram";
  if (uri.rfind("http://", 0) == 0) return "http";
  throw std::runtime_error("unknown endpoint " + uri);
}

// Starts `program`, which prints "listening <uri>" lines, then "ready".
ServerProc start_program(const std::string& program, std::vector<std::string> args) {
  const std::string name =
      std::filesystem::path(program).filename().string() + (args.empty() ? "" : " " + args[0]);
  args.insert(args.begin(), program);
  ServerProc s;
  s.child = std::make_unique<ChildProcess>(args);
  for (;;) {
    const auto line = s.child->read_line(std::chrono::seconds(20));
    if (!line) throw std::runtime_error(name + " did not start");
    if (*line == "ready") break;
    if (line->rfind("listening ", 0) == 0) {
      const std::string u = line->substr(10);
      s.uri[transport_of(u)] = u;
    }
  }
  return s;
}

ServerProc start_server(std::vector<std::string> args) {
  return start_program(BRINE_BENCH_SERVER, std::move(args));
}

// --- callers: one connection each, one call at a time
// ----------------------------------------------

// Raw sockets: a 4-byte big-endian length, then the payload; the server echoes the frame.
int connect_raw(const std::string& uri) {
  int fd = -1;
  if (uri.rfind("unix://", 0) == 0) {
    const std::string path = uri.substr(7);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) fd = -1;
  } else {
    const bool v6 = uri[6] == '[';
    const auto colon = uri.rfind(':');
    const int port = std::atoi(uri.c_str() + colon + 1);
    if (v6) {
      sockaddr_in6 a{};
      a.sin6_family = AF_INET6;
      a.sin6_addr = in6addr_loopback;
      a.sin6_port = htons(std::uint16_t(port));
      fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) fd = -1;
    } else {
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(std::uint16_t(port));
      fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) fd = -1;
    }
    if (fd >= 0) {
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
  }
  if (fd < 0) throw std::runtime_error("cannot connect to " + uri);
  return fd;
}

class RawCaller final : public Caller {
 public:
  RawCaller(const std::string& uri, bool spin) : fd_(connect_raw(uri)), spin_(spin) {
    if (spin) ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
  }
  ~RawCaller() override { ::close(fd_); }
  void call(std::size_t bytes) override {
    send_frame(bytes);
    read_frame(bytes);
  }
  void send_frame(std::size_t bytes) {
    if (out_.size() != 4 + bytes) {
      out_.assign(4 + bytes, 'x');
      const std::uint32_t be = htonl(std::uint32_t(bytes));
      std::memcpy(out_.data(), &be, 4);
      in_.resize(4 + bytes);
    }
    const char* p = out_.data();
    std::size_t n = out_.size();
    while (n > 0) {
      const ssize_t w = ::send(fd_, p, n, MSG_NOSIGNAL);
      if (w > 0) {
        p += w;
        n -= std::size_t(w);
      } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
        continue;
      } else {
        throw std::runtime_error("raw send failed");
      }
    }
  }
  void read_frame(std::size_t bytes) {
    char* p = in_.data();
    std::size_t n = 4 + bytes;
    while (n > 0) {
      const ssize_t r = ::recv(fd_, p, n, 0);
      if (r > 0) {
        p += r;
        n -= std::size_t(r);
      } else if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
        continue;  // busy-poll (spin) or interrupted
      } else {
        throw std::runtime_error("raw recv failed");
      }
    }
  }

 private:
  int fd_;
  bool spin_;
  std::vector<char> out_;
  std::vector<char> in_;
};

// Raw datagrams: the payload as one datagram, echoed back whole.
class DatagramCaller final : public Caller {
 public:
  explicit DatagramCaller(const std::string& uri) {
    sockaddr_storage to{};
    socklen_t len = 0;
    if (uri.rfind("unixgram://", 0) == 0) {
      const std::string path = uri.substr(11);
      auto* u = reinterpret_cast<sockaddr_un*>(&to);
      u->sun_family = AF_UNIX;
      std::memcpy(u->sun_path, path.c_str(), path.size() + 1);
      len = sizeof(sockaddr_un);
      fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      const sa_family_t only = AF_UNIX;  // autobind: the echo needs an address to answer
      ::bind(fd_, reinterpret_cast<const sockaddr*>(&only), sizeof only);
    } else {
      auto* a = reinterpret_cast<sockaddr_in*>(&to);
      a->sin_family = AF_INET;
      a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a->sin_port = htons(std::uint16_t(std::atoi(uri.c_str() + uri.rfind(':') + 1)));
      len = sizeof(sockaddr_in);
      fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    }
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&to), len) != 0) {
      throw std::runtime_error("cannot connect to " + uri);
    }
  }
  ~DatagramCaller() override { ::close(fd_); }
  void call(std::size_t bytes) override {
    out_.assign(bytes, 'x');
    in_.resize(bytes + 1);
    if (::send(fd_, out_.data(), bytes, 0) != ssize_t(bytes) ||
        ::recv(fd_, in_.data(), in_.size(), 0) != ssize_t(bytes)) {
      throw std::runtime_error("raw datagram echo failed");
    }
  }

 private:
  int fd_ = -1;
  std::vector<char> out_, in_;
};

class ZmqCaller final : public Caller {
 public:
  ZmqCaller(zmq::context_t& ctx, const std::string& uri) : s_(ctx, zmq::socket_type::dealer) {
    s_.set(zmq::sockopt::linger, 0);
    s_.set(zmq::sockopt::sndhwm, 0);
    s_.set(zmq::sockopt::rcvhwm, 0);
    s_.connect(uri.substr(4));  // without "zmq+"
  }
  void call(std::size_t bytes) override {
    send(bytes);
    receive(bytes);
  }
  void send(std::size_t bytes) {
    if (payload_.size() != bytes) payload_.assign(bytes, 'x');
    s_.send(zmq::buffer(payload_), zmq::send_flags::none);
  }
  void receive(std::size_t bytes) {
    zmq::message_t m;
    if (!s_.recv(m) || m.size() != bytes) throw std::runtime_error("raw zmq echo failed");
  }

 private:
  zmq::socket_t s_;
  std::string payload_;
};

brine::ClientOptions client_options(const std::string& codec, int busy_poll_us) {
  brine::ClientOptions o;
  o.codec = codec;
  o.max_frame_size = kMaxFrame;
  o.timeout = std::chrono::seconds(60);
  o.busy_poll = std::chrono::microseconds(busy_poll_us);
  o.tls.ca_file = brine_test::tls_paths().ca;
  return o;
}

// Calls the "bouncer" object: its echo, or its bounce, which the server answers by calling back
// the Echoer this caller passes with each call.
class BouncerCaller final : public Caller {
 public:
  BouncerCaller(const std::string& uri, const std::string& codec, bool back)
      : client_(uri, client_options(codec, 0)),
        bouncer_(client_.remote<Bouncer>("bouncer")),
        back_(back) {
    client_.connect();
  }
  void call(std::size_t bytes) override {
    if (req_.data.size() != bytes) req_.data.assign(bytes, 'x');
    const Blob r = back_ ? bouncer_.bounce(mirror_, req_) : bouncer_.echo(req_);
    if (r.data.size() != bytes) throw std::runtime_error("bounce");
  }

 private:
  struct Mirror final : Echoer {
    Blob echo(const Blob& b) override { return b; }
  };
  brine::Client client_;
  brine::Remote<Bouncer> bouncer_;
  bool back_;
  brine::Remote<Echoer> mirror_ = std::make_shared<Mirror>();
  Blob req_;
};

// The HTTP front door: POST /v1/echo with the JSON of a Blob on one keep-alive connection; the
// response read with http-parser.
class HttpCaller final : public Caller {
 public:
  explicit HttpCaller(const std::string& uri) {
    const std::string rest = uri.substr(std::string("http://").size());
    const auto colon = rest.rfind(':');
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(std::uint16_t(std::stoi(rest.substr(colon + 1))));
    ::inet_pton(AF_INET, rest.substr(0, colon).c_str(), &a.sin_addr);
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
      throw std::runtime_error("cannot connect to " + uri);
    }
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    http_parser_settings_init(&settings_);
    settings_.on_body = [](http_parser* p, const char*, std::size_t n) {
      static_cast<HttpCaller*>(p->data)->body_ += n;
      return 0;
    };
    settings_.on_message_complete = [](http_parser* p) {
      static_cast<HttpCaller*>(p->data)->done_ = true;
      return 0;
    };
  }
  ~HttpCaller() override { ::close(fd_); }
  void call(std::size_t bytes) override {
    if (bytes != size_) {
      const std::string body = "{\"data\":\"" + std::string(bytes, 'x') + "\"}";
      request_ = "POST /v1/echo HTTP/1.1\r\nHost: bench\r\nContent-Length: " +
                 std::to_string(body.size()) + "\r\n\r\n" + body;
      size_ = bytes;
    }
    for (std::size_t off = 0; off < request_.size();) {
      const ssize_t n = ::send(fd_, request_.data() + off, request_.size() - off, MSG_NOSIGNAL);
      if (n <= 0) throw std::runtime_error("http send");
      off += std::size_t(n);
    }
    http_parser_init(&parser_, HTTP_RESPONSE);
    parser_.data = this;
    done_ = false;
    body_ = 0;
    char buf[4096];
    while (!done_) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) throw std::runtime_error("http recv");
      if (http_parser_execute(&parser_, &settings_, buf, std::size_t(n)) != std::size_t(n)) {
        throw std::runtime_error("http response");
      }
    }
    if (parser_.status_code != 200 || body_ < bytes) throw std::runtime_error("http echo");
  }

 private:
  int fd_ = -1;
  http_parser parser_{};
  http_parser_settings settings_{};
  std::string request_;
  std::size_t size_ = std::size_t(-1);
  std::size_t body_ = 0;
  bool done_ = false;
};

class BrineCaller final : public Caller {
 public:
  BrineCaller(const std::string& uri, const std::string& codec, int busy_poll_us = 0,
              const std::function<void(brine::ClientOptions&)>& adjust = {},
              brine::CallOptions opts = {})
      : client_(uri, adjusted(client_options(codec, busy_poll_us), adjust)),
        pb_(codec == "protobuf"),
        opts_(std::move(opts)) {
    client_.connect();
  }
  // The payload of `bytes` bytes that call() sends (default: that many 'x').
  void use_payload(std::function<std::string(std::size_t)> make) { fill_ = std::move(make); }
  void call(std::size_t bytes) override {
    if (fill_) {
      if (pb_ && pb_req_.data().size() != bytes) pb_req_.set_data(fill_(bytes));
      if (!pb_ && req_.data.size() != bytes) req_.data = fill_(bytes);
    }
    if (pb_) {
      if (pb_req_.data().size() != bytes) pb_req_.set_data(std::string(bytes, 'x'));
      if (client_.call(kEchoPb, pb_req_, opts_).data().size() != bytes) {
        throw std::runtime_error("echo");
      }
    } else {
      if (req_.data.size() != bytes) req_.data.assign(bytes, 'x');
      if (client_.call(kEcho, req_, opts_).data.size() != bytes) throw std::runtime_error("echo");
    }
  }
  static brine::ClientOptions adjusted(brine::ClientOptions o,
                                       const std::function<void(brine::ClientOptions&)>& f) {
    if (f) f(o);
    return o;
  }
  void add() {
    if (pb_) {
      pb::Pair p;
      p.set_a(1);
      p.set_b(2);
      if (client_.call(kAddPb, p).value() != 3) throw std::runtime_error("add");
    } else {
      if (client_.call(kAdd, Pair{1, 2}).value != 3) throw std::runtime_error("add");
    }
  }
  brine::Client& client() { return client_; }
  bool protobuf() const { return pb_; }
  const Blob& request() {
    if (req_.data.size() != kSmall) req_.data.assign(kSmall, 'x');
    return req_;
  }
  const pb::Blob& pb_request() {
    if (pb_req_.data().size() != kSmall) pb_req_.set_data(std::string(kSmall, 'x'));
    return pb_req_;
  }

 private:
  brine::Client client_;
  bool pb_;
  std::function<std::string(std::size_t)> fill_;
  brine::CallOptions opts_;
  Blob req_;
  pb::Blob pb_req_;
};

// The per-call work of ServerOptions::metrics (dispatcher.cpp: a clock read when the request
// is read, the counters' lookup, and Metrics::record with a second clock read at the end), in
// nanoseconds per call, over `calls` calls of a registered method.
double metrics_record_ns(int calls) {
  brine::detail::Registry registry;
  auto echo = [](const Blob& b) { return b; };
  registry.add_handler(
      "echo", std::make_shared<brine::detail::TypedHandler<Blob, Blob, decltype(echo)>>(echo), {});
  brine::detail::Metrics metrics(true);
  metrics.build(registry);
  const brine::Status ok;
  const auto t0 = Clock::now();
  for (int i = 0; i < calls; ++i) {
    const auto started = Clock::now();
    brine::detail::MethodStats* m = metrics.find("echo", nullptr);
    metrics.record(*m, ok, Clock::now() - started);
  }
  return std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / calls;
}

// --- figures
// --------------------------------------------------------------------------------------

struct Stat {
  double median = 0, min = 0, max = 0;
};
Stat stat_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v.front(), v.back()};
}
double percentile(std::vector<double>& v, double p) {
  const auto k = std::size_t(p * double(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + long(k), v.end());
  return v[k];
}

struct Record {
  std::string section, transport, variant, codec, metric, unit;
  Stat value;
  double baseline = 0;  // 0: none
  std::string baseline_name;
};
std::vector<Record> g_records;

std::string fmt(double v) {
  char b[32];
  if (v >= 10000) {
    std::snprintf(b, sizeof b, "%.0f", v);
  } else if (v >= 100) {
    std::snprintf(b, sizeof b, "%.1f", v);
  } else {
    std::snprintf(b, sizeof b, "%.2f", v);
  }
  return b;
}

void print_header(const std::string& title, const std::string& unit) {
  std::printf("\n== %s\n%-8s %-26s %-9s %-12s %10s %19s %8s\n", title.c_str(), "transp.", "variant",
              "codec", "metric", unit.c_str(), "[min - max]", "vs raw");
}
void print(const Record& r) {
  std::string ratio = "-";
  if (r.baseline > 0) {
    char b[32];
    std::snprintf(b, sizeof b, "%.3fx", r.value.median / r.baseline);
    ratio = b;
  }
  const std::string spread = "[" + fmt(r.value.min) + " - " + fmt(r.value.max) + "]";
  std::printf("%-8s %-26s %-9s %-12s %10s %19s %8s\n", r.transport.c_str(), r.variant.c_str(),
              r.codec.c_str(), r.metric.c_str(), fmt(r.value.median).c_str(), spread.c_str(),
              ratio.c_str());
  std::fflush(stdout);
}
const Record& add(Record r) {
  g_records.push_back(std::move(r));
  print(g_records.back());
  return g_records.back();
}
const Record* find(const std::string& section, const std::string& transport,
                   const std::string& variant, const std::string& codec,
                   const std::string& metric) {
  for (const auto& r : g_records) {
    if (r.section == section && r.transport == transport && r.variant == variant &&
        r.codec == codec && r.metric == metric) {
      return &r;
    }
  }
  return nullptr;
}

// --- latency
// ----------------------------------------------------------------------------------------

// CPU time used by all threads of a process so far, in nanoseconds (the scheduler's own count).
double cpu_ns(pid_t pid) {
  double total = 0;
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& task : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(task.path() / "schedstat");
    double on_cpu = 0;
    if (in >> on_cpu) total += on_cpu;
  }
  return total;
}

struct Latency {
  double p50, p99, p999;
  double client_cpu_us, server_cpu_us;  // per call
};
Latency time_calls(Caller& c, const Settings& s, pid_t server) {
  for (int i = 0; i < s.warmup; ++i) c.call(kSmall);
  std::vector<double> us;
  us.reserve(std::size_t(s.latency_calls));
  const double client0 = cpu_ns(::getpid());
  const double server0 = cpu_ns(server);
  for (int i = 0; i < s.latency_calls; ++i) {
    const auto t0 = Clock::now();
    c.call(kSmall);
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  const double n = s.latency_calls;
  const double client_us = (cpu_ns(::getpid()) - client0) / 1000 / n;
  const double server_us = (cpu_ns(server) - server0) / 1000 / n;
  return {percentile(us, 0.5), percentile(us, 0.99), percentile(us, 0.999), client_us, server_us};
}

// A latency cell: how to make its caller, and what it is compared with.
struct Cell {
  std::string transport, variant, codec;
  std::function<std::unique_ptr<Caller>()> make;
  std::string baseline_variant;  // in the same section and transport; empty: is a baseline
  std::string baseline_transport;
  pid_t server = 0;  // whose CPU time is counted
};

void run_latency_cells(const std::string& section, const std::vector<Cell>& cells,
                       const Settings& s) {
  std::vector<std::vector<Latency>> runs(cells.size());
  for (int r = 0; r < s.repeats; ++r) {  // repeats interleaved, so drift hits every cell alike
    for (std::size_t i = 0; i < cells.size(); ++i) {
      auto caller = cells[i].make();
      runs[i].push_back(time_calls(*caller, s, cells[i].server));
    }
  }
  std::map<std::pair<std::string, std::string>, double> base;  // (transport, variant) -> p50
  for (std::size_t i = 0; i < cells.size(); ++i) {
    const auto& c = cells[i];
    std::vector<double> p50, p99, p999, client_cpu, server_cpu;
    for (const auto& l : runs[i]) {
      p50.push_back(l.p50);
      p99.push_back(l.p99);
      p999.push_back(l.p999);
      client_cpu.push_back(l.client_cpu_us);
      server_cpu.push_back(l.server_cpu_us);
    }
    Record rec{section, c.transport, c.variant, c.codec, "p50", "us", stat_of(p50), 0, {}};
    if (c.baseline_variant.empty()) {
      base[{c.transport, c.variant}] = rec.value.median;
    } else {
      const auto b = base.find({c.baseline_transport, c.baseline_variant});
      if (b != base.end()) {
        rec.baseline = b->second;
        rec.baseline_name = c.baseline_transport + " " + c.baseline_variant;
      }
    }
    add(rec);
    add({section, c.transport, c.variant, c.codec, "p99", "us", stat_of(p99), 0, {}});
    add({section, c.transport, c.variant, c.codec, "p99.9", "us", stat_of(p999), 0, {}});
    add({section,
         c.transport,
         c.variant,
         c.codec,
         "client cpu",
         "us/call",
         stat_of(client_cpu),
         0,
         {}});
    add({section,
         c.transport,
         c.variant,
         c.codec,
         "server cpu",
         "us/call",
         stat_of(server_cpu),
         0,
         {}});
  }
}

// Narrowed by --codecs and --transports.
std::vector<std::string> kCodecs = {"cereal", "protobuf", "json"};
std::vector<std::string> kTransports = {"tcp4", "tcp6", "unix", "tls", "zmq+tcp", "zmq+ipc"};
// Datagram transports: latency only (one frame per datagram, nothing bulk).
std::vector<std::string> kDatagramTransports = {"udp", "unixgram"};

bool selected(const std::string& transport) {
  return std::find(kTransports.begin(), kTransports.end(), transport) != kTransports.end();
}

std::vector<std::string> split(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream in(list);
  for (std::string part; std::getline(in, part, ',');) out.push_back(part);
  return out;
}

// The raw baseline each brine transport is compared with.
std::string raw_transport_for(const std::string& t) {
  if (t == "tls") return "tcp4";
  return t;
}
std::string raw_variant_for(const std::string& t) {
  return t.rfind("zmq", 0) == 0 ? "raw zmq dealer/router" : "raw blocking";
}

std::vector<Cell> raw_cells(ServerProc& raw, ServerProc& zmq_raw, zmq::context_t& ctx) {
  std::vector<Cell> cells;
  for (const std::string t : {"tcp4", "tcp6", "unix"}) {
    const std::string uri = raw.uri.at(t);
    cells.push_back({t, "raw blocking", "-",
                     [uri] { return std::make_unique<RawCaller>(uri, false); }, "", "",
                     raw.child->pid()});
  }
  for (const std::string t : {"zmq+tcp", "zmq+ipc"}) {
    const std::string uri = zmq_raw.uri.at(t);
    cells.push_back({t, "raw zmq dealer/router", "-",
                     [uri, &ctx] { return std::make_unique<ZmqCaller>(ctx, uri); }, "", "",
                     zmq_raw.child->pid()});
  }
  return cells;
}

// --- throughput
// -------------------------------------------------------------------------------------

// Calls per second of `threads` callers, each with its own connection and one call in flight.
// Each caller is made, warmed up, used and destroyed on its own thread (a Cap'n Proto caller is
// bound to the thread that made it); the run ends with the last call, before any connection
// closes. What a thread throws is rethrown here.
double parallel_rate(const std::function<std::unique_ptr<Caller>()>& make, int threads, int calls) {
  const int each = std::max(1, calls / threads);
  std::atomic<int> ready{0};
  std::atomic<int> finished{0};
  std::atomic<bool> go{false};
  std::latch done(threads);
  Clock::time_point end;
  std::mutex mu;
  std::exception_ptr failed;
  const auto fail = [&] {
    std::lock_guard lk(mu);
    if (!failed) failed = std::current_exception();
  };
  std::vector<std::thread> ts;
  for (int k = 0; k < threads; ++k) {
    ts.emplace_back([&] {
      std::unique_ptr<Caller> caller;
      try {
        caller = make();
        for (int i = 0; i < 50; ++i) caller->call(kSmall);
      } catch (...) {
        fail();
      }
      ready.fetch_add(1);
      while (!go.load()) std::this_thread::yield();
      try {
        for (int i = 0; caller && i < each; ++i) caller->call(kSmall);
      } catch (...) {
        fail();
      }
      if (finished.fetch_add(1) + 1 == threads) end = Clock::now();
      done.arrive_and_wait();
    });
  }
  while (ready.load() < threads) std::this_thread::yield();
  const auto t0 = Clock::now();
  go = true;
  for (auto& t : ts) t.join();
  if (failed) std::rethrow_exception(failed);
  return double(each) * threads / std::chrono::duration<double>(end - t0).count();
}

// One brine connection, `window` asynchronous calls in flight: `window` calls are made, and each
// reply's callback makes the next call (on the client's thread, as an asynchronous client does),
// until `calls` are answered.
double pipelined_rate(const std::string& uri, const std::string& codec, int window, int calls) {
  BrineCaller c(uri, codec);
  struct Run {
    std::mutex mu;
    std::condition_variable cv;
    std::atomic<int> issued{0};
    std::atomic<int> answered{0};
    std::atomic<bool> failed{false};
    int total = 0;
  };
  std::function<void(Run&)> issue = [&](Run& run) {
    if (run.issued.fetch_add(1) >= run.total) return;
    auto on_reply = [&run, &issue](auto result) {
      if (!result.ok()) run.failed = true;
      if (run.answered.fetch_add(1) + 1 == run.total) {
        std::lock_guard lk(run.mu);
        run.cv.notify_one();
        return;
      }
      issue(run);
    };
    if (c.protobuf()) {
      c.client().call_async<pb::Blob>(kEchoPb.name, c.pb_request(), on_reply);
    } else {
      c.client().call_async<Blob>(kEcho.name, c.request(), on_reply);
    }
  };
  const auto go = [&](int n) {
    Run run;
    run.total = n;
    for (int i = 0; i < window; ++i) issue(run);
    std::unique_lock lk(run.mu);
    if (!run.cv.wait_for(lk, std::chrono::seconds(120), [&] { return run.answered >= n; })) {
      throw std::runtime_error("pipelined calls did not finish");
    }
    if (run.failed) throw std::runtime_error("a pipelined call failed");
  };
  go(std::min(calls, 2000));  // warm up
  const auto t0 = Clock::now();
  go(calls);
  return calls / std::chrono::duration<double>(Clock::now() - t0).count();
}

// The raw baseline of pipelining: `window` frames written ahead, one more written per one read.
double raw_pipelined_rate(Caller& caller, int window, int calls) {
  auto* raw = dynamic_cast<RawCaller*>(&caller);
  auto* z = dynamic_cast<ZmqCaller*>(&caller);
  const auto send = [&] { raw ? raw->send_frame(kSmall) : z->send(kSmall); };
  const auto receive = [&] { raw ? raw->read_frame(kSmall) : z->receive(kSmall); };
  const auto t0 = Clock::now();
  for (int i = 0; i < window; ++i) send();
  for (int i = 0; i < calls; ++i) {
    receive();
    if (i + window < calls) send();
  }
  return calls / std::chrono::duration<double>(Clock::now() - t0).count();
}

// --- streams
// ----------------------------------------------------------------------------------------

// Runs `body(k)` for k in [0, n) on n threads at once; returns the wall time in seconds.
// What a thread throws is rethrown here (the first of them).
template <class F>
double timed_on_threads(int n, F body) {
  std::vector<std::thread> threads;
  std::mutex mu;
  std::exception_ptr failed;
  const auto t0 = Clock::now();
  for (int k = 0; k < n; ++k) {
    threads.emplace_back([&, k] {
      try {
        body(k);
      } catch (...) {
        std::lock_guard lk(mu);
        if (!failed) failed = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  if (failed) std::rethrow_exception(failed);
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The raw baseline: `streams` connections, each asking for count/streams frames of `size`
// bytes and reading them to the empty frame that ends them. Items per second, all together.
double raw_stream_rate(const std::string& uri, int count, std::size_t size, int streams) {
  const int each = count / streams;
  const double seconds = timed_on_threads(streams, [&](int) {
    const int fd = connect_raw(uri);
    char req[16];
    const std::uint32_t head[4] = {htonl(12), 0, htonl(std::uint32_t(each)),
                                   htonl(std::uint32_t(size))};
    std::memcpy(req, head, 16);
    std::memcpy(req + 4, kRawStreamMagic.data(), 4);
    if (::send(fd, req, 16, MSG_NOSIGNAL) != 16) throw std::runtime_error("raw stream request");
    std::vector<char> buf(std::max<std::size_t>(size, 4));
    const auto read_exact = [&](char* p, std::size_t n) {
      while (n > 0) {
        const ssize_t r = ::recv(fd, p, n, 0);
        if (r <= 0) throw std::runtime_error("raw stream recv");
        p += r;
        n -= std::size_t(r);
      }
    };
    for (int got = 0;; ++got) {
      std::uint32_t be = 0;
      read_exact(reinterpret_cast<char*>(&be), 4);
      const std::size_t n = ntohl(be);
      if (n == 0) {
        if (got != each) throw std::runtime_error("raw stream short");
        break;
      }
      read_exact(buf.data(), n);
    }
    ::close(fd);
  });
  return double(each * streams) / seconds;
}

// brine: `streams` server streams on one connection, each read by its own thread.
double brine_stream_rate(const std::string& uri, const std::string& codec, int count,
                         std::size_t size, int streams) {
  const int each = count / streams;
  brine::Client client(uri, client_options(codec, 0));
  client.connect();
  const double seconds = timed_on_threads(streams, [&](int) {
    std::size_t got = 0;
    if (codec == "protobuf") {
      pb::Pair spec;
      spec.set_a(each);
      spec.set_b(double(size));
      auto st = client.stream<pb::Blob>(kItems, spec);
      while (auto item = st.read()) got += item->data().size() == size ? 1 : 0;
      if (!st.status().ok()) throw std::runtime_error(st.status().to_string());
    } else {
      auto st = client.stream<Blob>(kItems, Pair{double(each), double(size)});
      while (auto item = st.read()) got += item->data.size() == size ? 1 : 0;
      if (!st.status().ok()) throw std::runtime_error(st.status().to_string());
    }
    if (got != std::size_t(each)) throw std::runtime_error("stream short");
  });
  return double(each * streams) / seconds;
}

// --- memory
// -----------------------------------------------------------------------------------------

double rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atof(line.c_str() + 6);
  }
  throw std::runtime_error("no VmRSS");
}

// Server RSS growth per connection, over n connections that each exchanged one heartbeat and
// then stay idle.
double rss_per_idle_connection(ServerProc& server, const std::string& transport, int n) {
  brine::Buffer hb;
  brine::detail::begin_frame(hb, brine::detail::FrameKind::heartbeat, 0, {});
  (void)brine::detail::finish_frame(hb, kMaxFrame);
  const double before = rss_kib(server.child->pid());
  std::vector<int> fds;
  for (int i = 0; i < n; ++i) {
    const int fd = connect_raw(server.uri.at(transport));
    fds.push_back(fd);
    if (::send(fd, hb.data(), hb.size(), MSG_NOSIGNAL) != ssize_t(hb.size())) {
      throw std::runtime_error("heartbeat not sent");
    }
    char pong[brine::detail::kFixedSize];
    std::size_t got = 0;
    while (got < sizeof pong) {
      const ssize_t r = ::recv(fd, pong + got, sizeof pong - got, 0);
      if (r <= 0) throw std::runtime_error("no heartbeat answer");
      got += std::size_t(r);
    }
  }
  const double after = rss_kib(server.child->pid());
  for (int fd : fds) ::close(fd);
  return (after - before) / n;
}

// Payloads for the compression rows: text that compresses well (JSON-like lines, what logs and
// API answers look like) and random bytes that do not compress at all (the same bytes every
// call: a fixed seed).
std::string text_payload(std::size_t n) {
  std::string s;
  s.reserve(n + 96);
  for (std::size_t i = 0; s.size() < n; ++i) {
    s += "{\"id\": " + std::to_string(i) + ", \"name\": \"item-" + std::to_string(i % 997) +
         "\", \"price\": " + std::to_string((i * 7919) % 100000) + "}\n";
  }
  s.resize(n);
  return s;
}

std::string random_payload(std::size_t n) {
  std::string s(n, '\0');
  std::uint64_t x = 0x9E3779B97F4A7C15ull;
  for (char& c : s) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = char(x);
  }
  return s;
}

// --- peers
// ----------------------------------------------------------------------------------------

// gRPC and Cap'n Proto (bench/peers): an echo server process each, and a Caller.
struct Peer {
  std::string variant;  // its rows' variant: "grpc", "capnp"
  std::string name;     // "gRPC", "Cap'n Proto"
  std::string program;  // its server; empty: not built
  std::unique_ptr<Caller> (*make)(const std::string& uri) = nullptr;
};

std::vector<Peer> known_peers() {
  return {
#ifdef BRINE_BENCH_GRPC
      {"grpc", "gRPC", BRINE_BENCH_GRPC_SERVER, make_grpc_caller},
#else
      {"grpc", "gRPC", "", nullptr},
#endif
#ifdef BRINE_BENCH_CAPNP
      {"capnp", "Cap'n Proto", BRINE_BENCH_CAPNP_SERVER, make_capnp_caller},
#else
      {"capnp", "Cap'n Proto", "", nullptr},
#endif
  };
}

struct PeerServer {
  Peer peer;
  ServerProc server;
};

// The peers' cells: tcp4, codec "-" (gRPC's protobuf and Cap'n Proto's own encoding are part of
// each), compared with raw blocking sockets on tcp4.
std::vector<Cell> peer_cells(const std::vector<PeerServer>& running) {
  std::vector<Cell> cells;
  for (const auto& p : running) {
    const std::string uri = p.server.uri.at("tcp4");
    cells.push_back({"tcp4", p.peer.variant, "-", [uri, make = p.peer.make] { return make(uri); },
                     "raw blocking", "tcp4", p.server.child->pid()});
  }
  return cells;
}

bool is_raw(const std::string& variant) {
  return variant.rfind("raw ", 0) == 0;
}

// What `--only peers` keeps of a section's cells: tcp4 raw blocking, brine workers=4 with cereal
// and protobuf, and the peers.
template <class C>
void narrow_to_peer_comparison(std::vector<C>& cells) {
  std::erase_if(cells, [](const C& c) {
    const bool kept =
        c.variant == "raw blocking" || c.variant == "grpc" || c.variant == "capnp" ||
        (c.variant == "brine workers=4" && (c.codec == "cereal" || c.codec == "protobuf"));
    return c.transport != "tcp4" || !kept;
  });
}

// The peers table, from the rows measured above: p50 latency, 4x1 throughput and 16 MiB bulk on
// tcp4 for raw sockets, brine (workers=4; cereal, protobuf), gRPC and Cap'n Proto; then brine's
// ratio to each of the others, also recorded (section "peers", variant "brine workers=4 / X",
// baseline X).
void print_peers(const std::vector<Peer>& peers) {
  struct Metric {
    std::string section, metric, title, unit;
    bool lower_better;
  };
  const std::vector<Metric> metrics = {{"latency", "p50", "latency p50", "us", true},
                                       {"throughput", "4x1", "throughput 4x1", "calls/s", false},
                                       {"bulk", "16 MiB", "bulk 16 MiB", "MB/s", false}};
  struct Column {
    std::string label, variant, codec;
  };
  std::vector<Column> brine;
  for (const std::string codec : {"cereal", "protobuf"}) {
    if (std::find(kCodecs.begin(), kCodecs.end(), codec) != kCodecs.end()) {
      brine.push_back({"brine " + codec, "brine workers=4", codec});
    }
  }
  std::vector<Column> others = {{"raw", "raw blocking", "-"}};  // what brine is compared with
  for (const auto& p : peers) {
    if (!p.program.empty()) others.push_back({p.variant, p.variant, "-"});
  }
  std::vector<Column> columns = {others[0]};
  columns.insert(columns.end(), brine.begin(), brine.end());
  columns.insert(columns.end(), others.begin() + 1, others.end());
  const auto row = [](const Metric& m, const Column& c) {
    return find(m.section, "tcp4", c.variant, c.codec, m.metric);
  };

  std::printf("\n== peers: tcp4, brine (workers=4) beside raw sockets, gRPC and Cap'n Proto\n");
  std::printf("%-16s %-8s %-7s", "metric", "unit", "better");
  for (const auto& c : columns) std::printf(" %14s", c.label.c_str());
  std::printf("\n");
  for (const auto& m : metrics) {
    std::printf("%-16s %-8s %-7s", m.title.c_str(), m.unit.c_str(),
                m.lower_better ? "lower" : "higher");
    for (const auto& c : columns) {
      const Record* r = row(m, c);
      std::printf(" %14s", r ? fmt(r->value.median).c_str() : "-");
    }
    std::printf("\n");
  }
  std::printf(
      "brine / X: latency below 1 means brine is faster; throughput and bulk above 1 mean "
      "brine is faster\n%-16s %-8s",
      "metric", "codec");
  for (const auto& c : others) std::printf(" %14s", ("/ " + c.label).c_str());
  std::printf("\n");
  for (const auto& m : metrics) {
    for (const auto& b : brine) {
      const Record* mine = row(m, b);
      if (!mine) continue;
      std::printf("%-16s %-8s", m.title.c_str(), b.codec.c_str());
      for (const auto& c : others) {
        const Record* theirs = row(m, c);
        if (!theirs || theirs->value.median <= 0) {
          std::printf(" %14s", "-");
          continue;
        }
        char ratio[32];
        std::snprintf(ratio, sizeof ratio, "%.3fx", mine->value.median / theirs->value.median);
        std::printf(" %14s", ratio);
        g_records.push_back({"peers", "tcp4", "brine workers=4 / " + c.variant, b.codec, m.metric,
                             m.unit, mine->value, theirs->value.median, "tcp4 " + c.variant});
      }
      std::printf("\n");
    }
  }
  for (const auto& p : peers) {
    if (p.program.empty()) {
      std::printf(
          "# %s: not built (not found when brine was configured, see bench/peers), its "
          "rows are skipped\n",
          p.name.c_str());
    }
  }
  std::fflush(stdout);
}

// --- the run
// ----------------------------------------------------------------------------------------

void pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (cpu >= 0) {
    CPU_SET(cpu, &set);
  } else {
    for (int i = 0; i < CPU_SETSIZE; ++i) CPU_SET(i, &set);
  }
  ::sched_setaffinity(0, sizeof set, &set);
}

std::string json_escape(const std::string& s) {
  std::string o;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') o += '\\';
    o += ch;
  }
  return o;
}

void write_json(const Settings& s, const std::string& when) {
  std::ofstream out(s.json);
  out << "{\n  \"date\": \"" << when << "\",\n  \"repeats\": " << s.repeats
      << ",\n  \"results\": [\n";
  for (std::size_t i = 0; i < g_records.size(); ++i) {
    const auto& r = g_records[i];
    out << "    {\"section\": \"" << r.section << "\", \"transport\": \"" << r.transport
        << "\", \"variant\": \"" << json_escape(r.variant) << "\", \"codec\": \"" << r.codec
        << "\", \"metric\": \"" << json_escape(r.metric) << "\", \"unit\": \"" << r.unit
        << "\", \"median\": " << r.value.median << ", \"min\": " << r.value.min
        << ", \"max\": " << r.value.max;
    if (r.baseline > 0) {
      out << ", \"baseline\": " << r.baseline << ", \"baseline_of\": \""
          << json_escape(r.baseline_name) << "\", \"ratio\": " << r.value.median / r.baseline;
    }
    out << "}" << (i + 1 < g_records.size() ? "," : "") << "\n";
  }
  out << "  ]\n}\n";
}

struct Target {
  std::string what;
  double ratio_or_value;
  double limit;
  bool at_most;  // true: value <= limit; false: value >= limit
  std::string unit;
};

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    if (a == "--repeats") {
      s.repeats = std::max(1, std::atoi(next().c_str()));
    } else if (a == "--calls") {
      s.latency_calls = std::max(10, std::atoi(next().c_str()));
    } else if (a == "--json") {
      s.json = next();
    } else if (a == "--only") {
      for (const auto& part : split(next())) s.only.insert(part);
    } else if (a == "--codecs") {
      kCodecs = split(next());
    } else if (a == "--transports") {
      kTransports = split(next());
      kDatagramTransports.clear();
      std::erase_if(kTransports, [](const std::string& t) {
        const bool datagram = t == "udp" || t == "unixgram";
        if (datagram) kDatagramTransports.push_back(t);
        return datagram;
      });
    } else if (a == "--smoke") {
      s.smoke = true;
      s.latency_calls = 50;
      s.warmup = 10;
      s.throughput_calls = 200;
      s.pipelined_calls = 500;
      s.bulk1_rounds = 2;
      s.bulk16_rounds = 1;
      s.idle_connections = 20;
      s.stream_small_items = 1600;
      s.stream_big_items = 16;
      s.alloc_calls = 200;
    } else {
      std::fprintf(stderr,
                   "usage: brine_bench [--repeats N] [--calls N] [--json FILE] "
                   "[--smoke] [--codecs cereal,...] [--transports tcp4,...] [--only "
                   "latency,lowlat,pinned,throughput,pipelined,bulk,stream,"
                   "context,callback,memory,allocs,peers,compression]\n");
      return 2;
    }
  }
  // Descriptors for the idle connections (the servers inherit the limit).
  rlimit nofile{};
  ::getrlimit(RLIMIT_NOFILE, &nofile);
  nofile.rlim_cur = nofile.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &nofile);

  const std::time_t now = std::time(nullptr);
  char when[64];
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  std::printf("# brine_bench %s: median of %d repeats [min - max], %d calls per latency run\n",
              when, s.repeats, s.latency_calls);
  try {
    const auto& tls = brine_test::tls_files();
    zmq::context_t ctx(1);
    const std::string ll = std::to_string(s.busy_poll_us);
    ServerProc raw = start_server({"raw"});
    ServerProc zraw = start_server({"zmq"});
    ServerProc brine4 = start_server({"brine", "--tls", tls.server_crt, tls.server_key});
    ServerProc brine0 = start_server(
        {"brine", "--workers", "0", "--io-threads", "2", "--tls", tls.server_crt, tls.server_key});
    // gRPC and Cap'n Proto, those that were built; their rows are on tcp4 only.
    const std::vector<Peer> peers = known_peers();
    std::vector<PeerServer> peer_servers;
    if (selected("tcp4") && (s.wants("latency") || s.wants("throughput") || s.wants("bulk"))) {
      for (const auto& p : peers) {
        if (!p.program.empty()) peer_servers.push_back({p, start_program(p.program, {})});
      }
    }

    const auto brine_cells = [&](ServerProc& server, const std::string& variant,
                                 const std::vector<std::string>& transports, int busy) {
      std::vector<Cell> cells;
      for (const auto& t : transports) {
        for (const auto& codec : kCodecs) {
          const std::string uri = server.uri.at(t);
          cells.push_back(
              {t, variant, codec,
               [uri, codec, busy] { return std::make_unique<BrineCaller>(uri, codec, busy); },
               raw_variant_for(t), raw_transport_for(t), server.child->pid()});
        }
      }
      return cells;
    };

    if (s.wants("latency")) {
      print_header("latency: 64-byte echo, one caller, one call in flight", "us");
      auto cells = raw_cells(raw, zraw, ctx);
      for (auto& c : brine_cells(brine4, "brine workers=4", kTransports, 0)) cells.push_back(c);
      for (auto& c : brine_cells(brine0, "brine workers=0 io=2", kTransports, 0))
        cells.push_back(c);
      // Datagrams (latency only: one frame per datagram, no bulk) beside raw datagrams.
      for (const std::string& t : kDatagramTransports) {
        const std::string uri = raw.uri.at(t);
        cells.push_back({t, "raw blocking", "-",
                         [uri] { return std::make_unique<DatagramCaller>(uri); }, "", "",
                         raw.child->pid()});
        for (auto& c : brine_cells(brine4, "brine workers=4", {t}, 0)) cells.push_back(c);
      }
      for (auto& c : peer_cells(peer_servers)) cells.push_back(c);
      if (s.peers_only()) narrow_to_peer_comparison(cells);
      run_latency_cells("latency", cells, s);
    }

    if (s.wants("context")) {
      print_header(
          "call context: 64-byte echo (tcp4, unix; workers=4), plain vs an empty "
          "interceptor chain (one on each side) vs 3 metadata entries (72 bytes)",
          "us");
      ServerProc chained = start_server({"brine", "--interceptors", "1"});
      struct Nothing final : brine::Interceptor {};
      const auto nothing = std::make_shared<Nothing>();
      brine::CallOptions with_md;
      with_md.metadata.add("trace-id", "4bf92f3577b34da6a3ce929d0e0e4736")
          .add("tenant", "acme-corporation")
          .add("request-id", "7");
      std::vector<Cell> cells;
      for (const std::string t : {"tcp4", "unix"}) {
        for (const auto& codec : kCodecs) {
          const std::string plain_uri = brine4.uri.at(t);
          const std::string chained_uri = chained.uri.at(t);
          // The baseline of each codec's row (ratios are taken per transport and variant).
          const std::string base = "brine plain " + codec;
          cells.push_back(
              {t, base, codec,
               [plain_uri, codec] { return std::make_unique<BrineCaller>(plain_uri, codec); }, "",
               "", brine4.child->pid()});
          cells.push_back({t, "brine interceptors", codec,
                           [chained_uri, codec, nothing] {
                             return std::make_unique<BrineCaller>(
                                 chained_uri, codec, 0, [nothing](brine::ClientOptions& o) {
                                   o.interceptors = {nothing};
                                 });
                           },
                           base, t, chained.child->pid()});
          cells.push_back({t, "brine metadata", codec,
                           [plain_uri, codec, with_md] {
                             return std::make_unique<BrineCaller>(plain_uri, codec, 0, nullptr,
                                                                  with_md);
                           },
                           base, t, brine4.child->pid()});
        }
      }
      run_latency_cells("context", cells, s);
    }

    if (s.wants("tools")) {
      print_header(
          "tools: a 64-byte json echo over the HTTP front door (keep-alive POST /v1/echo) vs the "
          "same call in the json codec on tcp4; metrics off vs on (the default), tcp4 and unix "
          "(workers=4)",
          "us");
      ServerProc quiet = start_server({"brine", "--metrics", "0"});
      const std::string http_uri = brine4.uri.at("http");
      std::vector<Cell> cells;
      const std::string tcp_uri = brine4.uri.at("tcp4");
      cells.push_back({"tcp4", "brine json", "json",
                       [tcp_uri] { return std::make_unique<BrineCaller>(tcp_uri, "json"); }, "", "",
                       brine4.child->pid()});
      cells.push_back({"http", "brine http json", "json",
                       [http_uri] { return std::make_unique<HttpCaller>(http_uri); }, "brine json",
                       "tcp4", brine4.child->pid()});
      for (const std::string t : {"tcp4", "unix"}) {
        for (const std::string codec : {"cereal", "protobuf"}) {
          const std::string off_uri = quiet.uri.at(t);
          const std::string on_uri = brine4.uri.at(t);
          const std::string base = "brine metrics off " + codec;
          cells.push_back(
              {t, base, codec,
               [off_uri, codec] { return std::make_unique<BrineCaller>(off_uri, codec); }, "", "",
               quiet.child->pid()});
          cells.push_back({t, "brine metrics on " + codec, codec,
                           [on_uri, codec] { return std::make_unique<BrineCaller>(on_uri, codec); },
                           base, t, brine4.child->pid()});
        }
      }
      run_latency_cells("tools", cells, s);
      // What metrics add to a call, measured alone in this process: the two clock reads, the
      // lookup of the method's counters and the recording, as the dispatcher does them.
      std::vector<double> ns;
      for (int r = 0; r < s.repeats; ++r) ns.push_back(metrics_record_ns(200000));
      add({"tools",
           "-",
           "metrics work per call",
           "-",
           "in process",
           "ns/call",
           stat_of(ns),
           0,
           {}});
    }

    if (s.wants("callback")) {
      print_header(
          "objects passed both ways: 64-byte echo through an object (tcp4, unix; workers=4), "
          "plain vs answered by a call back to an object the caller passes with each call",
          "us");
      std::vector<Cell> cells;
      for (const std::string t : {"tcp4", "unix"}) {
        for (const std::string codec : {"cereal", "json"}) {
          const std::string uri = brine4.uri.at(t);
          const std::string base = "brine object echo " + codec;
          cells.push_back(
              {t, base, codec,
               [uri, codec] { return std::make_unique<BouncerCaller>(uri, codec, false); }, "", "",
               brine4.child->pid()});
          cells.push_back(
              {t, "brine call + call back", codec,
               [uri, codec] { return std::make_unique<BouncerCaller>(uri, codec, true); }, base, t,
               brine4.child->pid()});
        }
      }
      run_latency_cells("callback", cells, s);
    }

    if (s.wants("lowlat")) {
      print_header("low-latency mode: busy_poll " + ll +
                       " us on client and server (workers=0) "
                       "vs raw busy-polling",
                   "us");
      ServerProc spin = start_server({"raw", "--spin"});
      ServerProc fast = start_server({"brine", "--workers", "0", "--busy-poll", ll});
      std::vector<Cell> cells;
      for (const std::string t : {"tcp4", "unix"}) {
        const std::string uri = spin.uri.at(t);
        cells.push_back({t, "raw busy-poll", "-",
                         [uri] { return std::make_unique<RawCaller>(uri, true); }, "", "",
                         spin.child->pid()});
      }
      for (auto& c : brine_cells(fast, "brine busy_poll", {"tcp4", "unix"}, s.busy_poll_us)) {
        c.baseline_variant = "raw busy-poll";
        cells.push_back(c);
      }
      run_latency_cells("lowlat", cells, s);
    }

    if (s.wants("pinned")) {
      print_header("pinned: client and servers on CPU 0 only (taskset), software cost", "us");
      pin_to_cpu(0);
      {
        ServerProc praw = start_server({"raw"});
        ServerProc p4 = start_server({"brine"});
        ServerProc p0 = start_server({"brine", "--workers", "0"});
        std::vector<Cell> cells;
        for (const std::string t : {"tcp4", "unix"}) {
          const std::string uri = praw.uri.at(t);
          cells.push_back({t, "raw blocking", "-",
                           [uri] { return std::make_unique<RawCaller>(uri, false); }, "", "",
                           praw.child->pid()});
        }
        for (auto& c : brine_cells(p4, "brine workers=4", {"tcp4", "unix"}, 0)) cells.push_back(c);
        for (auto& c : brine_cells(p0, "brine workers=0", {"tcp4", "unix"}, 0)) cells.push_back(c);
        run_latency_cells("pinned", cells, s);
      }
      pin_to_cpu(-1);
    }

    if (s.wants("throughput")) {
      print_header("throughput: 4 connections x 1 call in flight, 64-byte echo", "calls/s");
      struct TCell {
        std::string transport, variant, codec;
        std::function<std::unique_ptr<Caller>()> make;
      };
      std::vector<TCell> cells;
      for (auto& c : raw_cells(raw, zraw, ctx))
        cells.push_back({c.transport, c.variant, "-", c.make});
      for (auto* server : {&brine4, &brine0}) {
        const std::string variant = server == &brine4 ? "brine workers=4" : "brine workers=0 io=2";
        for (auto& c : brine_cells(*server, variant, kTransports, 0)) {
          cells.push_back({c.transport, c.variant, c.codec, c.make});
        }
      }
      for (auto& c : peer_cells(peer_servers))
        cells.push_back({c.transport, c.variant, "-", c.make});
      if (s.peers_only()) narrow_to_peer_comparison(cells);
      std::vector<std::vector<double>> rates(cells.size());
      for (int r = 0; r < s.repeats; ++r) {
        for (std::size_t i = 0; i < cells.size(); ++i) {
          rates[i].push_back(parallel_rate(cells[i].make, 4, s.throughput_calls));
        }
      }
      for (std::size_t i = 0; i < cells.size(); ++i) {
        Record rec{"throughput",
                   cells[i].transport,
                   cells[i].variant,
                   cells[i].codec,
                   "4x1",
                   "calls/s",
                   stat_of(rates[i]),
                   0,
                   {}};
        if (!is_raw(cells[i].variant)) {
          const auto* b = find("throughput", raw_transport_for(cells[i].transport),
                               raw_variant_for(cells[i].transport), "-", "4x1");
          if (b) {
            rec.baseline = b->value.median;
            rec.baseline_name = b->transport + " " + b->variant;
          }
        }
        add(rec);
      }
    }

    if (s.wants("pipelined")) {
      print_header("pipelined: 1 connection x 64 calls in flight, 64-byte echo", "calls/s");
      std::vector<std::vector<double>> raw_rates(5);
      const std::vector<std::string> raws = {"tcp4", "tcp6", "unix", "zmq+tcp", "zmq+ipc"};
      struct PCell {
        std::string transport, codec, variant;
        ServerProc* server;
      };
      std::vector<PCell> cells;
      for (auto* server : {&brine4, &brine0}) {
        const std::string variant = server == &brine4 ? "brine workers=4" : "brine workers=0 io=2";
        for (const auto& t : kTransports) {
          for (const auto& codec : kCodecs) cells.push_back({t, codec, variant, server});
        }
      }
      std::vector<std::vector<double>> rates(cells.size());
      for (int r = 0; r < s.repeats; ++r) {
        for (std::size_t i = 0; i < raws.size(); ++i) {
          const auto& t = raws[i];
          std::unique_ptr<Caller> c;
          if (t.rfind("zmq", 0) == 0) {
            c = std::make_unique<ZmqCaller>(ctx, zraw.uri.at(t));
          } else {
            c = std::make_unique<RawCaller>(raw.uri.at(t), false);
          }
          raw_rates[i].push_back(raw_pipelined_rate(*c, 64, s.pipelined_calls));
        }
        for (std::size_t i = 0; i < cells.size(); ++i) {
          rates[i].push_back(pipelined_rate(cells[i].server->uri.at(cells[i].transport),
                                            cells[i].codec, 64, s.pipelined_calls));
        }
      }
      for (std::size_t i = 0; i < raws.size(); ++i) {
        add({"pipelined",
             raws[i],
             raw_variant_for(raws[i]),
             "-",
             "1x64",
             "calls/s",
             stat_of(raw_rates[i]),
             0,
             {}});
      }
      for (std::size_t i = 0; i < cells.size(); ++i) {
        const auto& c = cells[i];
        Record rec{"pipelined", c.transport,       c.variant, c.codec, "1x64",
                   "calls/s",   stat_of(rates[i]), 0,         {}};
        const std::string bt = raw_transport_for(c.transport);
        if (const auto* b = find("pipelined", bt, raw_variant_for(c.transport), "-", "1x64")) {
          rec.baseline = b->value.median;
          rec.baseline_name = b->transport + " " + b->variant;
        }
        add(rec);
      }
    }

    if (s.wants("bulk")) {
      print_header("bulk: one payload echoed, MB/s each way (size / half the round trip)", "MB/s");
      struct BCell {
        std::string transport, variant, codec;
        std::function<std::unique_ptr<Caller>()> make;
      };
      std::vector<BCell> cells;
      for (auto& c : raw_cells(raw, zraw, ctx))
        cells.push_back({c.transport, c.variant, "-", c.make});
      for (auto& c : brine_cells(brine4, "brine workers=4", kTransports, 0)) {
        cells.push_back({c.transport, c.variant, c.codec, c.make});
      }
      for (auto& c : peer_cells(peer_servers))
        cells.push_back({c.transport, c.variant, "-", c.make});
      if (s.peers_only()) narrow_to_peer_comparison(cells);
      for (const std::size_t mib : {std::size_t(1), std::size_t(16)}) {
        const std::size_t bytes = mib << 20;
        const int rounds = mib == 1 ? s.bulk1_rounds : s.bulk16_rounds;
        const std::string metric = std::to_string(mib) + " MiB";
        std::vector<std::vector<double>> rates(cells.size());
        for (int r = 0; r < s.repeats; ++r) {
          for (std::size_t i = 0; i < cells.size(); ++i) {
            auto c = cells[i].make();
            c->call(bytes);  // warm up (buffers grown)
            std::vector<double> rtt;
            for (int k = 0; k < rounds; ++k) {
              const auto t0 = Clock::now();
              c->call(bytes);
              rtt.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
            }
            const double half = stat_of(rtt).median / 2;
            rates[i].push_back(double(bytes) / half / 1e6);
          }
        }
        for (std::size_t i = 0; i < cells.size(); ++i) {
          Record rec{"bulk",
                     cells[i].transport,
                     cells[i].variant,
                     cells[i].codec,
                     metric,
                     "MB/s",
                     stat_of(rates[i]),
                     0,
                     {}};
          if (!is_raw(cells[i].variant)) {
            if (const auto* b = find("bulk", raw_transport_for(cells[i].transport),
                                     raw_variant_for(cells[i].transport), "-", metric)) {
              rec.baseline = b->value.median;
              rec.baseline_name = b->transport + " " + b->variant;
            }
          }
          add(rec);
        }
      }
    }

    if (s.wants("compression") && selected("tcp4")) {
      print_header(
          "compression: 16 MiB echoed on tcp4 (workers=4), MB/s each way of the payload as the "
          "caller sees it; text (JSON-like lines) and random bytes; none, zstd (level 1), lz4",
          "MB/s");
      struct CCell {
        std::string variant, codec;
        std::function<std::unique_ptr<Caller>()> make;
      };
      std::vector<CCell> cells;
      const std::string raw_uri = raw.uri.at("tcp4");
      cells.push_back(
          {"raw blocking", "-", [raw_uri] { return std::make_unique<RawCaller>(raw_uri, false); }});
      const std::string uri = brine4.uri.at("tcp4");
      for (const std::string codec : {"cereal", "protobuf"}) {
        if (std::find(kCodecs.begin(), kCodecs.end(), codec) == kCodecs.end()) continue;
        for (const std::string data : {"text", "random"}) {
          for (const std::string algorithm : {"none", "zstd", "lz4"}) {
            const auto fill = data == "text" ? &text_payload : &random_payload;
            cells.push_back(
                {"brine " + algorithm + " " + data, codec, [uri, codec, algorithm, fill] {
                   auto c = std::make_unique<BrineCaller>(
                       uri, codec, 0, [algorithm](brine::ClientOptions& o) {
                         if (algorithm != "none") o.compression.algorithms = {algorithm};
                       });
                   c->use_payload(fill);
                   return c;
                 }});
          }
        }
      }
      const std::size_t bytes = 16u << 20;
      std::vector<std::vector<double>> rates(cells.size());
      for (int r = 0; r < s.repeats; ++r) {
        for (std::size_t i = 0; i < cells.size(); ++i) {
          auto c = cells[i].make();
          c->call(bytes);  // warm up: buffers grown, and the server's algorithms learnt
          std::vector<double> rtt;
          for (int k = 0; k < s.bulk16_rounds; ++k) {
            const auto t0 = Clock::now();
            c->call(bytes);
            rtt.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
          }
          rates[i].push_back(double(bytes) / (stat_of(rtt).median / 2) / 1e6);
        }
      }
      for (std::size_t i = 0; i < cells.size(); ++i) {
        Record rec{"compression",     "tcp4",   cells[i].variant,
                   cells[i].codec,    "16 MiB", "MB/s",
                   stat_of(rates[i]), 0,        {}};
        if (i != 0) {
          if (const auto* b = find("compression", "tcp4", "raw blocking", "-", "16 MiB")) {
            rec.baseline = b->value.median;
            rec.baseline_name = "tcp4 raw blocking";
          }
        }
        add(rec);
      }
    }

    if (s.wants("stream")) {
      print_header(
          "stream: a server stream's items, 64 B items/s and 1 MiB items MB/s, 1 and 16 "
          "streams",
          "rate");
      struct SCell {
        std::string transport, variant, codec, uri;
      };
      std::vector<SCell> cells;
      std::vector<std::string> ts;
      for (const std::string t : {"tcp4", "unix"}) {
        if (std::find(kTransports.begin(), kTransports.end(), t) != kTransports.end()) {
          ts.push_back(t);
        }
      }
      for (const auto& t : ts) cells.push_back({t, "raw blocking", "-", raw.uri.at(t)});
      for (const auto& t : ts) {
        for (const auto& codec : kCodecs) {
          cells.push_back({t, "brine workers=4", codec, brine4.uri.at(t)});
        }
      }
      struct Shape {
        std::size_t size;
        int count;
        int streams;
        std::string metric;
      };
      const std::vector<Shape> shapes = {
          {64, s.stream_small_items, 1, "64 B x1"},
          {64, s.stream_small_items, 16, "64 B x16"},
          {std::size_t(1) << 20, s.stream_big_items, 1, "1 MiB x1"},
          {std::size_t(1) << 20, s.stream_big_items, 16, "1 MiB x16"}};
      for (const Shape& shape : shapes) {
        std::vector<std::vector<double>> rates(cells.size());
        for (int r = 0; r < s.repeats; ++r) {  // interleaved: every cell once per repeat
          for (std::size_t i = 0; i < cells.size(); ++i) {
            const auto& c = cells[i];
            const double items =
                c.codec == "-"
                    ? raw_stream_rate(c.uri, shape.count, shape.size, shape.streams)
                    : brine_stream_rate(c.uri, c.codec, shape.count, shape.size, shape.streams);
            rates[i].push_back(shape.size == 64 ? items : items * double(shape.size) / 1e6);
          }
        }
        for (std::size_t i = 0; i < cells.size(); ++i) {
          const auto& c = cells[i];
          Record rec{"stream",
                     c.transport,
                     c.variant,
                     c.codec,
                     shape.metric,
                     shape.size == 64 ? "items/s" : "MB/s",
                     stat_of(rates[i]),
                     0,
                     {}};
          if (c.codec != "-") {
            if (const auto* b = find("stream", c.transport, "raw blocking", "-", shape.metric)) {
              rec.baseline = b->value.median;
              rec.baseline_name = b->transport + " " + b->variant;
            }
          }
          add(rec);
        }
      }
    }

    if (s.wants("memory")) {
      print_header("memory: server RSS growth per idle connection (" +
                       std::to_string(s.idle_connections) + " connections, one heartbeat each)",
                   "KiB");
      for (const std::string t : {"tcp4", "unix"}) {
        std::vector<double> v;
        for (int r = 0; r < s.repeats; ++r) {
          ServerProc fresh = start_server({"brine"});
          v.push_back(rss_per_idle_connection(fresh, t, s.idle_connections));
        }
        add({"memory", t, "brine workers=4", "-", "RSS/conn", "KiB", stat_of(v), 0, {}});
      }
    }

    if (s.wants("allocs")) {
      print_header(
          "allocations per small call (add: two doubles in, one out; operator new "
          "calls, all threads)",
          "allocs");
      for (ServerProc* server : {&brine4, &brine0}) {
        const std::string variant = server == &brine4 ? "brine workers=4" : "brine workers=0 io=2";
        for (const std::string t : {"tcp4", "unix", "zmq+tcp"}) {
          if (!selected(t)) continue;
          for (const auto& codec : kCodecs) {
            brine::Client probe(server->uri.at(t), client_options("cereal", 0));
            std::vector<double> client_side, server_side;
            for (int r = 0; r < s.repeats; ++r) {
              BrineCaller c(server->uri.at(t), codec);
              for (int i = 0; i < 200; ++i) c.add();  // warm up
              const auto q0 = probe.call(kAllocations, Count{}).value;
              const auto a0 = allocations();
              for (int i = 0; i < s.alloc_calls; ++i) c.add();
              const auto a1 = allocations();
              const auto q1 = probe.call(kAllocations, Count{}).value;
              client_side.push_back(double(a1 - a0) / s.alloc_calls);
              server_side.push_back(double(q1 - q0) / s.alloc_calls);
            }
            add({"allocs", t, variant, codec, "client", "allocs", stat_of(client_side), 0, {}});
            add({"allocs", t, variant, codec, "server", "allocs", stat_of(server_side), 0, {}});
          }
        }
      }
    }

    if (s.wants("peers")) print_peers(peers);

    // --- the issue's targets, from this run ---------------------------------------------------
    std::vector<Target> targets;
    const auto ratio = [&](const char* sec, const std::string& t, const std::string& v,
                           const std::string& codec, const char* metric) -> double {
      const auto* r = find(sec, t, v, codec, metric);
      return r && r->baseline > 0 ? r->value.median / r->baseline : -1;
    };
    const auto value = [&](const char* sec, const std::string& t, const std::string& v,
                           const std::string& codec, const char* metric) -> double {
      const auto* r = find(sec, t, v, codec, metric);
      return r ? r->value.median : -1;
    };
    // A ratio of two cells of this run (the first over the second).
    const auto over = [&](double a, double b) { return a >= 0 && b > 0 ? a / b : -1.0; };
    for (const auto& codec : kCodecs) {
      const bool binary = codec != "json";
      for (const std::string t : {"tcp4", "unix"}) {
        // Software cost: client and server on one CPU, so no wake-up is in the round trip.
        if (binary) {
          for (const char* v : {"brine workers=0", "brine workers=4"}) {
            targets.push_back({"pinned p50 " + t + " " + codec + " (" + v + ") / raw",
                               ratio("pinned", t, v, codec, "p50"), 1.3, true, "x"});
          }
          for (const char* side : {"client cpu", "server cpu"}) {
            targets.push_back(
                {std::string(side) + "/call " + t + " " + codec + " (workers=4) / raw",
                 over(value("latency", t, "brine workers=4", codec, side),
                      value("latency", t, "raw blocking", "-", side)),
                 1.3, true, "x"});
          }
        }
        // The default configuration (a worker pool) against a blocking raw round trip.
        targets.push_back({"latency p50 " + t + " " + codec + " (workers=4) / raw blocking",
                           ratio("latency", t, "brine workers=4", codec, "p50"),
                           binary ? 1.2 : 1.5 * 1.2, true, "x"});
      }
      if (!binary) {
        for (const std::string t : {"tcp4", "unix"}) {
          targets.push_back({"latency p50 " + t + " json / cereal (workers=4)",
                             over(value("latency", t, "brine workers=4", "json", "p50"),
                                  value("latency", t, "brine workers=4", "cereal", "p50")),
                             1.5, true, "x"});
        }
      }
      for (const std::string t : {"zmq+tcp", "zmq+ipc"}) {
        targets.push_back({"latency p50 " + t + " " + codec + " (workers=4) / raw zmq",
                           ratio("latency", t, "brine workers=4", codec, "p50"), 1.15, true, "x"});
      }
      targets.push_back({"throughput 4x1 tcp4 " + codec + " (workers=4) / raw TCP",
                         ratio("throughput", "tcp4", "brine workers=4", codec, "4x1"), 0.85, false,
                         "x"});
      targets.push_back({"pipelined 1x64 tcp4 " + codec + " (workers=4) / raw TCP 4x1",
                         over(value("pipelined", "tcp4", "brine workers=4", codec, "1x64"),
                              value("throughput", "tcp4", "raw blocking", "-", "4x1")),
                         1.5, false, "x"});
      for (const char* size : {"1 MiB", "16 MiB"}) {
        targets.push_back({std::string("bulk ") + size + " tcp4 " + codec + " / raw TCP",
                           ratio("bulk", "tcp4", "brine workers=4", codec, size), 0.8, false, "x"});
      }
      for (const std::string t : {"tcp4", "unix"}) {
        for (const char* shape : {"64 B x1", "1 MiB x1"}) {
          targets.push_back({"stream " + std::string(shape) + " " + t + " " + codec + " / raw",
                             ratio("stream", t, "brine workers=4", codec, shape), 0.8, false, "x"});
        }
      }
      const double allowed = codec == "cereal" ? 1 : codec == "protobuf" ? 2 : 4;
      for (const char* v : {"brine workers=4", "brine workers=0 io=2"}) {
        for (const char* side : {"client", "server"}) {
          targets.push_back(
              {std::string("allocations/call ") + side + " tcp4 " + codec + " (" + v + ")",
               value("allocs", "tcp4", v, codec, side), allowed, true, ""});
        }
      }
    }
    for (const std::string t : {"tcp4", "unix"}) {
      targets.push_back({"RSS per idle connection " + t + " KiB",
                         value("memory", t, "brine workers=4", "-", "RSS/conn"), 8, true, ""});
    }
    std::printf("\n== targets (issue 18), from this run\n");
    int met = 0;
    int measured = 0;
    for (const auto& t : targets) {
      if (t.ratio_or_value < 0) continue;  // section not run
      ++measured;
      // Compared as printed (a per-call average like 2.00004 counts as 2.00).
      const double v = std::round(t.ratio_or_value * 100) / 100;
      const bool ok = t.at_most ? v <= t.limit : v >= t.limit;
      met += ok ? 1 : 0;
      std::printf("%-62s %10s%s  %s %s%s\n", t.what.c_str(), fmt(t.ratio_or_value).c_str(),
                  t.unit.c_str(), t.at_most ? "<=" : ">=", fmt(t.limit).c_str(),
                  ok ? "  met" : "  MISSED");
    }
    std::printf("# %d of %d targets met\n", met, measured);
    if (measured == int(targets.size())) std::printf("# table complete\n");
    write_json(s, when);
    std::printf("# results written to %s\n", s.json.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "brine_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
