// Compression (docs/wire-format.md, "Compression"): the encoding field byte by byte, the bounds a
// hostile compressed payload meets, and calls and streams end to end over every transport and
// codec, with what crossed the wire counted by the server.
#include <gtest/gtest.h>
#include <lz4.h>
#include <zstd.h>

#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "eventually.hpp"
#include "families.hpp"
#include "params.hpp"
#include "raw_peer.hpp"
#include "test_server.hpp"
#include "wire/compression.hpp"

namespace {

using brine::Buffer;
using brine::Client;
using brine::StatusCode;
using brine::detail::FrameKind;
using brine::detail::FrameView;
using brine::wire::Encoding;
using brine::wire::EncodingSet;
using namespace brine_test;
using namespace std::chrono_literals;

// Text that compresses well but is not one repeated byte: what JSON and logs look like.
std::string compressible(std::size_t n) {
  std::string s;
  s.reserve(n + 64);
  for (std::size_t i = 0; s.size() < n; ++i) {
    s += "{\"id\": " + std::to_string(i) + ", \"name\": \"item-" + std::to_string(i % 97) + "\"}\n";
  }
  s.resize(n);
  return s;
}

// Bytes no compressor shrinks.
std::string random_bytes(std::size_t n, bool text) {
  std::mt19937_64 rng(42);
  std::string s(n, '\0');
  for (char& c : s) c = text ? char('a' + rng() % 26) : char(rng());
  return s;
}

constexpr EncodingSet kBoth = brine::wire::kKnownEncodings;

brine::wire::Compression policy(std::vector<std::string> names, std::size_t threshold = 1024) {
  brine::CompressionOptions o;
  o.algorithms = std::move(names);
  o.threshold = threshold;
  return brine::wire::resolve(o, "test");
}

// A finished reply frame (call id 7, codec 1) carrying `payload`.
Buffer reply_frame(const std::string& payload) {
  Buffer f;
  brine::detail::begin_frame(f, FrameKind::reply, 1, {});
  brine::detail::set_call_id(f, 7);
  f.append(payload.data(), payload.size());
  EXPECT_TRUE(brine::detail::finish_frame(f, brine::detail::kDefaultMaxFrameSize));
  return f;
}

FrameView parse(const Buffer& frame, std::size_t limit = brine::detail::kDefaultMaxFrameSize) {
  FrameView v{};
  const brine::Status s = brine::detail::frame_from_message(frame.bytes(), limit, &v);
  EXPECT_TRUE(s.ok()) << s.message;
  return v;
}

std::string text_of(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// --- the field and the bounds -------------------------------------------------------------

TEST(EncodingField, LargePayloadsAreCompressedAndComeBackExactly) {
  const std::string payload = compressible(200000);
  for (const char* name : {"zstd", "lz4"}) {
    const auto p = policy({name});
    Buffer f = reply_frame(payload);
    brine::wire::seal_encoding(f, p.order[0], p, kBoth, brine::detail::kDefaultMaxFrameSize);
    const FrameView v = parse(f);
    ASSERT_TRUE(v.has_encoding);
    EXPECT_EQ(v.encoding, std::uint8_t(p.order[0])) << name;
    EXPECT_EQ(v.accepts, kBoth);
    EXPECT_EQ(v.decoded_size, payload.size());
    EXPECT_LT(f.size(), payload.size() / 4) << name << " barely compressed text";
    EXPECT_EQ(v.call_id, 7u);
    Buffer out;
    ASSERT_TRUE(brine::wire::inflate(v, kBoth, payload.size(), out).ok());
    EXPECT_EQ(text_of(out.bytes()), payload);
  }
}

TEST(EncodingField, SmallOrIncompressiblePayloadsGoAsTheyAreWithTheTwoByteField) {
  const auto p = policy({"zstd"}, 4096);
  for (const std::string& payload : {std::string(100, 'x'), random_bytes(100000, false)}) {
    Buffer f = reply_frame(payload);
    const std::size_t before = f.size();
    brine::wire::seal_encoding(f, Encoding::zstd, p, 0x04, brine::detail::kDefaultMaxFrameSize);
    EXPECT_EQ(f.size(), before + 2);
    const FrameView v = parse(f);
    EXPECT_TRUE(v.has_encoding);
    EXPECT_EQ(v.encoding, 0);
    EXPECT_EQ(v.accepts, 0x04);
    EXPECT_EQ(text_of(v.payload), payload);
    // Sealing twice changes nothing.
    brine::wire::seal_encoding(f, Encoding::zstd, p, 0x04, brine::detail::kDefaultMaxFrameSize);
    EXPECT_EQ(f.size(), before + 2);
  }
}

TEST(EncodingField, AFrameAtTheLimitGoesWithoutTheField) {
  const auto p = policy({"zstd"});
  Buffer f = reply_frame(std::string(100, 'x'));
  const std::size_t length = f.size() - brine::detail::kPrefixSize;
  brine::wire::seal_encoding(f, Encoding::identity, p, kBoth, length + 1);
  EXPECT_FALSE(parse(f).has_encoding);  // two more bytes would pass the receiver's limit
}

TEST(EncodingField, TheFieldIsByteExactAfterTheMetadata) {
  const auto p = policy({"lz4"}, 16);
  const std::string payload(64, 'a');
  Buffer f;
  brine::detail::begin_frame(f, FrameKind::request, 1, "m");
  brine::detail::set_call_id(f, 1);
  brine::detail::open_metadata(f);
  f.append(payload.data(), payload.size());
  ASSERT_TRUE(brine::detail::finish_frame(f, 1 << 20));
  brine::wire::seal_encoding(f, Encoding::lz4, p, kBoth, 1 << 20);
  const std::byte* b = f.data();
  EXPECT_EQ(std::uint8_t(b[9]), 0x18);                       // metadata and encoding
  const std::size_t at = brine::detail::kFixedSize + 1 + 4;  // method "m", empty metadata
  EXPECT_EQ(std::uint8_t(b[at]), 2);                         // lz4
  EXPECT_EQ(std::uint8_t(b[at + 1]), 0x06);                  // accepts zstd and lz4
  EXPECT_EQ(brine::detail::load_be32(b + at + 2), 64u);      // decompressed size
  // The rest is one LZ4 block, as LZ4_decompress_safe reads it.
  std::string back(64, '\0');
  EXPECT_EQ(LZ4_decompress_safe(reinterpret_cast<const char*>(b + at + 6), back.data(),
                                int(f.size() - at - 6), 64),
            64);
  EXPECT_EQ(back, payload);
  EXPECT_EQ(brine::detail::payload_offset(f.bytes()), at + 6);
}

// A frame built by hand: reply, call id 7, the encoding field `field`, then `payload`.
Buffer hand_frame(std::vector<std::uint8_t> field, const std::string& payload) {
  Buffer f;
  brine::detail::begin_frame(f, FrameKind::reply, 1, {});
  brine::detail::set_call_id(f, 7);
  f.data()[9] = std::byte{0x10};
  for (auto c : field) *f.extend(1) = std::byte(c);
  f.append(payload.data(), payload.size());
  EXPECT_TRUE(brine::detail::finish_frame(f, 1 << 24));
  return f;
}

std::string zstd_of(const std::string& s) {
  std::string out(ZSTD_compressBound(s.size()), '\0');
  out.resize(ZSTD_compress(out.data(), out.size(), s.data(), s.size(), 1));
  return out;
}

TEST(EncodingBounds, AClaimedSizeAboveTheLimitIsRefusedBeforeAnyWork) {
  const std::string packed = zstd_of(std::string(1 << 20, 'z'));
  Buffer f = hand_frame({1, 0, 0x00, 0x10, 0x00, 0x00}, packed);  // claims 1 MiB
  Buffer out;
  const brine::Status s = brine::wire::inflate(parse(f), kBoth, 65536, out);
  EXPECT_EQ(s.code, StatusCode::resource_exhausted) << s.message;
  EXPECT_EQ(out.capacity(), 0u);  // nothing allocated for it
}

TEST(EncodingBounds, ABombThatClaimsLittleIsCutAtItsClaim) {
  // 1 MiB of zeros in a few dozen bytes, claiming 1,000 bytes: it fails at the claim.
  const std::string packed = zstd_of(std::string(1 << 20, '\0'));
  Buffer f = hand_frame({1, 0, 0x00, 0x00, 0x03, 0xE8}, packed);
  Buffer out;
  const brine::Status s = brine::wire::inflate(parse(f), kBoth, 1 << 24, out);
  EXPECT_EQ(s.code, StatusCode::invalid_argument) << s.message;
  EXPECT_LE(out.capacity(), 1000u);
}

TEST(EncodingBounds, AClaimLargerThanTheContentIsRefused) {
  const std::string payload = compressible(5000);
  for (std::uint8_t algorithm : {1, 2}) {
    std::string packed;
    if (algorithm == 1) {
      packed = zstd_of(payload);
    } else {
      packed.resize(std::size_t(LZ4_compressBound(int(payload.size()))));
      packed.resize(std::size_t(LZ4_compress_default(payload.data(), packed.data(),
                                                     int(payload.size()), int(packed.size()))));
    }
    Buffer f = hand_frame({algorithm, 0, 0x00, 0x00, 0x13, 0x89}, packed);  // 5001
    Buffer out;
    EXPECT_EQ(brine::wire::inflate(parse(f), kBoth, 1 << 20, out).code,
              StatusCode::invalid_argument);
  }
}

TEST(EncodingBounds, GarbageAndUnknownAlgorithmsAreRefused) {
  Buffer out;
  Buffer garbage = hand_frame({1, 0, 0x00, 0x00, 0x01, 0x00}, "not zstd at all, no magic here");
  EXPECT_EQ(brine::wire::inflate(parse(garbage), kBoth, 1 << 20, out).code,
            StatusCode::invalid_argument);
  Buffer lz4_garbage = hand_frame({2, 0, 0x00, 0x00, 0x01, 0x00}, "\xff\xff\xff\xff\xff");
  EXPECT_EQ(brine::wire::inflate(parse(lz4_garbage), kBoth, 1 << 20, out).code,
            StatusCode::invalid_argument);
  Buffer unknown = hand_frame({9, 0, 0x00, 0x00, 0x01, 0x00}, "xx");
  const brine::Status s = brine::wire::inflate(parse(unknown), kBoth, 1 << 20, out);
  EXPECT_EQ(s.code, StatusCode::unimplemented);
  EXPECT_EQ(s.type, "brine.encodings:1,2");
  EXPECT_EQ(s.retry, brine::Retry::not_run);
  EXPECT_TRUE(brine::wire::is_encodings_refusal(s));
  // An algorithm known but not accepted names what is.
  Buffer zstd = hand_frame({1, 0, 0x00, 0x00, 0x00, 0x01}, zstd_of("a"));
  EXPECT_EQ(brine::wire::inflate(parse(zstd), 0x04, 1 << 20, out).type, "brine.encodings:2");
}

TEST(EncodingBounds, TheFieldIsCheckedWhereItMayStand) {
  // Cut short: the two bytes, or the size after a non-zero algorithm, past the frame's end.
  for (const std::vector<std::uint8_t>& field :
       {std::vector<std::uint8_t>{1}, std::vector<std::uint8_t>{1, 0, 0, 0}}) {
    Buffer f = hand_frame(field, "");
    FrameView v{};
    EXPECT_EQ(brine::detail::frame_from_message(f.bytes(), 1 << 20, &v).code,
              StatusCode::invalid_argument);
  }
  // Not in an error frame, a credit or a heartbeat.
  for (FrameKind k : {FrameKind::error, FrameKind::credit, FrameKind::heartbeat}) {
    Buffer f = hand_frame({0, 0}, "");
    f.data()[7] = std::byte(k);
    FrameView v{};
    EXPECT_EQ(brine::detail::frame_from_message(f.bytes(), 1 << 20, &v).code,
              StatusCode::invalid_argument)
        << int(k);
  }
}

TEST(EncodingOptions, UnknownNamesAndLevelsAreRefused) {
  brine::ClientOptions co;
  co.compression.algorithms = {"gzip"};
  EXPECT_THROW(Client("tcp://127.0.0.1:1", co), std::invalid_argument);
  brine::ServerOptions so;
  so.compression.level = 99;
  EXPECT_THROW(brine::Server{so}, std::invalid_argument);
}

// A server meets hand-made compressed requests: each bad one is refused as a call, with its
// status, and the connection serves on.
TEST(EncodingOnTheWire, BadCompressedRequestsAreRefusedAndTheConnectionServesOn) {
  brine::ServerOptions so;
  so.max_frame_size = 1 << 20;
  so.compression.algorithms = {"lz4"};
  TestServer s(so);
  RawPeer peer(s.listen("tcp4"));
  const std::string big = compressible(100000);
  // Request `id` for echo with `big`, its payload replaced by `field` and `payload`.
  const auto request = [&](std::uint64_t id, std::vector<std::uint8_t> field,
                           const std::string& payload) {
    Buffer f = request_frame<CerealBlob>("echo", CerealBlob{big}, id);
    f.resize(brine::detail::payload_offset(f.bytes()));
    f.data()[9] |= std::byte{brine::detail::kFlagEncoding};
    for (auto c : field) *f.extend(1) = std::byte(c);
    f.append(payload.data(), payload.size());
    EXPECT_TRUE(brine::detail::finish_frame(f, 1 << 20));
    return f;
  };
  Buffer plain_cereal;  // the cereal payload of CerealBlob{big}, to compress by hand
  {
    Buffer f = request_frame<CerealBlob>("echo", CerealBlob{big}, 1);
    const std::size_t at = brine::detail::payload_offset(f.bytes());
    plain_cereal.append(f.data() + at, f.size() - at);
  }
  const std::string cereal = text_of(plain_cereal.bytes());
  std::string lz4(std::size_t(LZ4_compressBound(int(cereal.size()))), '\0');
  lz4.resize(std::size_t(
      LZ4_compress_default(cereal.data(), lz4.data(), int(cereal.size()), int(lz4.size()))));
  const auto be32 = [](std::size_t n) {
    return std::vector<std::uint8_t>{std::uint8_t(n >> 24), std::uint8_t(n >> 16),
                                     std::uint8_t(n >> 8), std::uint8_t(n)};
  };
  const auto field = [&](std::uint8_t algorithm, std::uint8_t accepts, std::size_t size) {
    std::vector<std::uint8_t> f{algorithm, accepts};
    for (auto b : be32(size)) f.push_back(b);
    return f;
  };
  struct Case {
    std::vector<std::uint8_t> field;
    std::string payload;
    StatusCode expected;
    std::string type;
  };
  const std::vector<Case> cases = {
      {field(2, 0, cereal.size()), lz4, StatusCode::ok, ""},  // a good one
      {field(1, 0, cereal.size()), zstd_of(cereal), StatusCode::unimplemented,
       "brine.encodings:2"},                                             // zstd: not accepted here
      {field(2, 0, 2u << 20), lz4, StatusCode::resource_exhausted, ""},  // claims 2 MiB
      {field(2, 0, cereal.size() - 1), lz4, StatusCode::invalid_argument, ""},  // claims too little
      {field(2, 0, cereal.size()), "garbage", StatusCode::invalid_argument, ""},
      {{0, 0x06}, cereal, StatusCode::ok, ""},  // uncompressed, with the field: answered in lz4
  };
  std::uint64_t id = 10;
  for (const Case& c : cases) {
    ASSERT_TRUE(peer.send_all(request(++id, c.field, c.payload)));
    const auto answer = peer.read_frame(10s);
    ASSERT_TRUE(answer) << "no answer to case " << id;
    EXPECT_EQ(answer->call_id, id);
    if (c.expected == StatusCode::ok) {
      EXPECT_EQ(answer->kind, FrameKind::reply) << id;
    } else {
      ASSERT_EQ(answer->kind, FrameKind::error) << id;
      const brine::Status st = brine::detail::parse_error_payload(
          std::as_bytes(std::span(answer->payload.data(), answer->payload.size())));
      EXPECT_EQ(st.code, c.expected) << id << ": " << st.message;
      if (!c.type.empty()) {
        EXPECT_EQ(st.type, c.type);
      }
    }
  }
  EXPECT_FALSE(peer.closed());
}

// --- end to end, every transport and codec ------------------------------------------------

class Compressed : public testing::TestWithParam<Param> {
 protected:
  template <class F>
  void run(F&& body) {
    with_family(GetParam().codec, std::forward<F>(body));
  }
  brine::ClientOptions client_options(std::vector<std::string> algorithms) const {
    brine::ClientOptions o;
    o.codec = GetParam().codec;
    o.timeout = 20s;
    o.tls.ca_file = tls_paths().ca;
    o.compression.algorithms = std::move(algorithms);
    return o;
  }
  bool datagram() const { return test_transport(GetParam().transport).datagram; }
  // Large enough to matter, small enough for one datagram.
  std::size_t size() const { return datagram() ? 50000 : 1 << 20; }
  bool text() const { return GetParam().codec == "json"; }
};

std::uint64_t received(const brine::Server& s) {
  return s.metrics().bytes_received;
}
std::uint64_t sent(const brine::Server& s) {
  return s.metrics().bytes_sent;
}
// The bytes the server sent since `before`: a reply is counted once its write returned, which
// may be just after the caller has it.
std::uint64_t sent_since(const brine::Server& s, std::uint64_t before) {
  (void)eventually([&] { return sent(s) > before; });
  return sent(s) - before;
}

TEST_P(Compressed, AClientThatAsksGetsBothDirectionsCompressedOnceTheServerSaidSo) {
  run([&]<class F>() {
    for (const char* algorithm : {"zstd", "lz4"}) {
      TestServer s;
      Client c(s.listen(GetParam().transport), client_options({algorithm}));
      const std::string big = compressible(size());
      // The first call: the client does not know yet what the server takes; the reply comes
      // compressed (the request said the client takes it).
      auto in0 = received(s.server), out0 = sent(s.server);
      EXPECT_EQ(F::data(c.template call<typename F::Blob>("echo", F::blob(big))), big);
      EXPECT_GT(received(s.server) - in0, big.size()) << algorithm;
      EXPECT_LT(sent_since(s.server, out0), big.size() / 4) << algorithm;
      // Now the request goes compressed too.
      in0 = received(s.server);
      out0 = sent(s.server);
      EXPECT_EQ(F::data(c.template call<typename F::Blob>("echo", F::blob(big))), big);
      EXPECT_LT(received(s.server) - in0, big.size() / 4) << algorithm;
      EXPECT_LT(sent_since(s.server, out0), big.size() / 4) << algorithm;
      // Small calls are untouched, and a call may opt out.
      out0 = sent(s.server);
      EXPECT_EQ(F::value(c.template call<typename F::Number>("add", F::add(2, 3))), 5);
      EXPECT_LT(sent_since(s.server, out0), 100u);
      brine::CallOptions plain;
      plain.compress = false;
      in0 = received(s.server);
      out0 = sent(s.server);
      EXPECT_EQ(F::data(c.template call<typename F::Blob>("echo", F::blob(big), plain)), big);
      EXPECT_GT(received(s.server) - in0, big.size());
      EXPECT_GT(sent_since(s.server, out0), big.size());
    }
  });
}

TEST_P(Compressed, IncompressiblePayloadsTravelAsTheyAre) {
  run([&]<class F>() {
    TestServer s;
    Client c(s.listen(GetParam().transport), client_options({"zstd", "lz4"}));
    const std::string noise = random_bytes(size(), text());
    for (int i = 0; i < 2; ++i) {
      const auto in0 = received(s.server);
      EXPECT_EQ(F::data(c.template call<typename F::Blob>("echo", F::blob(noise))), noise);
      // Letters compress a little (5 bits of 8); binary noise not at all.
      if (!text()) {
        EXPECT_GT(received(s.server) - in0, noise.size());
      }
    }
  });
}

TEST_P(Compressed, WithoutCompressionOnEitherSideNothingChanges) {
  run([&]<class F>() {
    brine::ServerOptions none;
    none.compression.algorithms = {};
    TestServer s(none);
    Client c(s.listen(GetParam().transport), client_options({"zstd"}));
    const std::string big = compressible(size());
    for (int i = 0; i < 3; ++i) {  // the server never says it takes anything
      const auto in0 = received(s.server), out0 = sent(s.server);
      EXPECT_EQ(F::data(c.template call<typename F::Blob>("echo", F::blob(big))), big);
      EXPECT_GT(received(s.server) - in0, big.size());
      EXPECT_GT(sent_since(s.server, out0), big.size());
    }
    // A client that asks for nothing gets nothing compressed from a server that would.
    TestServer t;
    Client plain(t.listen(GetParam().transport), client_options({}));
    const auto out0 = sent(t.server);
    EXPECT_EQ(F::data(plain.template call<typename F::Blob>("echo", F::blob(big))), big);
    EXPECT_GT(sent_since(t.server, out0), big.size());
  });
}

// Streams of large items: `blobs` sends n of them, `echo_items` sends every item back.
template <class F>
void add_blob_streams(brine::Server& s, brine::HandlerOptions o) {
  using Blob = typename F::Blob;
  using Number = typename F::Number;
  s.handle(
      "blobs",
      [](const Number& n, brine::Writer<Blob>& out) {
        for (int i = 0; i < int(F::value(n)); ++i) {
          if (!out.write(F::blob(compressible(300000 + std::size_t(i))))) return;
        }
      },
      o);
  s.handle(
      "many",
      [](const Number& n, brine::Writer<Blob>& out) {
        for (int i = 0; i < int(F::value(n)); ++i) {
          if (!out.write(F::blob("item " + std::to_string(i)))) return;
        }
      },
      o);
  s.handle(
      "echo_items",
      [](const Number&, brine::Reader<Blob>& in, brine::Writer<Blob>& out) {
        while (auto b = in.read()) {
          if (!out.write(*b)) return;
        }
      },
      o);
}

class CompressedStreams : public Compressed {};

TEST_P(CompressedStreams, ItemsGoCompressedBothWaysWithinTheirWindows) {
  run([&]<class F>() {
    (void)tls_files();
    brine::ServerOptions so;
    so.tls.certificate_file = tls_paths().server_crt;
    so.tls.private_key_file = tls_paths().server_key;
    brine::Server server(so);
    add_blob_streams<CerealFamily>(server, {});
    add_blob_streams<ProtobufFamily>(server, {.codecs = {brine::CodecId::protobuf}});
    const std::string uri = server.listen(listen_uri(GetParam().transport));
    server.start();
    Client c(uri, client_options({"lz4", "zstd"}));
    // 40 items of 300 KB: far more than the 256 KiB windows, so credits must match the
    // compressed frames' sizes exactly or the stream stalls.
    auto out0 = sent(server);
    auto stream = c.template stream<typename F::Blob>("blobs", F::number(40));
    int n = 0;
    while (auto b = stream.read()) {
      ASSERT_EQ(F::data(*b), compressible(300000 + std::size_t(n))) << n;
      ++n;
    }
    EXPECT_TRUE(stream.status().ok()) << stream.status().message;
    EXPECT_EQ(n, 40);
    EXPECT_LT(sent_since(server, out0), 40u * 300000 / 4);
    // The client's items: compressed once the server has said what it takes (the reply above).
    auto in0 = received(server);
    auto chat = c.template bidi<typename F::Blob, typename F::Blob>("echo_items", F::number(0));
    for (int i = 0; i < 30; ++i) {
      const std::string item = compressible(250000 + std::size_t(i));
      ASSERT_TRUE(chat.write(F::blob(item))) << chat.status().message;
      auto back = chat.read();
      ASSERT_TRUE(back) << chat.status().message;
      ASSERT_EQ(F::data(*back), item);
    }
    chat.close_write();
    EXPECT_FALSE(chat.read());
    EXPECT_TRUE(chat.finish().ok());
    EXPECT_LT(received(server) - in0, 30u * 250000 / 4);
  });
}

// Small items carry the two-byte field uncompressed: the window must count them exactly as the
// reader credits them, or a long stream stalls (each item would cost the window two bytes that
// no credit gives back: 80,000 items are more than a 256 KiB window can lose).
class CompressedLongStreams : public Compressed {};

TEST_P(CompressedLongStreams, ALongStreamOfSmallItemsNeverStallsEitherWay) {
  run([&]<class F>() {
    brine::Server server;
    add_blob_streams<CerealFamily>(server, {});
    add_blob_streams<ProtobufFamily>(server, {.codecs = {brine::CodecId::protobuf}});
    const std::string uri = server.listen(listen_uri(GetParam().transport));
    server.start();
    Client c(uri, client_options({"zstd"}));
    constexpr int kItems = 80000;
    auto stream = c.template stream<typename F::Blob>("many", F::number(kItems));
    int n = 0;
    while (auto b = stream.read()) {
      ASSERT_EQ(F::data(*b), "item " + std::to_string(n));
      ++n;
    }
    EXPECT_TRUE(stream.status().ok()) << stream.status().message;
    EXPECT_EQ(n, kItems);
    // The stream's reply told the client what the server takes: its items carry the field too.
    auto chat = c.template bidi<typename F::Blob, typename F::Blob>("echo_items", F::number(0));
    std::jthread reader([&] {
      int got = 0;
      while (auto b = chat.read()) {
        if (F::data(*b) != "item " + std::to_string(got)) break;
        ++got;
      }
      EXPECT_EQ(got, kItems);
    });
    for (int i = 0; i < kItems; ++i) {
      ASSERT_TRUE(chat.write(F::blob("item " + std::to_string(i)))) << chat.status().message;
    }
    chat.close_write();
    reader.join();
    EXPECT_TRUE(chat.finish().ok());
  });
}

INSTANTIATE_TEST_SUITE_P(AllTransportsAndCodecs, Compressed, testing::ValuesIn(grid(transports())),
                         ParamName());
INSTANTIATE_TEST_SUITE_P(FlowControl, CompressedLongStreams,
                         testing::ValuesIn(grid({"tcp4", "mem"})), ParamName());
INSTANTIATE_TEST_SUITE_P(StreamTransportsAndCodecs, CompressedStreams,
                         testing::ValuesIn(grid(transports([](const TestTransport& tr) {
                           return !tr.datagram;
                         }))),
                         ParamName());

}  // namespace
