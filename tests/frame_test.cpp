// FrameParser and frame building: fragmentation, coalescing and every malformed-frame case.
#include <gtest/gtest.h>

#include <brine/detail/frame.hpp>
#include <cstring>
#include <string>
#include <vector>

namespace {

using brine::Buffer;
using brine::StatusCode;
using namespace brine::detail;

std::vector<std::byte> bytes_of(const Buffer& b) {
  return {b.data(), b.data() + b.size()};
}

std::vector<std::byte> make_frame(FrameKind kind, std::uint64_t id, std::string_view method,
                                  std::string_view payload) {
  Buffer b;
  begin_frame(b, kind, 1, method);
  set_call_id(b, id);
  b.append(payload.data(), payload.size());
  EXPECT_TRUE(finish_frame(b, kDefaultMaxFrameSize));
  return bytes_of(b);
}

// Feeds `data` in chunks of `chunk` bytes; collects frames as strings "id:method:payload".
struct Feed {
  std::vector<std::string> frames;
  bool failed = false;
  brine::Status error;
};

Feed feed(FrameParser& parser, const std::vector<std::byte>& data, std::size_t chunk) {
  Feed out;
  for (std::size_t off = 0; off < data.size() && !out.failed; off += chunk) {
    const std::size_t n = std::min(chunk, data.size() - off);
    auto space = parser.prepare(n);
    std::memcpy(space.data(), data.data() + off, n);
    parser.commit(n);
    FrameView f{};
    for (;;) {
      const auto r = parser.next(&f);
      if (r == FrameParser::Next::need_more) break;
      if (r == FrameParser::Next::error) {
        out.failed = true;
        out.error = parser.error();
        break;
      }
      out.frames.push_back(
          std::to_string(f.call_id) + ":" + std::string(f.method) + ":" +
          std::string(reinterpret_cast<const char*>(f.payload.data()), f.payload.size()));
    }
  }
  return out;
}

TEST(Frame, LayoutMatchesTheSpec) {
  const auto f = make_frame(FrameKind::request, 0x0102030405060708ULL, "add", "xy");
  const std::vector<std::uint8_t> expected = {
      0,    0,    0,   21,                // length: 16 + 3 + 2
      0x62, 0x72, 1,   1,   1,  0,        // magic, version, kind request, codec 1, flags
      0,    3,                            // method length
      1,    2,    3,   4,   5,  6, 7, 8,  // call id
      'a',  'd',  'd', 'x', 'y'};
  ASSERT_EQ(f.size(), expected.size());
  for (std::size_t i = 0; i < f.size(); ++i) EXPECT_EQ(std::uint8_t(f[i]), expected[i]) << i;
}

TEST(Frame, OneByteAtATime) {
  std::vector<std::byte> stream;
  for (int i = 1; i <= 3; ++i) {
    auto f = make_frame(FrameKind::request, i, "m" + std::to_string(i), std::string(i * 7, 'p'));
    stream.insert(stream.end(), f.begin(), f.end());
  }
  FrameParser parser;
  const auto out = feed(parser, stream, 1);
  ASSERT_FALSE(out.failed) << out.error.to_string();
  ASSERT_EQ(out.frames.size(), 3u);
  EXPECT_EQ(out.frames[0], "1:m1:" + std::string(7, 'p'));
  EXPECT_EQ(out.frames[2], "3:m3:" + std::string(21, 'p'));
  EXPECT_EQ(parser.buffered(), 0u);
}

TEST(Frame, ManyFramesInOneRead) {
  std::vector<std::byte> stream;
  for (int i = 0; i < 100; ++i) {
    auto f = make_frame(FrameKind::oneway, i, "log", std::to_string(i));
    stream.insert(stream.end(), f.begin(), f.end());
  }
  FrameParser parser;
  const auto out = feed(parser, stream, stream.size());
  ASSERT_FALSE(out.failed);
  ASSERT_EQ(out.frames.size(), 100u);
  EXPECT_EQ(out.frames[99], "99:log:99");
}

TEST(Frame, EveryChunkSizeGivesTheSameFrames) {
  std::vector<std::byte> stream;
  for (int i = 0; i < 5; ++i) {
    auto f = make_frame(FrameKind::request, i, "echo", std::string(std::size_t(i) * 1000, 'z'));
    stream.insert(stream.end(), f.begin(), f.end());
  }
  for (std::size_t chunk : {2u, 3u, 19u, 20u, 21u, 999u, 4096u}) {
    FrameParser parser;
    const auto out = feed(parser, stream, chunk);
    ASSERT_FALSE(out.failed) << chunk;
    EXPECT_EQ(out.frames.size(), 5u) << chunk;
  }
}

TEST(Frame, LargeFrameLargerThanTheReadBuffer) {
  const std::string payload(1 << 20, 'L');
  const auto f = make_frame(FrameKind::request, 9, "big", payload);
  FrameParser parser;
  const auto out = feed(parser, f, 65536);
  ASSERT_EQ(out.frames.size(), 1u);
  EXPECT_EQ(out.frames[0].size(), std::string("9:big:").size() + payload.size());
}

TEST(Frame, OversizeRejectedFromThePrefixAlone) {
  FrameParser parser(1024);
  // Only the 4-byte prefix arrives: 0xFFFFFFFF claimed.
  const std::vector<std::byte> prefix = {std::byte{0xFF}, std::byte{0xFF}, std::byte{0xFF},
                                         std::byte{0xFF}};
  const auto out = feed(parser, prefix, 4);
  ASSERT_TRUE(out.failed);
  EXPECT_EQ(out.error.code, StatusCode::resource_exhausted);
  // Nothing was allocated for the claimed size.
  EXPECT_LT(parser.prepare(1).size(), std::size_t(1) << 20);
}

// Issue 13: an HTTP answer read as a frame was "a frame of 1008813135 bytes"; the magic is checked
// first, and the error says what the peer sent.
TEST(Frame, AWrongMagicIsNamedBeforeTheLength) {
  FrameParser parser(1024);
  const std::string http = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
  const auto text = std::as_bytes(std::span(http));
  const auto out = feed(parser, std::vector<std::byte>(text.begin(), text.end()), 64);
  ASSERT_TRUE(out.failed);
  EXPECT_EQ(out.error.code, StatusCode::invalid_argument);
  EXPECT_EQ(out.error.message, "not a brine peer (it sent \"HTTP/1.1 400 Bad Request\")");
  // Bytes that are not text are shown escaped, and a long line is cut.
  FrameParser binary;
  const std::vector<std::byte> junk(100, std::byte{0xFE});
  const auto bad = feed(binary, junk, 100);
  ASSERT_TRUE(bad.failed);
  EXPECT_EQ(bad.error.message.rfind("not a brine peer (it sent \"\\xfe\\xfe", 0), 0u)
      << bad.error.message;
  EXPECT_NE(bad.error.message.find("...\")"), std::string::npos) << bad.error.message;
}

TEST(Frame, JustAtTheLimitIsAccepted) {
  const auto f = make_frame(FrameKind::request, 1, "m", std::string(1024 - 16 - 1, 'x'));
  FrameParser parser(1024);
  const auto out = feed(parser, f, 100);
  ASSERT_FALSE(out.failed) << out.error.to_string();
  EXPECT_EQ(out.frames.size(), 1u);
  FrameParser smaller(1023);
  EXPECT_TRUE(feed(smaller, f, 100).failed);
}

TEST(Frame, FinishRefusesAFrameOverTheLimit) {
  Buffer b;
  begin_frame(b, FrameKind::request, 1, "m");
  b.append(std::string(2000, 'x').data(), 2000);
  EXPECT_FALSE(finish_frame(b, 1024));
  EXPECT_TRUE(finish_frame(b, 4096));
}

struct Corruption {
  const char* name;
  std::size_t offset;
  std::uint8_t value;
  friend void PrintTo(const Corruption& c, std::ostream* os) { *os << c.name; }
};

class FrameCorruption : public testing::TestWithParam<Corruption> {};

TEST_P(FrameCorruption, IsAProtocolError) {
  auto f = make_frame(FrameKind::request, 1, "add", "payload");
  f[GetParam().offset] = std::byte{GetParam().value};
  FrameParser parser;
  // Errors are found as soon as the header is in: send only the header.
  const std::vector<std::byte> head(f.begin(), f.begin() + kFixedSize);
  const auto out = feed(parser, head, 1);
  ASSERT_TRUE(out.failed);
  EXPECT_EQ(out.error.code, StatusCode::invalid_argument);
  EXPECT_TRUE(out.frames.empty());
}

INSTANTIATE_TEST_SUITE_P(All, FrameCorruption,
                         testing::Values(Corruption{"magic0", 4, 0x00},
                                         Corruption{"magic1", 5, 0x00}, Corruption{"version", 6, 2},
                                         Corruption{"kind0", 7, 0}, Corruption{"kind11", 7, 11},
                                         Corruption{"flags", 9, 0x20},
                                         Corruption{"method_len", 10, 0xFF}),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

TEST(Frame, ZeroLengthIsAProtocolError) {
  FrameParser parser;
  const std::vector<std::byte> zero(4, std::byte{0});
  const auto out = feed(parser, zero, 4);
  ASSERT_TRUE(out.failed);
  EXPECT_EQ(out.error.code, StatusCode::invalid_argument);
}

TEST(Frame, LengthShorterThanHeaderIsAProtocolError) {
  FrameParser parser;
  const std::vector<std::byte> f = {std::byte{0}, std::byte{0}, std::byte{0}, std::byte{15}};
  EXPECT_TRUE(feed(parser, f, 4).failed);
}

TEST(Frame, TruncatedFrameYieldsNothing) {
  const auto f = make_frame(FrameKind::request, 1, "add", "payload");
  FrameParser parser;
  const std::vector<std::byte> part(f.begin(), f.end() - 1);
  const auto out = feed(parser, part, 1);
  EXPECT_FALSE(out.failed);
  EXPECT_TRUE(out.frames.empty());
  EXPECT_EQ(parser.buffered(), part.size());
}

TEST(Frame, ErrorPayloadRoundTrip) {
  Buffer b;
  make_error_frame(b, 77, {StatusCode::internal, "division by zero", "std::domain_error"});
  FrameParser parser;
  auto space = parser.prepare(b.size());
  std::memcpy(space.data(), b.data(), b.size());
  parser.commit(b.size());
  FrameView f{};
  ASSERT_EQ(parser.next(&f), FrameParser::Next::frame);
  EXPECT_EQ(f.kind, FrameKind::error);
  EXPECT_EQ(f.call_id, 77u);
  const auto s = parse_error_payload(f.payload);
  EXPECT_EQ(s.code, StatusCode::internal);
  EXPECT_EQ(s.message, "division by zero");
  EXPECT_EQ(s.type, "std::domain_error");
}

TEST(Frame, MalformedErrorPayloads) {
  const std::vector<std::vector<std::uint8_t>> bad = {
      {},
      {0, 0, 0, 13, 0, 0, 0, 5, 'a', 0},     // message length past the end
      {0, 0, 0, 13, 0, 0, 0, 0, 0, 9},       // type length past the end
      {0, 0, 0, 0, 0, 0, 0, 0, 0, 0},        // code 0 in an error frame
      {0, 0, 0, 13, 0, 0, 0, 0, 0, 0, 'x'},  // trailing byte
  };
  for (const auto& b : bad) {
    const auto s = parse_error_payload({reinterpret_cast<const std::byte*>(b.data()), b.size()});
    EXPECT_EQ(s.code, StatusCode::invalid_argument);
  }
  const std::vector<std::uint8_t> unknown_code = {0, 0, 0, 99, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(parse_error_payload({reinterpret_cast<const std::byte*>(unknown_code.data()), 10}).code,
            StatusCode::unknown);
}

}  // namespace

namespace {

std::vector<std::byte> timed_request(std::uint32_t ms, std::string_view payload) {
  Buffer b;
  begin_request(b, FrameKind::request, 1, {}, "add");
  set_call_id(b, 9);
  b.append(payload.data(), payload.size());
  set_timeout(b, std::chrono::milliseconds(ms));
  EXPECT_TRUE(finish_frame(b, kDefaultMaxFrameSize));
  return bytes_of(b);
}

TEST(FrameTimeout, TheFieldFollowsTheMethodAndIsNotPayload) {
  const auto f = timed_request(1500, "xyz");
  // flags bit 0, then "add", then 00 00 05 DC, then the payload.
  EXPECT_EQ(f[9], std::byte{1});
  EXPECT_EQ(f.size(), kFixedSize + 3 + 4 + 3);
  EXPECT_EQ(f[23], std::byte{0x00});
  EXPECT_EQ(f[25], std::byte{0x05});
  EXPECT_EQ(f[26], std::byte{0xDC});
  FrameParser parser;
  FrameView v{};
  auto space = parser.prepare(f.size());
  std::memcpy(space.data(), f.data(), f.size());
  parser.commit(f.size());
  ASSERT_EQ(parser.next(&v), FrameParser::Next::frame);
  EXPECT_EQ(v.timeout_ms, 1500u);
  EXPECT_EQ(v.method, "add");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(v.payload.data()), v.payload.size()), "xyz");
  // The same through the message path (ZeroMQ).
  FrameView m{};
  ASSERT_TRUE(frame_from_message(f, kDefaultMaxFrameSize, &m).ok());
  EXPECT_EQ(m.timeout_ms, 1500u);
  EXPECT_EQ(m.payload.size(), 3u);
}

TEST(FrameTimeout, AFrameWithoutItHasNoTimeout) {
  FrameParser parser;
  const auto out = feed(parser, make_frame(FrameKind::request, 1, "add", "p"), 1);
  ASSERT_EQ(out.frames.size(), 1u);
  FrameView v{};
  const auto f = make_frame(FrameKind::request, 1, "add", "p");
  ASSERT_TRUE(frame_from_message(f, kDefaultMaxFrameSize, &v).ok());
  EXPECT_EQ(v.timeout_ms, 0u);
}

TEST(FrameTimeout, OnlyRequestsMayCarryIt) {
  auto f = make_frame(FrameKind::reply, 1, {}, "12345678");
  f[9] = std::byte{1};
  FrameParser parser;
  const auto out = feed(parser, f, 3);
  EXPECT_TRUE(out.failed);
  EXPECT_NE(out.error.message.find("not a request"), std::string::npos) << out.error.message;
}

TEST(FrameTimeout, ItMustFitTheFrame) {
  auto f = make_frame(FrameKind::request, 1, "add", "ab");  // 2 bytes after the method: too few
  f[9] = std::byte{1};
  FrameParser parser;
  EXPECT_TRUE(feed(parser, f, 64).failed);
  FrameView v{};
  EXPECT_FALSE(frame_from_message(f, kDefaultMaxFrameSize, &v).ok());
}

TEST(FrameTimeout, HugeTimeoutsAreClampedNotWrapped) {
  Buffer b;
  begin_request(b, FrameKind::request, 1, {}, "m");
  set_timeout(b, std::chrono::hours(24 * 365 * 200));
  EXPECT_EQ(load_be32(b.data() + kFixedSize + 1), 0xFFFFFFFFu);
  set_timeout(b, std::chrono::milliseconds(-5));
  EXPECT_EQ(load_be32(b.data() + kFixedSize + 1), 1u);
}

}  // namespace

namespace {

// Frames read into a buffer of the caller's (feed), in chunks of `chunk`: whole frames are seen
// in place, a partial one is continued with prepare_rest().
Feed feed_in_place(FrameParser& parser, const std::vector<std::byte>& data, std::size_t chunk) {
  Feed out;
  std::size_t off = 0;
  std::vector<std::byte> scratch(chunk);
  while (off < data.size() && !out.failed) {
    std::size_t n;
    if (parser.buffered() == 0) {
      n = std::min(chunk, data.size() - off);
      std::memcpy(scratch.data(), data.data() + off, n);
      parser.feed({scratch.data(), n});
    } else {
      auto space = parser.prepare_rest();
      n = std::min(space.size(), data.size() - off);
      std::memcpy(space.data(), data.data() + off, n);
      parser.commit(n);
    }
    off += n;
    FrameView f{};
    for (;;) {
      const auto r = parser.next(&f);
      if (r == FrameParser::Next::need_more) break;
      if (r == FrameParser::Next::error) {
        out.failed = true;
        out.error = parser.error();
        break;
      }
      out.frames.push_back(
          std::to_string(f.call_id) + ":" + std::string(f.method) + ":" +
          std::string(reinterpret_cast<const char*>(f.payload.data()), f.payload.size()));
    }
  }
  return out;
}

}  // namespace

TEST(Frame, InPlaceParsingGivesTheSameFramesForEveryChunkSize) {
  std::vector<std::byte> data;
  for (std::uint64_t id = 1; id <= 40; ++id) {
    const auto f = make_frame(FrameKind::request, id, "m", std::string((id * 733) % 9000, 'p'));
    data.insert(data.end(), f.begin(), f.end());
  }
  FrameParser reference;
  const auto expected = feed(reference, data, 65536).frames;
  ASSERT_EQ(expected.size(), 40u);
  for (const std::size_t chunk : {1u, 3u, 20u, 21u, 777u, 4096u, 65536u}) {
    FrameParser parser;
    const auto out = feed_in_place(parser, data, chunk);
    EXPECT_FALSE(out.failed) << out.error.to_string();
    EXPECT_EQ(out.frames, expected) << "chunk " << chunk;
    EXPECT_EQ(parser.buffered(), 0u);
  }
}

// Issue 12: a connection that once received a 16 MiB frame kept a 16 MiB read buffer for its
// whole life (eight idle connections held about 197 MB). Buffers shrink back once it is gone.
TEST(Frame, TheReadBufferShrinksAfterALargeFrame) {
  const auto big = make_frame(FrameKind::request, 1, "big", std::string((16u << 20) - 100, 'B'));
  const auto small = make_frame(FrameKind::request, 2, "m", "x");
  {
    FrameParser parser(32u << 20);
    ASSERT_EQ(feed(parser, big, 65536).frames.size(), 1u);
    EXPECT_GE(parser.capacity(), (16u << 20) - 100);
    ASSERT_EQ(feed(parser, small, small.size()).frames.size(), 1u);  // the next read
    EXPECT_LE(parser.capacity(), 256u * 1024) << "reading into prepare()";
  }
  {
    FrameParser parser(32u << 20);
    ASSERT_EQ(feed_in_place(parser, big, 65536).frames.size(), 1u);
    EXPECT_GE(parser.capacity(), (16u << 20) - 100);
    ASSERT_EQ(feed_in_place(parser, small, 65536).frames.size(), 1u);
    EXPECT_EQ(parser.capacity(), 0u) << "reading in place holds no buffer between frames";
  }
}

// Issue 13: an error message could carry invalid UTF-8 (a method name echoed raw:
// "no method '\xff\xfeadd'") although the page promises UTF-8. Bytes outside a well-formed
// sequence are written as \xNN; well-formed text passes unchanged.
TEST(Frame, AnErrorMessageIsAlwaysUtf8) {
  auto round_trip = [](const std::string& message, const std::string& type) {
    Buffer b;
    make_error_frame(b, 9, {StatusCode::not_found, message, type});
    FrameView f{};
    EXPECT_EQ(frame_from_message(b.bytes(), kDefaultMaxFrameSize, &f).code, StatusCode::ok);
    return parse_error_payload(f.payload);
  };
  EXPECT_EQ(round_trip("no method '\xff\xfe"
                       "add'",
                       "")
                .message,
            "no method '\\xFF\\xFEadd'");
  const std::string fine = "d\xc3\xa9lka \xe2\x9c\x93 \xf0\x9f\x98\x80";
  EXPECT_EQ(round_trip(fine, fine).message, fine);
  // Overlong forms, surrogates, code points above U+10FFFF and cut sequences are not UTF-8.
  EXPECT_EQ(round_trip("\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80|\xe2\x9c", "\xff").message,
            "\\xC0\\xAF|\\xED\\xA0\\x80|\\xF4\\x90\\x80\\x80|\\xE2\\x9C");
  EXPECT_EQ(round_trip("m", "\xff").type, "\\xFF");
}

// Issue 12: error frames were built without regard to max_frame_size (a 1,046-byte error frame
// under a 1,024-byte limit). Message and type are cut to fit, at a UTF-8 boundary.
TEST(Frame, AnErrorFrameIsCutToTheLimit) {
  Buffer b;
  std::string message;
  for (int i = 0; i < 2000; ++i) message += "\xc3\xa9";  // 'é', two bytes each
  make_error_frame(b, 5, {StatusCode::internal, message, std::string(3000, 't')}, 1024);
  EXPECT_EQ(load_be32(b.data()), 1024u);  // the whole limit, not a byte more
  FrameParser parser(1024);
  const auto out = feed(parser, bytes_of(b), b.size());
  ASSERT_FALSE(out.failed) << out.error.to_string();
  FrameView f{};
  ASSERT_EQ(frame_from_message(b.bytes(), 1024, &f).code, StatusCode::ok);
  const brine::Status s = parse_error_payload(f.payload);
  EXPECT_EQ(s.code, StatusCode::internal);
  EXPECT_EQ(s.message.size() % 2, 0u) << "cut inside a UTF-8 sequence";
  EXPECT_EQ(s.message.size() + s.type.size(), 1024u - 26);
}

namespace {

// A contract goes after the timeout field and before the payload; both parse paths read it.
TEST(FrameContract, TheFieldFollowsTheTimeoutAndIsNotPayload) {
  Buffer b;
  begin_request(b, FrameKind::request, 1, {}, "add");
  set_call_id(b, 9);
  b.append("xyz", 3);
  attach_contract(b, {0x0102030405060708ull, "(i32)->i32"});
  attach_contract(b, {1, "(f32)->f32"});  // at most one: a second is ignored
  set_timeout(b, std::chrono::milliseconds(1500));
  ASSERT_TRUE(finish_frame(b, kDefaultMaxFrameSize));
  const auto f = bytes_of(b);
  EXPECT_EQ(f[9], std::byte{3});
  EXPECT_EQ(f.size(), kFixedSize + 3 + 4 + 2 + 8 + 10 + 3);
  EXPECT_EQ(f[27], std::byte{0});
  EXPECT_EQ(f[28], std::byte{18});  // 8 + 10
  EXPECT_EQ(f[29], std::byte{1});
  EXPECT_EQ(f[36], std::byte{8});
  FrameParser parser;
  const auto check = [](const FrameView& v) {
    EXPECT_EQ(v.timeout_ms, 1500u);
    EXPECT_EQ(v.fingerprint, 0x0102030405060708ull);
    EXPECT_EQ(v.contract, "(i32)->i32");
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(v.payload.data()), v.payload.size()),
              "xyz");
  };
  FrameView v{};
  auto space = parser.prepare(f.size());
  std::memcpy(space.data(), f.data(), f.size());
  parser.commit(f.size());
  ASSERT_EQ(parser.next(&v), FrameParser::Next::frame);
  check(v);
  FrameView m{};
  ASSERT_TRUE(frame_from_message(f, kDefaultMaxFrameSize, &m).ok());
  check(m);
  // A frame without one has an empty contract.
  FrameParser plain;
  FrameView p{};
  const auto g = make_frame(FrameKind::oneway, 2, "add", "q");
  space = plain.prepare(g.size());
  std::memcpy(space.data(), g.data(), g.size());
  plain.commit(g.size());
  ASSERT_EQ(plain.next(&p), FrameParser::Next::frame);
  EXPECT_TRUE(p.contract.empty());
}

TEST(FrameContract, ALengthOutsideTheFrameIsAProtocolError) {
  Buffer b;
  begin_frame(b, FrameKind::oneway, 1, "add");
  set_call_id(b, 3);
  attach_contract(b, {0, "(i32)->void"});
  ASSERT_TRUE(finish_frame(b, kDefaultMaxFrameSize));
  auto f = bytes_of(b);
  for (std::uint8_t len : {0, 8, 200}) {
    f[kFixedSize + 3 + 1] = std::byte{len};
    FrameParser parser;
    const auto out = feed(parser, f, 5);
    EXPECT_TRUE(out.failed) << int(len);
    FrameView m{};
    EXPECT_FALSE(frame_from_message(f, kDefaultMaxFrameSize, &m).ok()) << int(len);
  }
}

}  // namespace
