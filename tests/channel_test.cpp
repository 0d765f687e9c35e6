// The channel conformance suite: the transport contract (src/transport/channel.hpp) checked over
// every scheme with one body per behaviour, in the style of nng's one suite for all transports.
// A listener and a dialer are made from the scheme registry, and what each end's sink receives
// is recorded and checked against the contract. Partial reads and writes are provoked with a
// wrapper around the byte stream, not with hooks inside the library.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "event/loop.hpp"
#include "test_server.hpp"
#include "tls_files.hpp"
#include "transport/datagram/envelope.hpp"
#include "transport/registry.hpp"
#include "transport/stream/byte_stream.hpp"
#include "transport/stream/stream_channel.hpp"
#include "transports.hpp"

namespace {

using namespace std::chrono_literals;
using brine::Buffer;
using brine::Status;
using brine::StatusCode;
using brine::detail::FrameKind;
using brine::transport::Channel;
using brine::transport::Clock;
using brine::transport::SendStatus;
using brine::transport::WhenFull;
using brine_test::listen_uri;
using brine_test::test_transport;

// An EventLoop running on its own thread for as long as the object lives.
struct LoopThread {
  brine::event::EventLoop loop;
  std::thread thread{[this] { loop.run(); }};
  ~LoopThread() {
    loop.stop();
    thread.join();
  }
};

// A frame of `kind` with call id `id` and a payload of `size` bytes, each byte derived from the
// id and its position (so a frame cut or mixed with another is seen).
Buffer make_frame(std::uint64_t id, std::size_t size, FrameKind kind = FrameKind::request) {
  Buffer f;
  brine::detail::begin_frame(f, kind, 1, kind == FrameKind::request ? "m" : "");
  brine::detail::set_call_id(f, id);
  std::byte* p = f.extend(size);
  for (std::size_t i = 0; i < size; ++i) p[i] = std::byte((id * 31 + i) & 0xFF);
  EXPECT_TRUE(brine::detail::finish_frame(f, 0xFFFFFFFFu));
  return f;
}

bool intact(std::uint64_t id, const std::string& payload) {
  for (std::size_t i = 0; i < payload.size(); ++i) {
    if (std::uint8_t(payload[i]) != std::uint8_t((id * 31 + i) & 0xFF)) return false;
  }
  return true;
}

// Records what a channel delivers, and checks the contract while it does: no frame after the
// close, one close, callbacks that never overlap.
class Recorder final : public brine::transport::ChannelSink {
 public:
  struct Frame {
    FrameKind kind;
    std::uint64_t id;
    std::string payload;
  };

  void on_frame(const brine::detail::FrameView& f) override {
    enter();
    {
      std::unique_lock lk(mu_);
      if (hold_) {
        // Busy with this frame until release(): the sender's next frames must wait for us.
        held_ = true;
        cv_.notify_all();
        cv_.wait_for(lk, 10s, [&] { return !hold_; });
      }
      if (closes_ > 0) violation_ = "a frame after on_close";
      frames_.push_back(
          {f.kind, f.call_id,
           std::string(reinterpret_cast<const char*>(f.payload.data()), f.payload.size())});
    }
    leave();
  }
  void on_bad_frame(const Status& why, bool) override {
    enter();
    {
      std::lock_guard lk(mu_);
      bad_.push_back(why);
    }
    leave();
  }
  void on_close(const Status& why) override {
    enter();
    {
      std::lock_guard lk(mu_);
      ++closes_;
      why_ = why;
    }
    leave();
  }

  // The next frame's on_frame does not return until release().
  void hold() {
    std::lock_guard lk(mu_);
    hold_ = true;
  }
  bool wait_held() {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, 10s, [&] { return held_; });
  }
  void release() {
    std::lock_guard lk(mu_);
    hold_ = false;
    cv_.notify_all();
  }

  bool wait_frames(std::size_t n, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, timeout, [&] { return frames_.size() >= n; });
  }
  bool wait_closed(std::chrono::milliseconds timeout = 5s) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, timeout, [&] { return closes_ > 0; });
  }
  bool wait_bad(std::chrono::milliseconds timeout = 5s) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, timeout, [&] { return !bad_.empty(); });
  }
  std::vector<Frame> frames() {
    std::lock_guard lk(mu_);
    return frames_;
  }
  int closes() {
    std::lock_guard lk(mu_);
    return closes_;
  }
  Status why() {
    std::lock_guard lk(mu_);
    return why_;
  }
  std::vector<Status> bad() {
    std::lock_guard lk(mu_);
    return bad_;
  }
  std::string violation() {
    std::lock_guard lk(mu_);
    return violation_;
  }

 private:
  void enter() {
    if (busy_.exchange(true)) {
      std::lock_guard lk(mu_);
      violation_ = "overlapping callbacks";
    }
  }
  void leave() {
    busy_.store(false);
    cv_.notify_all();
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Frame> frames_;
  std::vector<Status> bad_;
  int closes_ = 0;
  bool hold_ = false;
  bool held_ = false;
  Status why_;
  std::string violation_;
  std::atomic<bool> busy_{false};
};

// Takes the channels a listener accepts, starting each with a Recorder at once (a ZeroMQ peer's
// first frame follows its hand-over directly).
class Acceptor final : public brine::transport::ListenerSink {
 public:
  void on_channel(std::shared_ptr<Channel> channel) override {
    auto recorder = std::make_shared<Recorder>();
    channel->start(recorder);
    std::lock_guard lk(mu_);
    accepted_.push_back({std::move(channel), std::move(recorder)});
    cv_.notify_all();
  }
  std::pair<std::shared_ptr<Channel>, std::shared_ptr<Recorder>> wait_first() {
    std::unique_lock lk(mu_);
    if (!cv_.wait_for(lk, 10s, [&] { return !accepted_.empty(); })) return {};
    return accepted_.front();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<std::shared_ptr<Channel>, std::shared_ptr<Recorder>>> accepted_;
};

// A client channel dialled to a listener of one scheme, and the server channel it made. The
// client sends one frame first (a ZeroMQ server learns of a peer only when it speaks).
class Channels : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const auto& t = test_transport(GetParam());
    if (t.tls) {
      (void)brine_test::tls_files();
      server_options.tls.certificate_file = brine_test::tls_paths().server_crt;
      server_options.tls.private_key_file = brine_test::tls_paths().server_key;
      client_options.tls.ca_file = brine_test::tls_paths().ca;
    }
  }
  void TearDown() override {
    if (client) client->close({StatusCode::cancelled, "test over"}, Clock::now());
    if (server) server->close({StatusCode::cancelled, "test over"}, Clock::now());
    if (listener) listener->close();
    if (at_client) {
      EXPECT_EQ(at_client->violation(), "");
    }
    if (at_server) {
      EXPECT_EQ(at_server->violation(), "");
    }
  }

  void connect() {
    const std::string uri = listen_uri(GetParam());
    brine::transport::ServerSide side{
        server_options, {&server_loop.loop}, [] { return std::vector<std::string>{}; }};
    listener = brine::transport::scheme_of(uri).listen(uri, side);
    listener->start(acceptor);
    const std::string& bound = listener->uri();
    auto dialer = brine::transport::scheme_of(bound).dialer(
        bound, brine::transport::ClientSide{client_options, client_loop.loop});
    std::string error;
    client = dialer->dial(Clock::now() + 10s, error);
    ASSERT_TRUE(client) << error;
    client->start(at_client);
    if (auto* reader = client->caller_reads()) reader->expect();  // the loop reads for us
    ASSERT_EQ(client->send(make_frame(1, 3), Clock::now() + 5s, WhenFull::wait), SendStatus::sent);
    std::tie(server, at_server) = acceptor.wait_first();
    ASSERT_TRUE(server) << "nothing accepted";
    ASSERT_TRUE(at_server->wait_frames(1));
  }
  bool zmq() const { return test_transport(GetParam()).zmq; }
  bool datagram() const { return test_transport(GetParam()).datagram; }
  // The peer's departure is not seen, only its silence (ZeroMQ, datagrams).
  bool silent() const { return zmq() || datagram(); }

  brine::ClientOptions client_options;
  brine::ServerOptions server_options;
  LoopThread client_loop;
  LoopThread server_loop;
  Acceptor acceptor;
  std::unique_ptr<brine::transport::Listener> listener;
  std::shared_ptr<Channel> client;
  std::shared_ptr<Channel> server;
  std::shared_ptr<Recorder> at_client = std::make_shared<Recorder>();
  std::shared_ptr<Recorder> at_server;
};

TEST_P(Channels, FramesArriveWholeAndInOrderBothWays) {
  connect();
  // A datagram carries at most kMaxFrame bytes of frame.
  const std::vector<std::size_t> sizes =
      datagram() ? std::vector<std::size_t>{0, 1, 17, 4096, 30000, 65000}
                 : std::vector<std::size_t>{0, 1, 17, 4096, 65535, 65536, 70001, 300000};
  std::uint64_t id = 2;
  for (int round = 0; round < 5; ++round) {
    for (std::size_t size : sizes) {
      ASSERT_EQ(client->send(make_frame(id, size), Clock::now() + 10s, WhenFull::wait),
                SendStatus::sent);
      ASSERT_EQ(server->send(make_frame(id, size, FrameKind::reply), Clock::now(), WhenFull::queue),
                SendStatus::sent);
      ++id;
    }
  }
  const std::size_t n = id - 2;
  ASSERT_TRUE(at_server->wait_frames(n + 1));
  ASSERT_TRUE(at_client->wait_frames(n));
  const auto got_server = at_server->frames();
  const auto got_client = at_client->frames();
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t size = sizes[i % sizes.size()];
    EXPECT_EQ(got_server[i + 1].id, i + 2);
    EXPECT_EQ(got_server[i + 1].payload.size(), size);
    EXPECT_TRUE(intact(i + 2, got_server[i + 1].payload)) << "frame " << i + 2;
    EXPECT_EQ(got_client[i].id, i + 2);
    EXPECT_EQ(got_client[i].kind, FrameKind::reply);
    EXPECT_TRUE(intact(i + 2, got_client[i].payload)) << "frame " << i + 2;
  }
}

TEST_P(Channels, ASixteenMebibyteFrameCrossesBothWays) {
  connect();
  // The largest frame the default limit allows: 16 MiB after the length prefix (a datagram's
  // limit on datagram transports).
  const std::size_t limit = datagram() ? brine::transport::datagram::kMaxFrameLength
                                       : brine::detail::kDefaultMaxFrameSize;
  const std::size_t payload = limit - brine::detail::kHeaderSize - 1;
  ASSERT_EQ(client->send(make_frame(7, payload), Clock::now() + 20s, WhenFull::wait),
            SendStatus::sent);
  ASSERT_TRUE(at_server->wait_frames(2, 20s));
  const auto got = at_server->frames();
  EXPECT_EQ(got[1].payload.size(), payload);
  EXPECT_TRUE(intact(7, got[1].payload));
  ASSERT_EQ(server->send(make_frame(8, payload, FrameKind::reply), Clock::now(), WhenFull::queue),
            SendStatus::sent);
  ASSERT_TRUE(at_client->wait_frames(1, 20s));
  const auto back = at_client->frames();
  EXPECT_TRUE(intact(8, back[0].payload));
}

TEST_P(Channels, ClosingTheClientEndsItOnceAndReachesTheServer) {
  connect();
  client->close({StatusCode::cancelled, "closed by the test"}, Clock::now());
  ASSERT_TRUE(at_client->wait_closed());
  EXPECT_EQ(at_client->why().code, StatusCode::cancelled);
  EXPECT_EQ(client->send(make_frame(9, 10), Clock::now() + 1s, WhenFull::wait), SendStatus::closed);
  client->close({StatusCode::cancelled, "again"}, Clock::now());  // idempotent
  if (!zmq()) {
    // ZeroMQ peers leave silently (the connection policy gives up on them); others are seen (a
    // datagram client says bye).
    ASSERT_TRUE(at_server->wait_closed());
    EXPECT_EQ(at_server->why().code, StatusCode::unavailable);
  }
  EXPECT_EQ(at_client->closes(), 1);
}

TEST_P(Channels, APeerThatGoesAwayEndsTheChannel) {
  if (!test_transport(GetParam()).reports_loss) GTEST_SKIP() << "zmq+inproc reports nothing";
  connect();
  server->close({StatusCode::unavailable, "the server's end closed"}, Clock::now());
  listener->close();  // a ZeroMQ client sees its server go only with the server's socket
  ASSERT_TRUE(at_server->wait_closed());
  ASSERT_TRUE(at_client->wait_closed(10s));
  EXPECT_EQ(at_client->why().code, StatusCode::unavailable) << at_client->why().to_string();
  EXPECT_EQ(at_client->closes(), 1);
  EXPECT_EQ(at_server->closes(), 1);
}

TEST_P(Channels, LingeringCloseSendsWhatWasQueuedFirst) {
  connect();
  // (Datagrams: what the client's socket buffer surely holds, as nobody sends them again.)
  const std::size_t size = datagram() ? 4000 : 50000;
  for (std::uint64_t id = 2; id < 12; ++id) {
    ASSERT_EQ(server->send(make_frame(id, size, FrameKind::reply), Clock::now(), WhenFull::queue),
              SendStatus::sent);
  }
  server->close({StatusCode::unavailable, "done"}, Clock::now() + 5s);
  ASSERT_TRUE(at_client->wait_frames(10));
  EXPECT_TRUE(at_server->wait_closed());
  for (const auto& f : at_client->frames()) EXPECT_TRUE(intact(f.id, f.payload)) << f.id;
}

// Frames sent before a close reach a peer that is still busy with an earlier one, and its close
// comes after them (mem:// once dropped them: the final status of a server's shutdown was lost).
TEST_P(Channels, FramesSentBeforeACloseReachABusyPeerFirst) {
  connect();
  at_client->hold();
  std::thread first([&] {
    EXPECT_EQ(server->send(make_frame(2, 100, FrameKind::reply), Clock::now(), WhenFull::queue),
              SendStatus::sent);
  });
  ASSERT_TRUE(at_client->wait_held());
  for (std::uint64_t id = 3; id < 7; ++id) {
    ASSERT_EQ(server->send(make_frame(id, 1000, FrameKind::reply), Clock::now(), WhenFull::queue),
              SendStatus::sent);
  }
  server->close({StatusCode::unavailable, "done"}, Clock::now() + 5s);
  at_client->release();
  first.join();
  ASSERT_TRUE(at_client->wait_frames(5));
  const auto frames = at_client->frames();
  ASSERT_EQ(frames.size(), 5u);
  for (std::size_t i = 0; i < frames.size(); ++i) {
    EXPECT_EQ(frames[i].id, i + 2);
    EXPECT_TRUE(intact(frames[i].id, frames[i].payload)) << frames[i].id;
  }
  if (test_transport(GetParam()).reports_loss && !zmq()) {
    ASSERT_TRUE(at_client->wait_closed());
    EXPECT_EQ(at_client->closes(), 1);
  }
}

TEST_P(Channels, CloseRacingSendsEndsCleanly) {
  connect();
  std::atomic<int> refused{0};
  std::vector<std::thread> senders;
  const auto give_up = Clock::now() + 10s;
  for (int t = 0; t < 3; ++t) {
    senders.emplace_back([&, t] {
      for (std::uint64_t i = 0; Clock::now() < give_up; ++i) {
        const std::uint64_t id = 1000000 * std::uint64_t(t + 1) + i;
        const auto s = client->send(make_frame(id, 100 + i % 5000), Clock::now() + 100ms,
                                    t == 0 ? WhenFull::queue : WhenFull::wait);
        if (s == SendStatus::closed) {
          ++refused;
          return;
        }
      }
    });
  }
  std::this_thread::sleep_for(20ms);  // let frames flow while the close comes
  client->close({StatusCode::cancelled, "closed while sending"}, Clock::now());
  ASSERT_TRUE(at_client->wait_closed());
  for (auto& s : senders) s.join();
  EXPECT_EQ(refused.load(), 3);  // every sender met the close
  EXPECT_EQ(at_client->closes(), 1);
  // Whatever reached the server arrived whole.
  for (const auto& f : at_server->frames()) EXPECT_TRUE(intact(f.id, f.payload)) << f.id;
}

TEST_P(Channels, PausedReadingHoldsThePeerBack) {
  if (silent()) {
    GTEST_SKIP() << "a ROUTER or a datagram socket cannot hold one peer back: what a paused peer "
                    "sends is discarded";
  }
  connect();
  server->pause_reading(true);
  std::uint64_t sent = 0;
  for (std::uint64_t id = 2; id < 200; ++id) {  // 200 MiB would be far more than buffers hold
    if (client->send(make_frame(id, 1 << 20), Clock::now() + 300ms, WhenFull::wait) !=
        SendStatus::sent) {
      break;
    }
    ++sent;
  }
  EXPECT_LT(sent, 198u) << "a paused peer was read";
  const std::size_t before = at_server->frames().size();
  server->pause_reading(false);
  ASSERT_TRUE(at_server->wait_frames(sent + 1, 20s))
      << at_server->frames().size() << " of " << sent + 1;
  EXPECT_GE(at_server->frames().size(), before);
  for (const auto& f : at_server->frames()) EXPECT_TRUE(intact(f.id, f.payload)) << f.id;
}

TEST_P(Channels, ThePeerIsNamed) {
  connect();
  EXPECT_EQ(server->peer().transport, listener->uri().substr(0, listener->uri().find("://")));
  EXPECT_EQ(client->peer().transport, server->peer().transport);
  EXPECT_EQ(server->peer().silent_departure, silent());
  EXPECT_FALSE(server->peer().relayed);
  if (GetParam() == "tcp4" || GetParam() == "tls4") {
    EXPECT_EQ(server->peer().address.rfind("127.0.0.1:", 0), 0u) << server->peer().address;
    EXPECT_EQ(client->peer().address, listener->uri().substr(6));
  }
  if (test_transport(GetParam()).tls) {
    // The server's certificate, verified by the client.
    EXPECT_NE(client->peer().certificate_subject.find("CN=server"), std::string::npos)
        << client->peer().certificate_subject;
  }
}

INSTANTIATE_TEST_SUITE_P(AllTransports, Channels, testing::ValuesIn(brine_test::transports()));

// --- stream channels: short reads and writes, malformed streams, mutual TLS -------------------

// Moves at most `limit` bytes per read and per write: every frame crosses in pieces.
class Choppy final : public brine::transport::ByteStream {
 public:
  Choppy(std::unique_ptr<ByteStream> inner, std::size_t limit)
      : inner_(std::move(inner)), limit_(limit) {}
  int fd() const noexcept override { return inner_->fd(); }
  brine::transport::IoResult read(std::span<std::byte> into) override {
    return inner_->read(into.first(std::min(into.size(), limit_)));
  }
  brine::transport::IoResult write(std::span<const iovec> parts) override {
    std::vector<iovec> cut;
    std::size_t left = limit_;
    for (const iovec& p : parts) {
      if (left == 0) break;
      cut.push_back({p.iov_base, std::min(p.iov_len, left)});
      left -= cut.back().iov_len;
    }
    return inner_->write(cut);
  }
  bool any_thread() const noexcept override { return inner_->any_thread(); }
  void shutdown() noexcept override { inner_->shutdown(); }

 private:
  std::unique_ptr<ByteStream> inner_;
  std::size_t limit_;
};

struct SocketPair {
  SocketPair() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    a = brine::event::Fd(fds[0]);
    b = brine::event::Fd(fds[1]);
  }
  brine::event::Fd a, b;
};

std::shared_ptr<brine::transport::StreamChannel> stream_channel(
    brine::event::EventLoop& loop, std::unique_ptr<brine::transport::ByteStream> stream,
    brine::transport::StreamChannel::Reader reader, std::size_t max_frame_size = 1 << 24) {
  return std::make_shared<brine::transport::StreamChannel>(
      loop, std::move(stream), brine::transport::PeerInfo{"test", "pair"}, max_frame_size, reader);
}

TEST(StreamChannels, ShortReadsAndWritesKeepFramesWhole) {
  using Reader = brine::transport::StreamChannel::Reader;
  for (const std::size_t limit : {1u, 7u, 4096u}) {
    LoopThread loop_a;
    LoopThread loop_b;
    SocketPair pair;
    auto a = stream_channel(
        loop_a.loop,
        std::make_unique<Choppy>(
            std::make_unique<brine::transport::SocketStream>(std::move(pair.a)), limit),
        Reader::loop);
    auto b = stream_channel(
        loop_b.loop,
        std::make_unique<Choppy>(
            std::make_unique<brine::transport::SocketStream>(std::move(pair.b)), limit),
        Reader::caller);
    auto at_a = std::make_shared<Recorder>();
    auto at_b = std::make_shared<Recorder>();
    a->start(at_a);
    b->start(at_b);
    b->expect();
    const std::size_t frames = limit == 1 ? 20 : 200;
    for (std::uint64_t id = 1; id <= frames; ++id) {
      const std::size_t size = (id * 977) % 20000;
      ASSERT_EQ(a->send(make_frame(id, size), Clock::now(), WhenFull::queue), SendStatus::sent);
      ASSERT_EQ(b->send(make_frame(id, size), Clock::now() + 10s, WhenFull::wait),
                SendStatus::sent);
    }
    ASSERT_TRUE(at_a->wait_frames(frames, 30s)) << "limit " << limit;
    ASSERT_TRUE(at_b->wait_frames(frames, 30s)) << "limit " << limit;
    const auto got_a = at_a->frames();
    const auto got_b = at_b->frames();
    for (std::uint64_t id = 1; id <= frames; ++id) {
      const auto& fa = got_a[id - 1];
      const auto& fb = got_b[id - 1];
      EXPECT_EQ(fa.id, id);
      EXPECT_EQ(fb.id, id);
      EXPECT_EQ(fa.payload.size(), (id * 977) % 20000);
      EXPECT_TRUE(intact(id, fa.payload));
      EXPECT_TRUE(intact(id, fb.payload));
    }
    a->close({StatusCode::cancelled, "done"}, Clock::now());
    b->close({StatusCode::cancelled, "done"}, Clock::now());
    EXPECT_TRUE(at_a->wait_closed());
    EXPECT_TRUE(at_b->wait_closed());
    EXPECT_EQ(at_a->violation(), "");
    EXPECT_EQ(at_b->violation(), "");
  }
}

TEST(StreamChannels, AMalformedStreamIsABadFrameAndNothingMoreIsRead) {
  using Reader = brine::transport::StreamChannel::Reader;
  for (const Reader reader : {Reader::loop, Reader::caller}) {
    LoopThread loop;
    SocketPair pair;
    auto ch = stream_channel(loop.loop,
                             std::make_unique<brine::transport::SocketStream>(std::move(pair.a)),
                             reader, 1024);
    auto at = std::make_shared<Recorder>();
    ch->start(at);
    if (reader == Reader::caller) ch->expect();
    const Buffer good = make_frame(1, 10);
    ASSERT_EQ(::send(pair.b.get(), good.data(), good.size(), 0), ssize_t(good.size()));
    ASSERT_TRUE(at->wait_frames(1));
    const Buffer too_big = make_frame(2, 2000);  // over this channel's 1024
    ASSERT_EQ(::send(pair.b.get(), too_big.data(), too_big.size(), 0), ssize_t(too_big.size()));
    ASSERT_TRUE(at->wait_bad());
    const auto bad = at->bad();
    EXPECT_EQ(bad[0].code, StatusCode::resource_exhausted) << bad[0].to_string();
    ASSERT_EQ(::send(pair.b.get(), good.data(), good.size(), 0), ssize_t(good.size()));
    std::this_thread::sleep_for(50ms);  // (a negative: nothing may arrive; bounded wait)
    EXPECT_EQ(at->frames().size(), 1u);
    ch->close({StatusCode::invalid_argument, "bad"}, Clock::now());
    EXPECT_TRUE(at->wait_closed());
  }
}

TEST(StreamChannels, MutualTlsNamesTheClientsCertificate) {
  (void)brine_test::tls_files();
  brine::ServerOptions so;
  so.tls = {brine_test::tls_paths().server_crt, brine_test::tls_paths().server_key,
            brine_test::tls_paths().ca};
  brine::ClientOptions co;
  co.tls = {brine_test::tls_paths().ca, brine_test::tls_paths().client_crt,
            brine_test::tls_paths().client_key, ""};
  LoopThread server_loop;
  LoopThread client_loop;
  Acceptor acceptor;
  brine::transport::ServerSide side{
      so, {&server_loop.loop}, [] { return std::vector<std::string>{}; }};
  auto listener =
      brine::transport::scheme_of("tls://127.0.0.1:0").listen("tls://127.0.0.1:0", side);
  listener->start(acceptor);
  auto dialer = brine::transport::scheme_of(listener->uri())
                    .dialer(listener->uri(), brine::transport::ClientSide{co, client_loop.loop});
  std::string error;
  auto client = dialer->dial(Clock::now() + 10s, error);
  ASSERT_TRUE(client) << error;
  auto at_client = std::make_shared<Recorder>();
  client->start(at_client);
  ASSERT_EQ(client->send(make_frame(1, 3), Clock::now() + 5s, WhenFull::wait), SendStatus::sent);
  auto [server, at_server] = acceptor.wait_first();
  ASSERT_TRUE(server);
  EXPECT_NE(server->peer().certificate_subject.find("CN=client"), std::string::npos)
      << server->peer().certificate_subject;
  EXPECT_EQ(server->peer().certificate_names, std::vector<std::string>{"brine-test-client"});
  client->close({StatusCode::cancelled, "done"}, Clock::now());
  server->close({StatusCode::cancelled, "done"}, Clock::now());
  listener->close();
  EXPECT_TRUE(at_client->wait_closed());
}

}  // namespace
