// brine-broker --frontend URI --backend URI
//
// Spreads calls from clients (frontend, a ROUTER they connect to as to any server) over worker
// processes (backend, a ROUTER that `calculator_server --connect URI` workers connect to).
//
// Routing: each request goes to the ready worker with the fewest calls outstanding. Workers say
// they are ready (frame kind 5, with their idempotent methods) and send heartbeats (kind 6)
// every 500 ms; a worker silent for 1.5 s is dropped. Its calls in flight are sent again to
// another worker when their method is idempotent, and fail with UNAVAILABLE otherwise. The only
// per-call state is that routing entry, removed when the reply passes; request bytes are kept
// only for idempotent calls, to be able to send them again.
//
// Clients' heartbeats (kind 6) are answered with a heartbeat, as a server answers them.
//
// Streams: a stream stays with the worker its request went to. The client's items, ends,
// credits and cancels for it follow the routing entry there, and the worker's items and credits
// go back to the client; the entry goes when the stream's reply or error passes (or the client
// cancels). A stream is never sent again to another worker: when its worker is lost, it fails
// with UNAVAILABLE.
//
// Prints "frontend <uri>" and "backend <uri>" (real ports) once it routes, then one line per
// worker that joins or is lost. Stops on SIGINT/SIGTERM.
#include <csignal>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>
#include <zmq.hpp>

#include "brine/detail/frame.hpp"
#include "flags.hpp"

namespace {

using namespace brine::detail;
using Clock = std::chrono::steady_clock;

constexpr auto kWorkerTimeout = std::chrono::milliseconds(1500);
constexpr std::size_t kMaxFrame = kDefaultMaxFrameSize;

volatile std::sig_atomic_t g_stop = 0;

std::string endpoint_of(const std::string& uri) {
  if (uri.rfind("zmq+", 0) != 0) {
    throw std::invalid_argument("broker URIs are zmq+tcp://, zmq+ipc:// or zmq+inproc://: " + uri);
  }
  std::string ep = uri.substr(4);
  if (ep.size() > 2 && ep.compare(ep.size() - 2, 2, ":0") == 0 && ep.rfind("tcp://", 0) == 0) {
    ep = ep.substr(0, ep.size() - 1) + "*";
  }
  return ep;
}

std::string hex(const zmq::message_t& id) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < id.size(); ++i) {
    const auto b = static_cast<const unsigned char*>(id.data())[i];
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

std::span<const std::byte> bytes_of(const zmq::message_t& m) {
  return {static_cast<const std::byte*>(m.data()), m.size()};
}

zmq::message_t copy_of(const zmq::message_t& m) {
  return zmq::message_t(m.data(), m.size());
}

struct Inflight {
  zmq::message_t client;
  std::optional<zmq::message_t> request;  // kept only for idempotent methods
};

struct Worker {
  std::string name;
  std::set<std::string, std::less<>> idempotent;
  Clock::time_point last_seen;
  // (client identity, call id) -> routing entry
  std::map<std::pair<std::string, std::uint64_t>, Inflight> inflight;
  std::uint64_t served = 0;
  std::uint64_t last_routed = 0;  // sequence number of the last call routed to it
};

class Broker {
 public:
  Broker(zmq::context_t& ctx, const std::string& frontend, const std::string& backend)
      : frontend_(ctx, zmq::socket_type::router), backend_(ctx, zmq::socket_type::router) {
    for (auto* s : {&frontend_, &backend_}) {
      s->set(zmq::sockopt::linger, 0);
      s->set(zmq::sockopt::maxmsgsize, std::int64_t(kMaxFrame + kPrefixSize));
      s->set(zmq::sockopt::heartbeat_ivl, 1000);
      s->set(zmq::sockopt::heartbeat_timeout, 3000);
      s->set(zmq::sockopt::heartbeat_ttl, 3000);
      s->set(zmq::sockopt::router_mandatory, 0);
      // No high-water mark: a ROUTER drops what it cannot queue, and a stream's item dropped
      // here would be lost without a trace. What waits here is bounded by the senders instead:
      // each stream by its window, each client's calls by its own (and the worker's
      // max_inflight_per_connection).
      s->set(zmq::sockopt::sndhwm, 0);
      s->set(zmq::sockopt::rcvhwm, 0);
    }
    frontend_.bind(endpoint_of(frontend));
    backend_.bind(endpoint_of(backend));
  }

  std::string frontend_uri() { return "zmq+" + frontend_.get(zmq::sockopt::last_endpoint); }
  std::string backend_uri() { return "zmq+" + backend_.get(zmq::sockopt::last_endpoint); }

  void run() {
    zmq::pollitem_t items[] = {{frontend_.handle(), 0, ZMQ_POLLIN, 0},
                               {backend_.handle(), 0, ZMQ_POLLIN, 0}};
    while (!g_stop) {
      try {
        zmq::poll(items, 2, std::chrono::milliseconds(100));
      } catch (const zmq::error_t& e) {
        if (e.num() == EINTR) continue;
        throw;
      }
      if (items[1].revents & ZMQ_POLLIN) from_workers();
      if (items[0].revents & ZMQ_POLLIN) from_clients();
      drop_silent_workers();
    }
    for (auto& [id, w] : workers_) {
      std::printf("worker %s served %llu calls\n", w.name.c_str(),
                  static_cast<unsigned long long>(w.served));
    }
    std::fflush(stdout);
  }

 private:
  std::vector<zmq::message_t> recv_multipart(zmq::socket_t& s) {
    std::vector<zmq::message_t> parts;
    zmq::message_t m;
    if (!s.recv(m, zmq::recv_flags::dontwait)) return parts;
    parts.push_back(std::move(m));
    while (parts.back().more()) {
      zmq::message_t more;
      (void)s.recv(more, zmq::recv_flags::none);
      parts.push_back(std::move(more));
    }
    return parts;
  }

  void to_client(zmq::message_t& client, zmq::message_t& frame) {
    (void)frontend_.send(client, zmq::send_flags::sndmore);
    (void)frontend_.send(frame, zmq::send_flags::dontwait);
  }

  void heartbeat_to_client(zmq::message_t& client) {
    brine::Buffer b;
    begin_frame(b, FrameKind::heartbeat, 0, {});
    (void)finish_frame(b, kMaxFrame);
    zmq::message_t frame(b.data(), b.size());
    to_client(client, frame);
  }

  void error_to_client(zmq::message_t& client, std::uint64_t call_id, const brine::Status& s) {
    brine::Buffer b;
    make_error_frame(b, call_id, s);
    zmq::message_t frame(b.data(), b.size());
    to_client(client, frame);
  }

  // The ready worker with the fewest calls outstanding, and among those the one routed to least
  // recently (so that one call at a time still goes round all workers); nullptr if none.
  std::pair<const std::string, Worker>* least_loaded() {
    std::pair<const std::string, Worker>* best = nullptr;
    for (auto& entry : workers_) {
      const Worker& w = entry.second;
      if (best == nullptr || w.inflight.size() < best->second.inflight.size() ||
          (w.inflight.size() == best->second.inflight.size() &&
           w.last_routed < best->second.last_routed)) {
        best = &entry;
      }
    }
    return best;
  }

  // Sends a request frame to a worker and records where its reply must go.
  void route(std::pair<const std::string, Worker>& worker, zmq::message_t client,
             zmq::message_t frame, const FrameView& f) {
    worker.second.last_routed = ++routed_;
    Inflight entry{copy_of(client), std::nullopt};
    // A stream's items have gone to this worker: it cannot start again elsewhere.
    const bool idempotent = worker.second.idempotent.count(f.method) != 0 && !f.stream;
    if (idempotent) entry.request = copy_of(frame);
    const bool oneway = f.kind == FrameKind::oneway;
    const std::uint64_t call_id = f.call_id;
    zmq::message_t wid(worker.first.data(), worker.first.size());
    (void)backend_.send(wid, zmq::send_flags::sndmore);
    (void)backend_.send(client, zmq::send_flags::sndmore);
    (void)backend_.send(frame, zmq::send_flags::dontwait);
    if (!oneway) {
      const std::string key(static_cast<const char*>(entry.client.data()), entry.client.size());
      worker.second.inflight.insert_or_assign({key, call_id}, std::move(entry));
      routes_.insert_or_assign({key, call_id}, worker.first);
    }
  }

  // An item, end, credit or cancel from a client: to the worker running its call. Frames of a
  // call that has ended (or never was) are dropped, as a server drops them.
  void follow(zmq::message_t& client, zmq::message_t& frame, const FrameView& f) {
    const std::string key(static_cast<const char*>(client.data()), client.size());
    const auto route = routes_.find({key, f.call_id});
    if (route == routes_.end()) return;
    const auto worker = workers_.find(route->second);
    if (worker == workers_.end()) return;
    zmq::message_t wid(worker->first.data(), worker->first.size());
    (void)backend_.send(wid, zmq::send_flags::sndmore);
    (void)backend_.send(client, zmq::send_flags::sndmore);
    (void)backend_.send(frame, zmq::send_flags::dontwait);
    if (f.kind == FrameKind::cancel) {
      // The client has completed the call: no answer is awaited any more.
      worker->second.inflight.erase({key, f.call_id});
      routes_.erase(route);
    }
  }

  void from_clients() {
    for (int budget = 0; budget < 1000; ++budget) {
      auto parts = recv_multipart(frontend_);
      if (parts.empty()) return;
      if (parts.size() != 2) continue;  // [client][frame] only
      FrameView f{};
      brine::Status s = frame_from_message(bytes_of(parts[1]), kMaxFrame, &f);
      if (s.ok() && f.kind == FrameKind::heartbeat) {
        // A client's "still here": answered, as a server answers it (brine clients declare a
        // server dead when nothing arrives for their heartbeat timeout).
        heartbeat_to_client(parts[0]);
        continue;
      }
      if (s.ok() && (f.kind == FrameKind::cancel || f.kind == FrameKind::item ||
                     f.kind == FrameKind::end || f.kind == FrameKind::credit)) {
        follow(parts[0], parts[1], f);
        continue;
      }
      if (s.ok() && f.kind != FrameKind::request && f.kind != FrameKind::oneway) {
        s = {brine::StatusCode::invalid_argument,
             "clients send only requests, oneways, heartbeats, cancels and stream frames"};
      }
      if (!s.ok()) {
        error_to_client(parts[0], 0, {s.code, "protocol error: " + s.message});
        continue;
      }
      auto* worker = least_loaded();
      if (worker == nullptr) {
        if (f.kind == FrameKind::request) {
          error_to_client(parts[0], f.call_id,
                          {brine::StatusCode::unavailable, "no worker is available"});
        }
        continue;
      }
      route(*worker, std::move(parts[0]), std::move(parts[1]), f);
    }
  }

  void from_workers() {
    for (int budget = 0; budget < 1000; ++budget) {
      auto parts = recv_multipart(backend_);
      if (parts.empty()) return;
      const std::string wid(static_cast<const char*>(parts[0].data()), parts[0].size());
      FrameView f{};
      if (parts.size() == 2) {  // [worker][control frame]
        if (!frame_from_message(bytes_of(parts[1]), kMaxFrame, &f).ok()) continue;
        if (f.kind == FrameKind::worker_ready) {
          ready(wid, parts[0], f.payload);
        } else if (auto it = workers_.find(wid); it != workers_.end()) {
          it->second.last_seen = Clock::now();
        }
        continue;
      }
      if (parts.size() != 3) continue;  // [worker][client][reply]
      auto it = workers_.find(wid);
      if (it != workers_.end()) it->second.last_seen = Clock::now();
      if (!frame_from_message(bytes_of(parts[2]), kMaxFrame, &f).ok()) continue;
      const std::string client(static_cast<const char*>(parts[1].data()), parts[1].size());
      // A stream's items and credits pass; its reply or error ends the call.
      const bool ends = f.kind != FrameKind::item && f.kind != FrameKind::credit;
      if (it != workers_.end() && ends && it->second.inflight.erase({client, f.call_id}) != 0) {
        ++it->second.served;
        routes_.erase({client, f.call_id});
      }
      to_client(parts[1], parts[2]);
    }
  }

  void ready(const std::string& wid, const zmq::message_t& id, std::span<const std::byte> p) {
    auto [it, fresh] = workers_.try_emplace(wid);
    Worker& w = it->second;
    w.name = hex(id);
    w.last_seen = Clock::now();
    w.idempotent.clear();
    if (p.size() >= 2) {
      std::size_t count = load_be16(p.data());
      std::size_t off = 2;
      while (count-- > 0 && off + 2 <= p.size()) {
        const std::size_t len = load_be16(p.data() + off);
        off += 2;
        if (off + len > p.size()) break;
        w.idempotent.emplace(reinterpret_cast<const char*>(p.data() + off), len);
        off += len;
      }
    }
    if (fresh) {
      std::printf("worker joined %s (%zu workers)\n", w.name.c_str(), workers_.size());
      std::fflush(stdout);
    }
  }

  void drop_silent_workers() {
    const auto now = Clock::now();
    for (auto it = workers_.begin(); it != workers_.end();) {
      if (now - it->second.last_seen <= kWorkerTimeout) {
        ++it;
        continue;
      }
      Worker lost = std::move(it->second);
      it = workers_.erase(it);
      std::size_t retried = 0;
      std::size_t failed = 0;
      for (auto& [key, entry] : lost.inflight) {
        routes_.erase(key);
        auto* next = least_loaded();
        if (entry.request && next != nullptr) {
          FrameView f{};
          (void)frame_from_message(bytes_of(*entry.request), kMaxFrame, &f);
          zmq::message_t frame = std::move(*entry.request);
          // f views `frame`'s bytes; moving a zmq::message_t keeps its data where it is.
          route(*next, std::move(entry.client), std::move(frame), f);
          ++retried;
        } else {
          error_to_client(
              entry.client, key.second,
              {brine::StatusCode::unavailable,
               "the worker running this call was lost (a stream, or a call not idempotent, is "
               "not sent again)"});
          ++failed;
        }
      }
      std::printf("worker lost %s (%zu calls in flight: %zu sent again, %zu failed; %zu workers)\n",
                  lost.name.c_str(), retried + failed, retried, failed, workers_.size());
      std::fflush(stdout);
    }
  }

  zmq::socket_t frontend_;
  zmq::socket_t backend_;
  std::unordered_map<std::string, Worker> workers_;
  // (client identity, call id) -> the worker running it, for the stream frames that follow.
  std::map<std::pair<std::string, std::uint64_t>, std::string> routes_;
  std::uint64_t routed_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  std::string frontend;
  std::string backend;
  examples::Flags flags("brine-broker",
                        "Routes brine calls from clients (frontend) to worker servers (backend), "
                        "over ZeroMQ. Prints the bound URIs, then runs until SIGINT or SIGTERM.");
  flags.text("--frontend", "URI", "where clients connect (zmq+tcp://, zmq+ipc://)", &frontend)
      .text("--backend", "URI", "where worker servers connect (Server::connect)", &backend);
  flags.parse(argc, argv);
  if (frontend.empty() || backend.empty()) flags.fail("--frontend and --backend are needed");
  std::signal(SIGINT, [](int) { g_stop = 1; });
  std::signal(SIGTERM, [](int) { g_stop = 1; });
  try {
    zmq::context_t ctx(1);
    Broker broker(ctx, frontend, backend);
    std::printf("frontend %s\nbackend %s\n", broker.frontend_uri().c_str(),
                broker.backend_uri().c_str());
    std::fflush(stdout);
    broker.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "brine-broker: %s\n", e.what());
    return 1;
  }
  return 0;
}
