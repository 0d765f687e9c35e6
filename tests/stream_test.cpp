// Streams and asynchronous handlers end to end, in one process: every body runs over every
// transport that carries streams and every codec.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <mutex>
#include <thread>
#include <vector>

#include <brine/testing.hpp>

#include "eventually.hpp"
#include "families.hpp"
#include "memory.hpp"
#include "params.hpp"
#include "process.hpp"
#include "stream/stream_core.hpp"
#include "test_server.hpp"
#include "wire/control.hpp"

// Remote objects whose methods stream, in both type families (plain types: cereal and json;
// protobuf messages: protobuf).
namespace stream_objects {
// (A macro: BRINE_INTERFACE takes the methods an interface declares itself, not inherited ones.)
#define STREAM_BOOK_METHODS(F)                                                       \
  /* spec.a items, "line 0", "line 1", ... */                                        \
  virtual void tail(F::Add spec, brine::Writer<F::Blob>& out) = 0;                   \
  /* How many items, plus spec.a. */                                                 \
  virtual brine::Task<F::Number> store(F::Add spec, brine::Reader<F::Blob>& in) = 0; \
  /* Every item back, then one more with the count. */                               \
  virtual brine::Task<void> echo(F::Add spec, brine::Reader<F::Blob>& in,            \
                                 brine::Writer<F::Blob>& out) = 0;                   \
  /* A coroutine that is not a stream: spec.a + spec.b. */                           \
  virtual brine::Task<F::Number> later(F::Add spec) = 0;
struct PlainBook {
  virtual ~PlainBook() = default;
  STREAM_BOOK_METHODS(brine_test::CerealFamily)
};
BRINE_INTERFACE(PlainBook, tail, store, echo, later);
struct PbBook {
  virtual ~PbBook() = default;
  STREAM_BOOK_METHODS(brine_test::ProtobufFamily)
};
BRINE_INTERFACE(PbBook, tail, store, echo, later);
#undef STREAM_BOOK_METHODS

template <class I, class F>
struct BookImpl final : I {
  using Add = typename F::Add;
  using Blob = typename F::Blob;
  using Number = typename F::Number;
  void tail(Add spec, brine::Writer<Blob>& out) override {
    for (int i = 0; i < int(F::a(spec)); ++i) {
      if (!out.write(F::blob("line " + std::to_string(i)))) return;
    }
  }
  brine::Task<Number> store(Add spec, brine::Reader<Blob>& in) override {
    double n = F::a(spec);
    while (co_await in.async_read()) ++n;
    co_return F::number(n);
  }
  brine::Task<void> echo(Add, brine::Reader<Blob>& in, brine::Writer<Blob>& out) override {
    int n = 0;
    while (auto item = co_await in.async_read()) {
      ++n;
      if (!co_await out.async_write(*item)) co_return;
    }
    co_await out.async_write(F::blob("count " + std::to_string(n)));
  }
  brine::Task<Number> later(Add spec) override { co_return F::number(F::a(spec) + F::b(spec)); }
};
}  // namespace stream_objects

namespace {

using brine::CallOptions;
using brine::Client;
using brine::StatusCode;
using namespace brine_test;
using namespace std::chrono_literals;

// What the stream handlers record, for the tests to look at.
struct Probe {
  std::atomic<int> written{0};   // items the "slow_sink" producers have written
  std::atomic<int> full_at{-1};  // written when a "produce" first found the window full
  std::atomic<int> ended{0};     // "forever" handlers that saw their stream end
  std::atomic<int> started{0};   // "forever" handlers that have started
  std::mutex mu;
  // The waiting callers' requests (their a) and their Responders.
  std::vector<std::pair<double, brine::Responder<calc::Number>>> cereal_waiters;
  std::vector<std::pair<double, brine::Responder<calc::pb::Number>>> pb_waiters;
  template <class N>
  auto& waiters() {
    if constexpr (std::is_same_v<N, calc::Number>) {
      return cereal_waiters;
    } else {
      return pb_waiters;
    }
  }
};

// The stream methods, for one type family (F::Add requests, F::Number items).
template <class F>
void add_stream_methods(brine::Server& s, const std::shared_ptr<Probe>& probe,
                        brine::HandlerOptions o) {
  using Number = typename F::Number;
  using Add = typename F::Add;
  // count: items 0 .. a-1 (a plain function on a worker, and a coroutine).
  s.handle(
      "count",
      [](const Add& r, brine::Writer<Number>& out) {
        for (int i = 0; i < int(F::a(r)); ++i) {
          if (!out.write(F::number(i))) return;
        }
      },
      o);
  s.handle(
      "co_count",
      [](const Add& r, brine::Writer<Number>& out) -> brine::Task<void> {
        for (int i = 0; i < int(F::a(r)); ++i) {
          if (!co_await out.async_write(F::number(i))) co_return;
        }
      },
      o);
  // sum: the request's a plus every item.
  s.handle(
      "sum",
      [](const Add& r, brine::Reader<Number>& in) {
        double total = F::a(r);
        while (auto n = in.read()) total += F::value(*n);
        return F::number(total);
      },
      o);
  s.handle(
      "co_sum",
      [](const Add& r, brine::Reader<Number>& in) -> brine::Task<Number> {
        double total = F::a(r);
        while (auto n = co_await in.async_read()) total += F::value(*n);
        co_return F::number(total);
      },
      o);
  // twice: every item back doubled, then the count of items after the client's half-close.
  s.handle(
      "twice",
      [](const Add&, brine::Reader<Number>& in, brine::Writer<Number>& out) {
        int n = 0;
        while (auto x = in.read()) {
          ++n;
          if (!out.write(F::number(2 * F::value(*x)))) return;
        }
        out.write(F::number(-n));
      },
      o);
  s.handle(
      "co_twice",
      [](const Add&, brine::Reader<Number>& in, brine::Writer<Number>& out) -> brine::Task<void> {
        int n = 0;
        while (auto x = co_await in.async_read()) {
          ++n;
          if (!co_await out.async_write(F::number(2 * F::value(*x)))) co_return;
        }
        co_await out.async_write(F::number(-n));
      },
      o);
  // fail_after: a items, then an error.
  s.handle(
      "fail_after",
      [](const Add& r, brine::Writer<Number>& out) {
        for (int i = 0; i < int(F::a(r)); ++i) out.write(F::number(i));
        throw brine::RpcError(StatusCode::invalid_argument, "failed after the items");
      },
      o);
  // forever: writes until the stream ends (deadline, cancel, connection lost).
  s.handle(
      "forever",
      [probe](const Add&, brine::Writer<Number>& out) -> brine::Task<void> {
        probe->started.fetch_add(1);
        for (int i = 0;; ++i) {
          if (!co_await out.async_write(F::number(i))) break;
        }
        probe->ended.fetch_add(1);
      },
      o);
  // slow_sink: b items of a bytes' worth each (as the number's digits do not grow, a Blob
  // would; numbers keep the families simple: the count is what is bounded).
  s.handle(
      "produce",
      [probe](const Add& r, brine::Writer<Number>& out) {
        for (int i = 0; i < int(F::b(r)); ++i) {
          if (!out.try_write(F::number(i))) {
            if (out.finished()) return;
            int none = -1;
            probe->full_at.compare_exchange_strong(none, probe->written.load());
            if (!out.write(F::number(i))) return;
          }
          probe->written.fetch_add(1);
        }
      },
      o);
  // blobs: a items of b bytes each.
  s.handle(
      "blobs",
      [](const Add& r, brine::Writer<typename F::Blob>& out) {
        const auto item = F::blob(std::string(std::size_t(F::b(r)), 'x'));
        for (int i = 0; i < int(F::a(r)); ++i) {
          if (!out.write(item)) return;
        }
      },
      o);
  // wait_event: answered later, when the test releases the waiters.
  s.handle(
      "wait_event",
      [probe](const Add& req, brine::Responder<Number> r) {
        std::lock_guard lk(probe->mu);
        probe->template waiters<Number>().emplace_back(F::a(req), std::move(r));
      },
      o);
  // drop: a Responder dropped without an answer.
  s.handle(
      "drop", [](const Add&, brine::Responder<Number>) {}, o);
  // co_add: a coroutine handler.
  s.handle(
      "co_add", [](Add r) -> brine::Task<Number> { co_return F::number(F::a(r) + F::b(r)); }, o);
}

struct StreamServer {
  explicit StreamServer(brine::ServerOptions options = {}) : server(std::move(options)) {
    add_stream_methods<CerealFamily>(server, probe, {});
    add_stream_methods<ProtobufFamily>(server, probe, {.codecs = {brine::CodecId::protobuf}});
  }
  std::string listen(const std::string& transport) {
    const std::string uri = server.listen(listen_uri(transport));
    server.start();
    return uri;
  }
  std::shared_ptr<Probe> probe = std::make_shared<Probe>();
  brine::Server server;
};

class Streams : public testing::TestWithParam<Param> {
 protected:
  template <class Body>
  void run(Body&& body) {
    with_family(GetParam().codec, std::forward<Body>(body));
  }
  brine::ClientOptions client_options() const {
    brine::ClientOptions o;
    o.codec = GetParam().codec;
    o.timeout = 20s;
    o.tls.ca_file = tls_paths().ca;
    return o;
  }
  static brine::ServerOptions server_options() {
    (void)tls_files();  // made on first use
    brine::ServerOptions o;
    o.tls.certificate_file = tls_paths().server_crt;
    o.tls.private_key_file = tls_paths().server_key;
    return o;
  }
};

template <class F>
typename F::Add ask(double a, double b = 0) {
  return F::add(a, b);
}

TEST_P(Streams, ServerStreamDeliversEveryItemInOrder) {
  run([&]<class F>() {
    StreamServer s(server_options());
    Client c(s.listen(GetParam().transport), client_options());
    for (const char* method : {"count", "co_count"}) {
      auto stream = c.template stream<typename F::Number>(method, ask<F>(5000));
      int expect = 0;
      while (auto n = stream.read()) {
        ASSERT_EQ(F::value(*n), expect) << method;
        ++expect;
      }
      EXPECT_EQ(expect, 5000) << method;
      EXPECT_TRUE(stream.status().ok()) << stream.status().message;
      EXPECT_TRUE(stream.finished());
    }
  });
}

TEST_P(Streams, ClientStreamSumsItsItems) {
  run([&]<class F>() {
    StreamServer s(server_options());
    Client c(s.listen(GetParam().transport), client_options());
    for (const char* method : {"sum", "co_sum"}) {
      auto up = c.template upload<typename F::Number, typename F::Number>(method, ask<F>(1000));
      for (int i = 1; i <= 3000; ++i) ASSERT_TRUE(up.write(F::number(i))) << up.status().message;
      EXPECT_EQ(F::value(up.finish()), 1000 + 3000.0 * 3001 / 2) << method;
    }
  });
}

TEST_P(Streams, BidiStreamAnswersItemsAndSeesTheHalfClose) {
  run([&]<class F>() {
    StreamServer s(server_options());
    Client c(s.listen(GetParam().transport), client_options());
    for (const char* method : {"twice", "co_twice"}) {
      auto chat = c.template bidi<typename F::Number, typename F::Number>(method, ask<F>(0));
      // In lock step: each answer before the next item.
      for (int i = 0; i < 200; ++i) {
        ASSERT_TRUE(chat.write(F::number(i)));
        auto back = chat.read();
        ASSERT_TRUE(back) << chat.status().message;
        EXPECT_EQ(F::value(*back), 2 * i);
      }
      chat.close_write();
      auto last = chat.read();
      ASSERT_TRUE(last);
      EXPECT_EQ(F::value(*last), -200);  // the server saw the end of the items
      EXPECT_FALSE(chat.read());
      EXPECT_TRUE(chat.finish().ok());
    }
  });
}

TEST_P(Streams, BidiWritesAndReadsFromTwoThreads) {
  run([&]<class F>() {
    StreamServer s(server_options());
    Client c(s.listen(GetParam().transport), client_options());
    auto chat = c.template bidi<typename F::Number, typename F::Number>("twice", ask<F>(0));
    constexpr int kItems = 20000;  // far more than one window of items each way
    std::thread writer([&] {
      for (int i = 0; i < kItems; ++i) {
        if (!chat.write(F::number(i))) return;
      }
      chat.close_write();
    });
    int got = 0;
    while (auto x = chat.read()) {
      if (F::value(*x) < 0) {
        EXPECT_EQ(F::value(*x), -kItems);
        continue;
      }
      ASSERT_EQ(F::value(*x), 2 * got);
      ++got;
    }
    writer.join();
    EXPECT_EQ(got, kItems);
    EXPECT_TRUE(chat.status().ok()) << chat.status().message;
  });
}

TEST_P(Streams, AnErrorInTheMiddleEndsTheStreamAfterItsItems) {
  run([&]<class F>() {
    StreamServer s(server_options());
    Client c(s.listen(GetParam().transport), client_options());
    auto stream = c.template stream<typename F::Number>("fail_after", ask<F>(3));
    int got = 0;
    while (stream.read()) ++got;
    EXPECT_EQ(got, 3);
    EXPECT_EQ(stream.status().code, StatusCode::invalid_argument);
    EXPECT_EQ(stream.status().message, "failed after the items");
  });
}

TEST_P(Streams, TheDeadlineEndsAStreamThatWouldRunForever) {
  run([&]<class F>() {
    StreamServer s(server_options());
    Client c(s.listen(GetParam().transport), client_options());
    auto stream = c.template stream<typename F::Number>("forever", ask<F>(0), {.timeout = 300ms});
    const auto start = std::chrono::steady_clock::now();
    int got = 0;
    while (stream.read()) ++got;
    EXPECT_GT(got, 0);
    EXPECT_EQ(stream.status().code, StatusCode::deadline_exceeded) << stream.status().message;
    EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
    // The server's handler saw its writes end, and the call is over there too.
    EXPECT_TRUE(eventually([&] { return s.probe->ended.load() == 1; }));
    EXPECT_TRUE(eventually([&] { return s.server.stats().calls_in_flight == 0; }));
  });
}

TEST_P(Streams, CancelMidStreamFreesBothSides) {
  run([&]<class F>() {
    StreamServer s(server_options());
    Client c(s.listen(GetParam().transport), client_options());
    {
      auto stream = c.template stream<typename F::Number>("forever", ask<F>(0));
      for (int i = 0; i < 100; ++i) ASSERT_TRUE(stream.read());
      stream.cancel();
      while (stream.read()) {
      }
      EXPECT_EQ(stream.status().code, StatusCode::cancelled);
    }
    {
      // Dropping a running stream cancels it too.
      auto stream = c.template stream<typename F::Number>("forever", ask<F>(0));
      ASSERT_TRUE(stream.read());
    }
    EXPECT_TRUE(eventually([&] { return s.probe->ended.load() == 2; }));
    EXPECT_TRUE(eventually([&] { return s.server.stats().calls_in_flight == 0; }));
    EXPECT_EQ(c.stats().calls_pending, 0u);
    // The connection serves on.
    auto again = c.template stream<typename F::Number>("count", ask<F>(3));
    int got = 0;
    while (again.read()) ++got;
    EXPECT_EQ(got, 3);
  });
}

TEST_P(Streams, ASlowReaderHoldsTheWriterBackByTheWindow) {
  run([&]<class F>() {
    StreamServer s(server_options());
    brine::ClientOptions o = client_options();
    o.stream_window = 65536;
    Client c(s.listen(GetParam().transport), o);
    auto stream = c.template stream<typename F::Number>("produce", ask<F>(0, 1e6));
    ASSERT_TRUE(stream.read());
    // Without reading, the producer stops where the window is full: 64 KiB of ~30-byte item
    // frames is about 2,000 items, whatever a million it has to send. (Each item's frame counts
    // its 16-byte header, so fewer than 65536 / 16 items fit at most.) The producer says when
    // try_write first found the window full (encoding is slow under a sanitizer, and a busy
    // machine can pause the producer, so "no progress for a while" would not prove it).
    EXPECT_TRUE(eventually([&] { return s.probe->full_at.load() >= 0; }));
    const int held = s.probe->full_at.load();
    EXPECT_GT(held, 100);
    EXPECT_LE(held, 65536 / 16 + 1);
    // It waits, it does not buffer: with nothing read but the first item (whose credit may
    // reach the producer after it found the window full), it writes at most one more.
    std::this_thread::sleep_for(300ms);
    EXPECT_LE(s.probe->written.load(), held + 1);
    // Reading releases it, window by window.
    for (int i = 0; i < 3 * held; ++i) ASSERT_TRUE(stream.read());
    EXPECT_TRUE(eventually([&] { return s.probe->written.load() > 2 * held; }));
  });
}

TEST_P(Streams, ManyStreamsAtOnceBesideCalls) {
  run([&]<class F>() {
    StreamServer s(server_options());
    Client c(s.listen(GetParam().transport), client_options());
    std::vector<brine::Stream<typename F::Number>> streams;
    for (int i = 0; i < 200; ++i) {
      streams.push_back(c.template stream<typename F::Number>("co_count", ask<F>(50)));
    }
    // Ordinary calls go on meanwhile.
    EXPECT_EQ(F::value(c.template call<typename F::Number>("co_add", ask<F>(2, 3))), 5);
    for (auto& st : streams) {
      int got = 0;
      while (auto n = st.read()) ASSERT_EQ(F::value(*n), got++);
      EXPECT_EQ(got, 50);
      EXPECT_TRUE(st.status().ok()) << st.status().message;
    }
  });
}

TEST_P(Streams, AsyncHandlersAnswerLaterWithoutHoldingWorkers) {
  run([&]<class F>() {
    brine::ServerOptions so = server_options();
    so.workers = 4;
    StreamServer s(so);
    Client c(s.listen(GetParam().transport), client_options());
    using Number = typename F::Number;
    // 1,000 callers wait for an event on a server with 4 workers.
    std::vector<std::future<Number>> waiting;
    for (int i = 0; i < 1000; ++i) {
      waiting.push_back(c.template call_async<Number>("wait_event", ask<F>(i)));
    }
    EXPECT_TRUE(eventually([&] {
      std::lock_guard lk(s.probe->mu);
      return s.probe->template waiters<Number>().size() == 1000;
    }));
    // The workers are free: other calls are answered meanwhile.
    EXPECT_EQ(F::value(c.template call<Number>("co_add", ask<F>(1, 2))), 3);
    {
      std::lock_guard lk(s.probe->mu);
      for (auto& [a, r] : s.probe->template waiters<Number>()) EXPECT_TRUE(r.reply(F::number(a)));
      s.probe->template waiters<Number>().clear();
    }
    for (int i = 0; i < 1000; ++i) EXPECT_EQ(F::value(waiting[i].get()), i);
  });
}

TEST_P(Streams, ADroppedResponderStillEndsItsCall) {
  run([&]<class F>() {
    StreamServer s(server_options());
    Client c(s.listen(GetParam().transport), client_options());
    const auto r = c.template try_call<typename F::Number>("drop", ask<F>(1));
    EXPECT_EQ(r.code(), StatusCode::internal);
    EXPECT_NE(r.status().message.find("Responder"), std::string::npos) << r.status().message;
  });
}

TEST_P(Streams, CallsAndStreamReadsCanBeAwaited) {
  run([&]<class F>() {
    StreamServer s(server_options());
    Client c(s.listen(GetParam().transport), client_options());
    using Number = typename F::Number;
    auto body = [&]() -> brine::Task<double> {
      brine::Result<Number> sum = co_await c.template co_call<Number>("co_add", ask<F>(20, 22));
      auto stream = c.template stream<Number>("count", ask<F>(10));
      double total = F::value(std::move(sum).value_or_throw());
      while (auto n = co_await stream.async_read()) total += F::value(*n);
      co_return total;
    };
    EXPECT_EQ(brine::sync_wait(body()), 42 + 45);
  });
}

TEST_P(Streams, AMismatchedStreamTypeFailsWithTheContract) {
  run([&]<class F>() {
    StreamServer s(server_options());
    Client c(s.listen(GetParam().transport), client_options());
    // Items of another type than the server's.
    auto wrong = c.template stream<typename F::Blob>("count", ask<F>(3));
    EXPECT_FALSE(wrong.read());
    EXPECT_EQ(wrong.status().code, StatusCode::failed_precondition) << wrong.status().message;
    // A stream method called as a call, and a call opened as a stream.
    const auto r = c.template try_call<typename F::Number>("count", ask<F>(3));
    EXPECT_EQ(r.code(), StatusCode::failed_precondition);
    EXPECT_NE(r.status().message.find("stream"), std::string::npos) << r.status().message;
  });
}

INSTANTIATE_TEST_SUITE_P(StreamTransportsAndCodecs, Streams,
                         testing::ValuesIn(grid(transports([](const TestTransport& tr) {
                           return !tr.datagram;
                         }))),
                         ParamName());

// Methods of remote objects stream too: the proxy returns the client's end.
TEST_P(Streams, RemoteObjectMethodsStream) {
  run([&]<class F>() {
    using I = std::conditional_t<std::is_same_v<F, ProtobufFamily>, stream_objects::PbBook,
                                 stream_objects::PlainBook>;
    brine::ServerOptions so = server_options();
    so.workers = 2;
    brine::Server server(so);
    server.expose<I>("book", std::make_shared<stream_objects::BookImpl<I, F>>());
    const std::string uri = server.listen(listen_uri(GetParam().transport));
    server.start();
    Client c(uri, client_options());
    auto book = c.template remote<I>("book");
    brine::Stream<typename F::Blob> lines = book.tail(F::add(500, 0));
    int n = 0;
    while (auto line = lines.read()) ASSERT_EQ(F::data(*line), "line " + std::to_string(n++));
    EXPECT_EQ(n, 500);
    EXPECT_TRUE(lines.status().ok()) << lines.status().message;

    brine::Upload<typename F::Blob, typename F::Number> up = book.store(F::add(10, 0));
    for (int i = 0; i < 300; ++i) ASSERT_TRUE(up.write(F::blob("x")));
    EXPECT_EQ(F::value(up.finish()), 310);

    brine::Bidi<typename F::Blob, typename F::Blob> echo = book.echo(F::add(0, 0));
    for (int i = 0; i < 50; ++i) {
      ASSERT_TRUE(echo.write(F::blob(std::to_string(i))));
      auto back = echo.read();
      ASSERT_TRUE(back);
      EXPECT_EQ(F::data(*back), std::to_string(i));
    }
    echo.close_write();
    auto count = echo.read();
    ASSERT_TRUE(count);
    EXPECT_EQ(F::data(*count), "count 50");
    EXPECT_TRUE(echo.finish().ok());

    EXPECT_EQ(F::value(book.later(F::add(2, 40))), 42);
  });
}

// The flow-control rule itself (docs/wire-format.md, "Streams"), on one side's state.
class RecordingFlow final : public brine::detail::FlowStream {
 public:
  explicit RecordingFlow(std::uint32_t window)
      : FlowStream(7, brine::CodecId::cereal, limits_, 64u << 20, window,
                   std::chrono::steady_clock::now() + 10s) {}
  std::vector<brine::detail::FrameKind> kinds;
  std::vector<std::uint32_t> credits;

 private:
  bool send_frame(brine::Buffer&& frame) override {
    kinds.push_back(brine::detail::frame_kind(frame.bytes()));
    if (kinds.back() == brine::detail::FrameKind::credit) {
      credits.push_back(brine::detail::load_be32(frame.data() + brine::detail::kFixedSize));
    }
    return true;
  }
  void resume(std::coroutine_handle<> h) override { h.resume(); }
  static inline const brine::DecodeLimits limits_{};
};

brine::Buffer item_frame(brine::detail::StreamCore& core, std::size_t payload) {
  brine::Buffer frame;
  core.begin_item(frame);
  frame.append(std::string(payload, 'x').data(), payload);
  return frame;
}

TEST(FlowRule, OneItemMayOvershootTheWindowAndSmallCreditsStillCount) {
  RecordingFlow flow(65536);
  brine::Buffer big = item_frame(flow, 1 << 20);  // far beyond the 64 KiB window
  EXPECT_EQ(flow.write(big, false), brine::detail::StreamCore::Io::done);
  brine::Buffer next = item_frame(flow, 10);
  EXPECT_EQ(flow.write(next, false), brine::detail::StreamCore::Io::would_block);
  // A credit smaller than the overshoot is a credit, not a protocol error (the client's first
  // grant can arrive after the server's first large item): still no room...
  EXPECT_TRUE(flow.deliver_credit(196608));
  EXPECT_EQ(flow.write(next, false), brine::detail::StreamCore::Io::would_block);
  // ...until the credits pass what was sent.
  EXPECT_TRUE(flow.deliver_credit(1 << 20));
  EXPECT_EQ(flow.write(next, false), brine::detail::StreamCore::Io::done);
  // A window more than 2^31 bytes beyond what was sent is refused.
  EXPECT_FALSE(flow.deliver_credit(0x80000000u));
}

// An item frame as the connection hands it over: a header, no method, `payload`.
brine::detail::FrameView item_view(const std::vector<std::byte>& payload) {
  brine::detail::FrameView f{};
  f.kind = brine::detail::FrameKind::item;
  f.payload = payload;
  f.size = brine::detail::kFixedSize + payload.size();
  return f;
}

TEST(FlowRule, AReceiverCreditsWhatItsReaderTookAndRefusesItemsBeyondTheWindow) {
  RecordingFlow flow(65536);
  // 64 KiB of item frames (16 + 1008 bytes each) fill the window exactly...
  const std::vector<std::byte> kilo(1008);
  for (int i = 0; i < 64; ++i) ASSERT_TRUE(flow.deliver_item(item_view(kilo), 0));
  // ...and one more is beyond it: a protocol error.
  const std::vector<std::byte> one(10);
  EXPECT_FALSE(flow.deliver_item(item_view(one), 0));
  EXPECT_TRUE(flow.credits.empty());
  // Reading half the window grants it back, in one credit.
  brine::Buffer payload;
  for (int i = 0; i < 31; ++i)
    ASSERT_EQ(flow.read(payload, false), brine::detail::StreamCore::Io::done);
  EXPECT_TRUE(flow.credits.empty());
  ASSERT_EQ(flow.read(payload, false), brine::detail::StreamCore::Io::done);
  ASSERT_EQ(flow.credits.size(), 1u);
  EXPECT_EQ(flow.credits[0], 32u * 1024);
  EXPECT_TRUE(flow.deliver_item(item_view(one), 0));  // room again
}

// 10,000 streams at once on one connection, each a coroutine on the server (no thread each).
TEST(StreamsAtScale, TenThousandConcurrentStreamsOnOneConnection) {
  brine::ServerOptions so;
  so.max_inflight_per_connection = 20000;
  StreamServer s(so);
  brine::ClientOptions o;
  o.codec = "cereal";
  o.timeout = 60s;
  o.stream_window = 65536;  // no extra credit frame per stream
  Client c(s.listen("tcp4"), o);
  // Two-way streams that wait for the client's items: all 10,000 stay open on the server at
  // once, each a suspended coroutine.
  std::vector<brine::Bidi<calc::Number, calc::Number>> streams;
  streams.reserve(10000);
  for (int i = 0; i < 10000; ++i) {
    streams.push_back(c.bidi<calc::Number, calc::Number>("co_twice", calc::AddRequest{0, 0}));
  }
  EXPECT_TRUE(eventually([&] { return s.server.stats().calls_in_flight == 10000; }, 30s))
      << s.server.stats().calls_in_flight;
  for (int i = 0; i < 10000; ++i) ASSERT_TRUE(streams[std::size_t(i)].write(calc::Number{1.0 * i}));
  for (int i = 0; i < 10000; ++i) {
    auto& st = streams[std::size_t(i)];
    auto back = st.read();
    ASSERT_TRUE(back) << st.status().message;
    ASSERT_EQ(back->value, 2.0 * i);
    st.close_write();
  }
  for (auto& st : streams) {
    auto count = st.read();
    ASSERT_TRUE(count);
    EXPECT_EQ(count->value, -1);
    EXPECT_TRUE(st.finish().ok());
  }
  EXPECT_TRUE(eventually([&] { return s.server.stats().calls_in_flight == 0; }));
}

// A server process killed mid-stream: every stream ends with a status, none hangs.
TEST(StreamsCrossProcess, AServerKilledMidStreamEndsEveryStream) {
  auto probe = std::make_shared<Probe>();
  auto server = brine::testing::ServerProcess::fork(
      {"tcp://127.0.0.1:0"},
      [probe](brine::Server& s) { add_stream_methods<CerealFamily>(s, probe, {}); });
  brine::ClientOptions o;
  o.codec = "cereal";
  o.timeout = 30s;
  Client c(server.endpoint(), o);
  std::vector<brine::Stream<calc::Number>> streams;
  for (int i = 0; i < 50; ++i) {
    streams.push_back(c.stream<calc::Number>("forever", calc::AddRequest{0, 0}));
  }
  auto upload = c.upload<calc::Number, calc::Number>("sum", calc::AddRequest{0, 0});
  for (auto& st : streams) ASSERT_TRUE(st.read());
  ASSERT_TRUE(upload.write(calc::Number{1}));
  server.kill();
  const auto start = std::chrono::steady_clock::now();
  for (auto& st : streams) {
    while (st.read()) {
    }
    EXPECT_EQ(st.status().code, StatusCode::unavailable) << st.status().message;
  }
  // A writer learns it too: its writes fail, and finish() says why.
  while (upload.write(calc::Number{1})) {
  }
  EXPECT_EQ(upload.try_finish().code(), StatusCode::unavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

// Flow control bounds both sides' memory: a consumer that reads one item a second while the
// producer has a gigabyte to send, then the whole gigabyte. The bound stated: each side's RSS
// grows by less than 24 MiB (a window of 256 KiB plus one 1 MiB frame in flight per side,
// socket buffers, the item being encoded or decoded, and the allocator's slack), against the
// 1 GiB that a stream without flow control would queue.
TEST(StreamsFlowControl, AGigabyteStreamKeepsBothSidesMemoryBounded) {
  if (brine_test::kSanitized) GTEST_SKIP() << "resident sizes mean nothing under a sanitizer";
  auto probe = std::make_shared<Probe>();
  auto server = brine::testing::ServerProcess::fork(
      {"tcp://127.0.0.1:0"},
      [probe](brine::Server& s) { add_stream_methods<CerealFamily>(s, probe, {}); });
  brine::ClientOptions o;
  o.codec = "cereal";
  o.timeout = 120s;
  Client c(server.endpoint(), o);
  constexpr std::size_t kItem = 1 << 20;
  constexpr int kItems = 1024;  // 1 GiB
  const std::size_t client_before = brine_test::rss_kib();
  const std::size_t server_before = brine_test::rss_kib(server.pid());
  auto stream = c.stream<CerealBlob>("blobs", calc::AddRequest{kItems, double(kItem)});
  std::size_t bytes = 0;
  std::size_t client_peak = 0;
  std::size_t server_peak = 0;
  const auto look = [&] {
    client_peak = std::max(client_peak, brine_test::rss_kib());
    server_peak = std::max(server_peak, brine_test::rss_kib(server.pid()));
  };
  // The slow consumer: one item a second (pacing the reader, not waiting for an event).
  for (int i = 0; i < 3; ++i) {
    auto item = stream.read();
    ASSERT_TRUE(item) << stream.status().message;
    bytes += item->data.size();
    std::this_thread::sleep_for(1s);
    look();
  }
  // Then all of it, as fast as it comes.
  int n = 3;
  while (auto item = stream.read()) {
    bytes += item->data.size();
    if (++n % 64 == 0) look();
  }
  ASSERT_TRUE(stream.status().ok()) << stream.status().message;
  EXPECT_EQ(bytes, std::size_t(kItems) * kItem);
  EXPECT_LT(client_peak - std::min(client_peak, client_before), 24u * 1024) << "KiB";
  EXPECT_LT(server_peak - std::min(server_peak, server_before), 24u * 1024) << "KiB";
  std::printf("1 GiB stream: client RSS %zu -> peak %zu KiB, server %zu -> peak %zu KiB\n",
              client_before, client_peak, server_before, server_peak);
}

// Faults on the link, through the test kit's proxy (stream transports it relays; one codec:
// the faults act on bytes, whatever the codec).
class StreamFaults : public testing::TestWithParam<std::string> {
 protected:
  static brine::ServerOptions server_options() {
    (void)tls_files();
    brine::ServerOptions o;
    o.tls.certificate_file = tls_paths().server_crt;
    o.tls.private_key_file = tls_paths().server_key;
    return o;
  }
  static brine::ClientOptions client_options() {
    brine::ClientOptions o;
    o.codec = "cereal";
    o.timeout = 30s;
    o.heartbeat_interval = 200ms;
    o.heartbeat_timeout = 800ms;
    o.tls.ca_file = tls_paths().ca;
    return o;
  }
};

TEST_P(StreamFaults, ASlowLinkDeliversEveryItemInOrder) {
  StreamServer s(server_options());
  brine::testing::FaultProxy proxy(s.listen(GetParam()),
                                   {.latency = 2ms, .bytes_per_second = 400 * 1024});
  Client c(proxy.endpoint(), client_options());
  auto stream = c.stream<calc::Number>("co_count", calc::AddRequest{4000, 0});
  int expect = 0;
  while (auto n = stream.read()) ASSERT_EQ(n->value, expect++);
  EXPECT_EQ(expect, 4000);
  EXPECT_TRUE(stream.status().ok()) << stream.status().message;
}

TEST_P(StreamFaults, ACutMidStreamEndsItOnBothSides) {
  StreamServer s(server_options());
  brine::testing::FaultProxy proxy(s.listen(GetParam()));
  Client c(proxy.endpoint(), client_options());
  auto stream = c.stream<calc::Number>("forever", calc::AddRequest{0, 0});
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(stream.read());
  proxy.reset();
  while (stream.read()) {
  }
  EXPECT_EQ(stream.status().code, StatusCode::unavailable) << stream.status().message;
  EXPECT_TRUE(eventually([&] { return s.probe->ended.load() == 1; }));
  EXPECT_TRUE(eventually([&] { return s.server.stats().calls_in_flight == 0; }));
}

TEST_P(StreamFaults, AHalfOpenLinkEndsTheStreamWithinTheHeartbeatTimeout) {
  StreamServer s(server_options());
  brine::testing::FaultProxy proxy(s.listen(GetParam()));
  Client c(proxy.endpoint(), client_options());
  // The server hears nothing either, and a brine server does not close a connection with a
  // call running for silence alone: the stream's deadline ends it there.
  auto stream = c.stream<calc::Number>("forever", calc::AddRequest{0, 0}, {.timeout = 2s});
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(stream.read());
  proxy.set({.black_hole = true});
  const auto start = std::chrono::steady_clock::now();
  while (stream.read()) {
  }
  EXPECT_EQ(stream.status().code, StatusCode::unavailable) << stream.status().message;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_TRUE(eventually([&] { return s.probe->ended.load() == 1; }));
}

INSTANTIATE_TEST_SUITE_P(StreamTransports, StreamFaults, testing::Values("tcp4", "unix", "tls4"));

// The example: files_client puts a file in chunks and gets it back, checksums matching, with
// its progress lines.
TEST(FilesExample, PutsAndGetsAFileInChunksWithProgress) {
  const std::string dir = ::testing::TempDir();
  const std::string in = dir + "brine-files-in-" + std::to_string(::getpid());
  const std::string out = dir + "brine-files-out-" + std::to_string(::getpid());
  {
    std::ofstream f(in, std::ios::binary);
    std::uint64_t x = 88172645463325252ull;
    for (int i = 0; i < (3 << 20) / 8; ++i) {  // 3 MiB of xorshift bytes
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      f.write(reinterpret_cast<const char*>(&x), 8);
    }
  }
  brine::testing::ProcessOptions options;
  options.endpoints = 1;  // files_server prints "listening <uri>"
  auto server = brine::testing::ServerProcess::spawn(
      {BRINE_FILES_SERVER, "--listen", "tcp://127.0.0.1:0"}, options);
  const auto run = [&](std::vector<std::string> argv) {
    argv.insert(argv.begin(), {BRINE_FILES_CLIENT, "--connect", server.endpoint()});
    ChildProcess client(argv);
    std::string output;
    while (auto line = client.read_line(30s)) output += *line + "\n";
    const auto status = client.wait(30s);
    EXPECT_TRUE(status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << output;
    return output;
  };
  const std::string put = run({"put", in, "data.bin"});
  EXPECT_NE(put.find("put data.bin: 3.0 / 3.0 MiB (100%)"), std::string::npos) << put;
  EXPECT_NE(put.find("stored data.bin: 3145728 bytes"), std::string::npos) << put;
  EXPECT_NE(put.find("checksum matches"), std::string::npos) << put;
  const std::string get = run({"get", "data.bin", out});
  EXPECT_NE(get.find("received data.bin: 3145728 bytes"), std::string::npos) << get;
  EXPECT_NE(get.find("checksum matches"), std::string::npos) << get;
  std::ifstream a(in, std::ios::binary);
  std::ifstream b(out, std::ios::binary);
  EXPECT_TRUE(
      std::equal(std::istreambuf_iterator<char>(a), {}, std::istreambuf_iterator<char>(b), {}));
  std::remove(in.c_str());
  std::remove(out.c_str());
}

// Datagram transports may lose or reorder items: a stream is refused, naming why.
TEST(StreamsOverDatagrams, AreRefusedNamingWhy) {
  for (const std::string transport : {"udp4", "unixgram"}) {
    StreamServer s;
    brine::ClientOptions o;
    o.codec = "cereal";
    Client c(s.listen(transport), o);
    auto stream = c.stream<calc::Number>("count", calc::AddRequest{3, 0});
    EXPECT_FALSE(stream.read());
    EXPECT_EQ(stream.status().code, StatusCode::unimplemented) << transport;
    EXPECT_NE(stream.status().message.find("stream transport"), std::string::npos);
  }
}

}  // namespace
