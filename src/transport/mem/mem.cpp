// mem://name: a client and a server in one process exchange frames without sockets or system
// calls (for users' unit tests and for embedding; gRPC's InProcessChannel).
//
// A connection is two ends sharing a link; each end has an inbox of frames for it. A frame sent
// is moved (not copied) into the other end's inbox and delivered on the sending thread: the
// sender becomes the inbox's drainer and delivers frames in order until it is empty, while
// frames that other threads send meanwhile wait for it. So a request runs the server's dispatch
// on the calling thread (a server with workers = 0 runs the handler there too), and a reply
// completes the call on the thread that sends it. The listener's name is found through a
// process-wide table, the way zmq+inproc names are: the one such table in brine besides
// ZeroMQ's context.
#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <unordered_map>

#include "transport/channel.hpp"

namespace brine::transport {
namespace {

// Frames waiting in an inbox beyond which a sender with WhenFull::wait waits (a socket buffer's
// worth). A frame always fits an empty inbox.
constexpr std::size_t kInboxBytes = 4u * 1024 * 1024;

// Whether an end's close is due: `after_frames` once the frames its peer sent before closing
// are delivered (as a socket's data comes before its FIN), `now` when the end closed itself and
// what was sent to it is dropped.
enum class Closing { no, after_frames, now };

struct Inbox {
  std::mutex mu;
  std::condition_variable room;  // senders waiting for room
  std::deque<Buffer> frames;
  std::size_t bytes = 0;
  bool draining = false;  // a thread delivers this inbox's frames now
  std::thread::id drainer;
  bool paused = false;
  bool started = false;  // the end has a sink
  Closing closing = Closing::no;
  bool close_delivered = false;
  Clock::time_point last_progress{};
  std::shared_ptr<ChannelSink> sink;
  std::size_t max_frame_size = detail::kDefaultMaxFrameSize;
};

// One connection: inbox[0] holds frames for the client end, inbox[1] for the server end.
class Link {
 public:
  SendStatus send(int to, Buffer&& frame, Deadline deadline, WhenFull when_full);
  // `side` closes with `why`; the other end learns that its peer closed.
  void close(int side, const Status& why);
  void start(int side, std::shared_ptr<ChannelSink> sink);
  void pause(int side, bool paused);
  std::size_t queued_for(int side);
  std::optional<Clock::time_point> stalled(int side);
  bool closed() {
    std::lock_guard lk(state_mu_);
    return closed_;
  }
  Inbox inbox[2];

 private:
  // With `in.mu` held by `lk`, the inbox started and not owned: delivers until it is empty or
  // paused, then the close if one is due.
  void drain(int side, std::unique_lock<std::mutex>& lk);
  void deliver(Inbox& in, const Buffer& frame);
  // With the inbox owned: on_close to its sink, once.
  void deliver_close(int side, std::unique_lock<std::mutex>& lk);

  std::mutex state_mu_;
  bool closed_ = false;
  Status why_[2];  // what each end is told
};

SendStatus Link::send(int to, Buffer&& frame, Deadline deadline, WhenFull when_full) {
  Inbox& in = inbox[to];
  std::unique_lock lk(in.mu);
  if (closed()) return SendStatus::closed;
  if (when_full == WhenFull::wait && in.bytes > 0 && in.bytes + frame.size() > kInboxBytes) {
    const bool room = in.room.wait_until(lk, deadline, [&] {
      return closed() || in.bytes == 0 || in.bytes + frame.size() <= kInboxBytes;
    });
    if (!room) return SendStatus::timed_out;
    if (closed()) return SendStatus::closed;
  }
  if (in.frames.empty()) in.last_progress = Clock::now();
  in.bytes += frame.size();
  in.frames.push_back(std::move(frame));
  if (!in.draining && !in.paused && in.started) drain(to, lk);
  return SendStatus::sent;
}

bool close_due(const Inbox& in) {
  return in.closing == Closing::now || (in.closing == Closing::after_frames && in.frames.empty());
}

void Link::drain(int side, std::unique_lock<std::mutex>& lk) {
  Inbox& in = inbox[side];
  in.draining = true;
  in.drainer = std::this_thread::get_id();
  bool delivered = false;
  while (!in.frames.empty() && !in.paused && in.closing != Closing::now) {
    Buffer frame = std::move(in.frames.front());
    in.frames.pop_front();
    in.bytes -= frame.size();
    in.last_progress = Clock::now();
    in.room.notify_all();
    lk.unlock();
    deliver(in, frame);
    delivered = true;
    lk.lock();
  }
  if (close_due(in)) {
    deliver_close(side, lk);
    return;
  }
  in.draining = false;
  if (!delivered) return;
  const std::size_t left = in.bytes;
  Inbox& from = inbox[1 - side];
  lk.unlock();
  // The sending end learns that its frames went (back-pressure).
  std::shared_ptr<ChannelSink> sender;
  {
    std::lock_guard flk(from.mu);
    if (!from.close_delivered) sender = from.sink;
  }
  if (sender) sender->on_sent(left);
  lk.lock();
}

void Link::deliver(Inbox& in, const Buffer& frame) {
  detail::FrameView f{};
  if (Status s = detail::frame_from_message(frame.bytes(), in.max_frame_size, &f); !s.ok()) {
    in.sink->on_bad_frame(s, true);
    return;
  }
  in.sink->on_frame(f);
}

void Link::deliver_close(int side, std::unique_lock<std::mutex>& lk) {
  Inbox& in = inbox[side];
  in.frames.clear();
  in.bytes = 0;
  in.room.notify_all();
  std::shared_ptr<ChannelSink> sink;
  if (!in.close_delivered && in.started) {
    in.close_delivered = true;
    sink = std::move(in.sink);
  }
  in.draining = false;
  Status why;
  {
    std::lock_guard slk(state_mu_);
    why = why_[side];
  }
  lk.unlock();
  if (sink) sink->on_close(why);
  lk.lock();
}

void Link::close(int closer, const Status& why) {
  bool first = false;
  {
    std::lock_guard lk(state_mu_);
    if (!closed_) {
      closed_ = true;
      first = true;
      why_[closer] = why;
      why_[1 - closer] = {StatusCode::unavailable, "connection closed by the peer"};
    }
  }
  // The closer's end drops what was sent to it; the peer's end gets what the closer sent first.
  // A second close, by an end whose close still waits for frames (it had paused reading), makes
  // that end's close immediate.
  for (const int side : {closer, 1 - closer}) {
    if (side != closer && !first) continue;
    Inbox& in = inbox[side];
    std::unique_lock lk(in.mu);
    in.room.notify_all();
    if (in.closing != Closing::now) {
      in.closing = side == closer ? Closing::now : Closing::after_frames;
    }
    // A delivery under way (perhaps on this very thread, inside a sink's callback) delivers the
    // close when it is done.
    if (!in.draining && in.started) drain(side, lk);
  }
}

void Link::start(int side, std::shared_ptr<ChannelSink> sink) {
  Inbox& in = inbox[side];
  std::unique_lock lk(in.mu);
  in.sink = std::move(sink);
  in.started = true;
  if (!in.draining) drain(side, lk);
}

void Link::pause(int side, bool paused) {
  Inbox& in = inbox[side];
  std::unique_lock lk(in.mu);
  in.paused = paused;
  if (!paused && !in.draining && in.started) drain(side, lk);
}

std::size_t Link::queued_for(int side) {
  std::lock_guard lk(inbox[side].mu);
  return inbox[side].bytes;
}

std::optional<Clock::time_point> Link::stalled(int side) {
  std::lock_guard lk(inbox[side].mu);
  if (inbox[side].frames.empty()) return std::nullopt;
  return inbox[side].last_progress;
}

// One end of a link: side 0 is the client's, side 1 the server's.
class MemChannel final : public Channel {
 public:
  MemChannel(std::shared_ptr<Link> link, int side, PeerInfo peer)
      : link_(std::move(link)), side_(side), peer_(std::move(peer)) {}
  void start(std::shared_ptr<ChannelSink> sink) override { link_->start(side_, std::move(sink)); }
  SendStatus send(Buffer&& frame, Deadline deadline, WhenFull when_full) override {
    return link_->send(1 - side_, std::move(frame), deadline, when_full);
  }
  // What this end sent is delivered before the peer learns of the close; what was sent to this
  // end and not yet delivered is dropped.
  void close(const Status& why, Deadline) override { link_->close(side_, why); }
  void pause_reading(bool paused) override { link_->pause(side_, paused); }
  std::size_t queued_bytes() const override { return link_->queued_for(1 - side_); }
  ChannelProgress progress() const override { return {std::nullopt, link_->stalled(1 - side_)}; }
  const PeerInfo& peer() const override { return peer_; }

 private:
  std::shared_ptr<Link> link_;
  int side_;
  PeerInfo peer_;
};

// What a listening name holds: who takes its connections.
struct Endpoint {
  std::mutex mu;
  ListenerSink* sink = nullptr;                   // once started
  std::vector<std::shared_ptr<Channel>> waiting;  // connected before start
  bool closed = false;
  std::size_t max_frame_size = detail::kDefaultMaxFrameSize;
  std::size_t connections = 0;
};

// The process-wide table of listening names.
class Names {
 public:
  static Names& instance() {
    static auto* names = new Names;  // never destroyed: listeners may outlive static destructors
    return *names;
  }
  void add(const std::string& name, const std::shared_ptr<Endpoint>& endpoint) {
    std::lock_guard lk(mu_);
    auto& slot = table_[name];
    if (!slot.expired()) {
      throw std::system_error(std::make_error_code(std::errc::address_in_use),
                              "cannot listen on mem://" + name);
    }
    slot = endpoint;
  }
  void remove(const std::string& name, const Endpoint* endpoint) {
    std::lock_guard lk(mu_);
    const auto it = table_.find(name);
    if (it == table_.end()) return;
    const auto current = it->second.lock();
    if (!current || current.get() == endpoint) table_.erase(it);
  }
  std::shared_ptr<Endpoint> find(const std::string& name) {
    std::lock_guard lk(mu_);
    const auto it = table_.find(name);
    return it == table_.end() ? nullptr : it->second.lock();
  }

 private:
  std::mutex mu_;
  std::unordered_map<std::string, std::weak_ptr<Endpoint>> table_;
};

std::string name_of(std::string_view uri) {
  constexpr std::string_view kPrefix = "mem://";
  if (uri.substr(0, kPrefix.size()) != kPrefix) {
    throw std::invalid_argument("URI '" + std::string(uri) + "' is not a mem:// URI");
  }
  const std::string_view name = uri.substr(kPrefix.size());
  const bool good = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
  if (!good) {
    throw std::invalid_argument("mem URI '" + std::string(uri) +
                                "': the name is letters, digits, '-', '_' and '.'");
  }
  return std::string(name);
}

class MemDialer final : public Dialer {
 public:
  MemDialer(std::string name, std::size_t max_frame_size)
      : name_(std::move(name)), max_frame_size_(max_frame_size) {}
  std::shared_ptr<Channel> dial(Deadline, std::string& error) override {
    const auto endpoint = Names::instance().find(name_);
    if (!endpoint) {
      error = "nothing listens on mem://" + name_;
      return nullptr;
    }
    std::lock_guard lk(endpoint->mu);
    if (endpoint->closed) {
      error = "nothing listens on mem://" + name_;
      return nullptr;
    }
    auto link = std::make_shared<Link>();
    link->inbox[0].max_frame_size = max_frame_size_;
    link->inbox[1].max_frame_size = endpoint->max_frame_size;
    auto client = std::make_shared<MemChannel>(link, 0, PeerInfo{"mem", name_});
    auto server = std::make_shared<MemChannel>(
        link, 1, PeerInfo{"mem", name_ + "#" + std::to_string(++endpoint->connections)});
    if (endpoint->sink != nullptr) {
      endpoint->sink->on_channel(std::move(server));
    } else {
      endpoint->waiting.push_back(std::move(server));
    }
    return client;
  }

 private:
  std::string name_;
  std::size_t max_frame_size_;
};

class MemListener final : public Listener {
 public:
  MemListener(std::string name, std::size_t max_frame_size)
      : name_(std::move(name)), uri_("mem://" + name_) {
    endpoint_->max_frame_size = max_frame_size;
    Names::instance().add(name_, endpoint_);
  }
  ~MemListener() override { close(false); }
  const std::string& uri() const override { return uri_; }
  void start(ListenerSink& sink) override {
    std::lock_guard lk(endpoint_->mu);
    if (endpoint_->closed) return;
    endpoint_->sink = &sink;
    for (auto& channel : endpoint_->waiting) sink.on_channel(std::move(channel));
    endpoint_->waiting.clear();
  }
  void close(bool) override {
    std::vector<std::shared_ptr<Channel>> waiting;
    {
      std::lock_guard lk(endpoint_->mu);
      if (endpoint_->closed) return;
      endpoint_->closed = true;
      endpoint_->sink = nullptr;
      waiting.swap(endpoint_->waiting);
    }
    Names::instance().remove(name_, endpoint_.get());
    for (auto& channel : waiting) {
      channel->close({StatusCode::unavailable, "the server closed " + uri_}, Deadline{});
    }
  }

 private:
  std::string name_;
  std::string uri_;
  std::shared_ptr<Endpoint> endpoint_ = std::make_shared<Endpoint>();
};

void check(std::string_view uri) {
  (void)name_of(uri);
}

std::unique_ptr<Dialer> dialer(std::string_view uri, const ClientSide& client) {
  return std::make_unique<MemDialer>(name_of(uri), client.options.max_frame_size);
}

std::unique_ptr<Listener> listen(std::string_view uri, const ServerSide& server) {
  return std::make_unique<MemListener>(name_of(uri), server.options.max_frame_size);
}

}  // namespace

extern const Scheme kSchemeMem;
const Scheme kSchemeMem{"mem", check, dialer, listen, nullptr};

}  // namespace brine::transport
