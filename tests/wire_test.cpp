// Frames assembled byte by byte from docs/wire-format.md (not with the library's encoder), sent
// over a raw socket; the reply bytes are checked the same way. If the document and the code
// drift apart, these tests fail.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <algorithm>
#include <memory>
#include "test_server.hpp"

namespace wire_objects {
// A tiny interface for the remote-object frames of "Remote objects".
struct Counter {
  virtual ~Counter() = default;
  virtual std::int32_t add(std::int32_t a, std::int32_t b) = 0;
  virtual brine::Ref<Counter> fork() = 0;
  virtual void touch() = 0;
  virtual std::string greet(const std::string& name) = 0;
};
BRINE_INTERFACE(Counter, add, fork, touch, greet);

struct CounterImpl final : Counter {
  std::int32_t add(std::int32_t a, std::int32_t b) override { return a + b; }
  brine::Ref<Counter> fork() override { return brine::make_ref<Counter, CounterImpl>(); }
  void touch() override {}
  std::string greet(const std::string& name) override { return "hello " + name; }
};
}  // namespace wire_objects

namespace {

using Bytes = std::vector<std::uint8_t>;
using namespace std::chrono_literals;

void put_be(Bytes& b, std::uint64_t v, int n) {
  for (int i = n - 1; i >= 0; --i) b.push_back(std::uint8_t(v >> (8 * i)));
}
void put_le32(Bytes& b, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(std::uint8_t(v >> (8 * i)));
}
void put_le_double(Bytes& b, double d) {
  std::uint64_t u;
  std::memcpy(&u, &d, 8);
  for (int i = 0; i < 8; ++i) b.push_back(std::uint8_t(u >> (8 * i)));
}
std::uint64_t get_be(const Bytes& b, std::size_t off, int n) {
  std::uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | b[off + std::size_t(i)];
  return v;
}

// The frame layout of docs/wire-format.md, section "Frame".
Bytes frame(std::uint8_t kind, std::uint8_t codec, std::uint64_t call_id, const std::string& method,
            const Bytes& payload) {
  Bytes f;
  put_be(f, 16 + method.size() + payload.size(), 4);  // length of the rest
  f.push_back(0x62);                                  // magic 'b'
  f.push_back(0x72);                                  // magic 'r'
  f.push_back(1);                                     // version
  f.push_back(kind);                                  // 1 request, 4 oneway
  f.push_back(codec);                                 // 1 cereal, 2 protobuf
  f.push_back(0);                                     // flags
  put_be(f, method.size(), 2);
  put_be(f, call_id, 8);
  f.insert(f.end(), method.begin(), method.end());
  f.insert(f.end(), payload.begin(), payload.end());
  return f;
}

Bytes text(const std::string& s) {
  return Bytes(s.begin(), s.end());
}

// A frame with flags bit 0 and the u32 timeout_ms field after the method name ("Frame").
Bytes timed(std::uint8_t kind, std::uint8_t codec, std::uint64_t call_id, const std::string& method,
            std::uint32_t timeout_ms, const Bytes& payload) {
  Bytes field;
  put_be(field, timeout_ms, 4);
  field.insert(field.end(), payload.begin(), payload.end());
  Bytes f = frame(kind, codec, call_id, method, field);
  f[9] = 0x01;
  return f;
}

// FNV-1a 64, as "Contracts" defines the fingerprint.
std::uint64_t fnv1a(const std::string& s) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// A frame with flags bit 1 and the contract field (u16 length, u64 fingerprint, text) between
// the method name and the payload ("Frame", "Contracts").
Bytes contracted(std::uint8_t kind, std::uint8_t codec, std::uint64_t call_id,
                 const std::string& method, std::uint64_t fingerprint, const std::string& contract,
                 const Bytes& payload) {
  Bytes field;
  put_be(field, 8 + contract.size(), 2);
  put_be(field, fingerprint, 8);
  field.insert(field.end(), contract.begin(), contract.end());
  field.insert(field.end(), payload.begin(), payload.end());
  Bytes f = frame(kind, codec, call_id, method, field);
  f[9] = 0x02;
  return f;
}

// cereal portable binary: 0x01 (little-endian), then each double as 8 little-endian bytes.
Bytes cereal_doubles(std::initializer_list<double> ds) {
  Bytes b{0x01};
  for (double d : ds) put_le_double(b, d);
  return b;
}
// protobuf: field n, wire type 1 (64-bit): tag (n << 3 | 1), then 8 little-endian bytes.
Bytes protobuf_doubles(std::initializer_list<double> ds) {
  Bytes b;
  std::uint8_t field = 1;
  for (double d : ds) {
    b.push_back(std::uint8_t(field++ << 3 | 1));
    put_le_double(b, d);
  }
  return b;
}

class RawConn {
 public:
  explicit RawConn(const std::string& uri) {
    const auto colon = uri.rfind(':');
    const int port = std::stoi(uri.substr(colon + 1));
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(std::uint16_t(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) ADD_FAILURE();
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~RawConn() { ::close(fd_); }

  void send(const Bytes& b) const {
    ASSERT_EQ(::send(fd_, b.data(), b.size(), MSG_NOSIGNAL), ssize_t(b.size()));
  }
  void send_bytewise(const Bytes& b) const {
    for (std::uint8_t c : b) ASSERT_EQ(::send(fd_, &c, 1, MSG_NOSIGNAL), 1);
  }

  // Reads exactly n bytes; nullopt on EOF or after the timeout.
  std::optional<Bytes> read(std::size_t n, std::chrono::milliseconds timeout = 5s) const {
    Bytes out(n);
    std::size_t got = 0;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (got < n) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd p{fd_, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, int(left.count())) <= 0) return std::nullopt;
      const ssize_t r = ::recv(fd_, out.data() + got, n - got, 0);
      if (r <= 0) return std::nullopt;
      got += std::size_t(r);
    }
    return out;
  }

  // A whole frame: the 4-byte length, then that many bytes.
  std::optional<Bytes> read_frame() const {
    auto prefix = read(4);
    if (!prefix) return std::nullopt;
    auto rest = read(get_be(*prefix, 0, 4));
    if (!rest) return std::nullopt;
    prefix->insert(prefix->end(), rest->begin(), rest->end());
    return prefix;
  }

  bool closed_by_peer() const {
    char c;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) return false;
    return ::recv(fd_, &c, 1, 0) == 0;
  }

 private:
  int fd_ = -1;
};

struct ErrorFrame {
  std::uint64_t call_id;
  std::uint32_t code;
  std::string message;
  std::string type;
};

// Parses an error frame per "Error payload".
ErrorFrame parse_error(const Bytes& f) {
  EXPECT_EQ(f[7], 3) << "kind error";
  EXPECT_EQ(get_be(f, 10, 2), 0u) << "no method name";
  ErrorFrame e{};
  e.call_id = get_be(f, 12, 8);
  const std::size_t p = 20;
  e.code = std::uint32_t(get_be(f, p, 4));
  const auto mlen = get_be(f, p + 4, 4);
  e.message.assign(f.begin() + long(p + 8), f.begin() + long(p + 8 + mlen));
  const auto tlen = get_be(f, p + 8 + mlen, 2);
  e.type.assign(f.begin() + long(p + 10 + mlen), f.begin() + long(p + 10 + mlen + tlen));
  EXPECT_EQ(f.size(), p + 10 + mlen + tlen);
  return e;
}

class Wire : public testing::Test {
 protected:
  brine_test::TestServer server;
  std::string uri = server.listen("tcp4");
};

TEST_F(Wire, CerealAddByHand) {
  RawConn c(uri);
  c.send(frame(1, 1, 7, "add", cereal_doubles({2.0, 3.0})));
  const auto r = c.read_frame();
  ASSERT_TRUE(r);
  Bytes expected = {0, 0, 0, 25, 0x62, 0x72, 1, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7};
  const Bytes payload = cereal_doubles({5.0});
  expected.insert(expected.end(), payload.begin(), payload.end());
  EXPECT_EQ(*r, expected);
}

TEST_F(Wire, ProtobufAddByHand) {
  RawConn c(uri);
  c.send(frame(1, 2, 0xABCDEF0123456789ULL, "add", protobuf_doubles({2.0, 3.0})));
  const auto r = c.read_frame();
  ASSERT_TRUE(r);
  Bytes expected = {0, 0, 0,    25,   0x62, 0x72, 1,    2,    2,    0,
                    0, 0, 0xAB, 0xCD, 0xEF, 0x01, 0x23, 0x45, 0x67, 0x89};
  const Bytes payload = protobuf_doubles({5.0});
  expected.insert(expected.end(), payload.begin(), payload.end());
  EXPECT_EQ(*r, expected);
}

TEST_F(Wire, HandlerExceptionErrorFrame) {
  RawConn c(uri);
  c.send(frame(1, 1, 9, "divide", cereal_doubles({1.0, 0.0})));
  const auto e = parse_error(*c.read_frame());
  EXPECT_EQ(e.call_id, 9u);
  EXPECT_EQ(e.code, 13u);  // INTERNAL
  EXPECT_EQ(e.message, "division by zero");
  EXPECT_EQ(e.type, "std::domain_error");
}

TEST_F(Wire, UnknownMethodErrorFrame) {
  RawConn c(uri);
  c.send(frame(1, 1, 3, "nope", cereal_doubles({})));
  const auto e = parse_error(*c.read_frame());
  EXPECT_EQ(e.call_id, 3u);
  EXPECT_EQ(e.code, 5u);  // NOT_FOUND
  EXPECT_EQ(e.message, "no method 'nope'");
  EXPECT_EQ(e.type, "");
}

TEST_F(Wire, UnknownCodecNamesTheCodec) {
  RawConn c(uri);
  c.send(frame(1, 77, 4, "add", {1, 2, 3}));
  const auto e = parse_error(*c.read_frame());
  EXPECT_EQ(e.call_id, 4u);
  EXPECT_EQ(e.code, 12u);  // UNIMPLEMENTED
  EXPECT_NE(e.message.find("codec#77"), std::string::npos) << e.message;
}

TEST_F(Wire, UndecodablePayloadIsInvalidArgument) {
  RawConn c(uri);
  c.send(frame(1, 1, 5, "add", {0x01, 0x00}));  // two bytes where 17 are needed
  const auto e = parse_error(*c.read_frame());
  EXPECT_EQ(e.code, 3u);  // INVALID_ARGUMENT
  // Still the same connection: a bad payload costs only its call.
  c.send(frame(1, 1, 6, "add", cereal_doubles({1.0, 1.0})));
  const auto r = c.read_frame();
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[7], 2);  // reply
}

TEST_F(Wire, OneByteAtATime) {
  RawConn c(uri);
  c.send_bytewise(frame(1, 1, 11, "add", cereal_doubles({20.0, 22.0})));
  const auto r = c.read_frame();
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[7], 2);
  EXPECT_EQ(get_be(*r, 12, 8), 11u);
  EXPECT_EQ(Bytes(r->begin() + 20, r->end()), cereal_doubles({42.0}));
}

TEST_F(Wire, ManyFramesInOneWrite) {
  RawConn c(uri);
  Bytes both = frame(1, 1, 1, "add", cereal_doubles({1.0, 1.0}));
  const Bytes second = frame(1, 2, 2, "add", protobuf_doubles({2.0, 2.0}));
  const Bytes oneway = frame(4, 1, 3, "add", cereal_doubles({0.0, 0.0}));
  both.insert(both.end(), oneway.begin(), oneway.end());
  both.insert(both.end(), second.begin(), second.end());
  c.send(both);
  std::vector<std::uint64_t> ids;
  for (int i = 0; i < 2; ++i) {
    const auto r = c.read_frame();
    ASSERT_TRUE(r);
    EXPECT_EQ((*r)[7], 2);
    ids.push_back(get_be(*r, 12, 8));
  }
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<std::uint64_t>{1, 2}));  // no reply to the oneway frame
  EXPECT_FALSE(c.read(1, 200ms));
}

// Protocol errors: an error frame with call id 0, then the server closes that connection only.
struct ProtocolCase {
  const char* name;
  Bytes bytes;
  std::uint32_t code;
  friend void PrintTo(const ProtocolCase& c, std::ostream* os) { *os << c.name; }
};

class WireProtocolError : public testing::TestWithParam<ProtocolCase> {
 protected:
  brine_test::TestServer server;
  std::string uri = server.listen("tcp4");
};

TEST_P(WireProtocolError, ClosesOnlyThatConnection) {
  RawConn bystander(uri);
  RawConn c(uri);
  c.send(GetParam().bytes);
  const auto f = c.read_frame();
  ASSERT_TRUE(f);
  const auto e = parse_error(*f);
  EXPECT_EQ(e.call_id, 0u);
  EXPECT_EQ(e.code, GetParam().code) << e.message;
  EXPECT_TRUE(c.closed_by_peer());
  bystander.send(frame(1, 1, 1, "add", cereal_doubles({1.0, 2.0})));
  const auto r = bystander.read_frame();
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[7], 2);
}

Bytes with(Bytes f, std::size_t off, std::uint8_t v) {
  f[off] = v;
  return f;
}
const Bytes kGood = frame(1, 1, 1, "add", cereal_doubles({1.0, 2.0}));

INSTANTIATE_TEST_SUITE_P(
    All, WireProtocolError,
    testing::Values(
        ProtocolCase{"oversize", {0xFF, 0xFF, 0xFF, 0xFF}, 8},
        ProtocolCase{"over16MiB", {0x01, 0x00, 0x00, 0x01}, 8},
        ProtocolCase{"zero_length", {0, 0, 0, 0}, 3},
        ProtocolCase{"short_length", {0, 0, 0, 15}, 3},
        ProtocolCase{"bad_magic", with(kGood, 4, 'X'), 3},
        ProtocolCase{"bad_version", with(kGood, 6, 2), 3},
        ProtocolCase{"bad_kind", with(kGood, 7, 0), 3},
        ProtocolCase{"reply_kind_from_client", with(kGood, 7, 2), 3},
        ProtocolCase{"flags", with(kGood, 9, 0x80), 3},
        ProtocolCase{"method_len_past_end", with(kGood, 10, 0x7F), 3},
        // Issue 13: the fields each kind leaves empty, and the reserved call id 0.
        ProtocolCase{"request_id_zero", frame(1, 1, 0, "add", cereal_doubles({1, 2})), 3},
        ProtocolCase{"oneway_id_zero", frame(4, 1, 0, "add", cereal_doubles({1, 2})), 3},
        // "Heartbeats, timeouts and cancel": flags bit 0 belongs to requests only.
        ProtocolCase{"oneway_with_timeout", timed(4, 1, 5, "add", 100, cereal_doubles({1, 2})), 3},
        ProtocolCase{"heartbeat_with_method", frame(6, 0, 0, "x", {}), 3},
        ProtocolCase{"heartbeat_with_codec", frame(6, 1, 0, "", {}), 3},
        ProtocolCase{"heartbeat_with_call_id", frame(6, 0, 5, "", {}), 3},
        ProtocolCase{"heartbeat_with_payload", frame(6, 0, 0, "", {0}), 3},
        ProtocolCase{"cancel_with_payload", frame(7, 0, 5, "", {1}), 3},
        ProtocolCase{"cancel_of_id_zero", frame(7, 0, 0, "", {}), 3},
        ProtocolCase{"not_brine", text("GET / HTTP/1.1\r\n\r\n"), 3},
        // "Contracts": the field's length must be 9..16392 and inside the frame, and only
        // requests and oneways may carry one.
        ProtocolCase{"contract_length_8", with(contracted(1, 1, 1, "add", 0, "x", {}), 21 + 3, 8),
                     3},
        ProtocolCase{"contract_past_the_end",
                     with(contracted(1, 1, 1, "add", 0, "x", {}), 21 + 3, 0x40), 3},
        ProtocolCase{"contract_in_a_heartbeat", with(frame(6, 0, 0, "", {0, 9}), 9, 0x02), 3}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

// Issue 13: the page said cereal counts are always little-endian; in a big-endian archive (first
// byte 0x00) they are big-endian like every other value, as cereal's own archive reads them.
TEST_F(Wire, ABigEndianCerealArchiveHasBigEndianCounts) {
  RawConn c(uri);
  Bytes sum{0x00};
  put_be(sum, 2, 8);  // two values
  for (double d : {1.5, 2.25}) {
    std::uint64_t u;
    std::memcpy(&u, &d, 8);
    put_be(sum, u, 8);
  }
  c.send(frame(1, 1, 1, "sum", sum));
  const auto r = c.read_frame();
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[7], 2) << parse_error(*r).message;
  Bytes expected = cereal_doubles({3.75});
  EXPECT_EQ(Bytes(r->begin() + 20, r->end()), expected);
}

// Issue 13: two pending calls with the same id were both answered; the second breaks the protocol.
TEST_F(Wire, ARequestReusingAPendingIdClosesTheConnection) {
  RawConn c(uri);
  Bytes wait{0x01, 0x2C, 0x01, 0, 0};  // cereal WaitRequest{300}: a u32, little-endian
  c.send(frame(1, 1, 7, "wait", wait));
  c.send(frame(1, 1, 7, "add", cereal_doubles({1.0, 2.0})));
  // The server may answer the first before it reads the second; the error comes either way.
  auto f = c.read_frame();
  ASSERT_TRUE(f);
  if ((*f)[7] == 2) f = c.read_frame();
  ASSERT_TRUE(f);
  const auto e = parse_error(*f);
  EXPECT_EQ(e.call_id, 0u);
  EXPECT_EQ(e.code, 3u);
  EXPECT_EQ(e.message, "protocol error: call id 7 is already in use by a pending call");
  EXPECT_TRUE(c.closed_by_peer());
  // Ids need only be unique among pending calls: one that finished may be used again.
  RawConn d(uri);
  for (int i = 0; i < 3; ++i) {
    d.send(frame(1, 1, 9, "add", cereal_doubles({1.0, 2.0})));
    const auto r = d.read_frame();
    ASSERT_TRUE(r);
    EXPECT_EQ((*r)[7], 2);
  }
}

// "Call ids": an id may be used again as soon as its answer has arrived. A worker used to write
// its reply before taking the call off the connection's list, so an id reused at once was, now
// and then, "already in use" (seen as a flaky failure of the test above); and a call answered
// DEADLINE_EXCEEDED while it waited for a worker stayed on the list until a worker took it.
TEST(WireCallIds, AnIdIsFreeAsSoonAsItsAnswerArrives) {
  // Every call on the one worker: 2,000 quick adds would otherwise move add to the I/O thread
  // (adaptive inline), and the late add below would not wait for the worker.
  brine_test::TestServer one_worker({.workers = 1, .inline_fast_handlers = false});
  RawConn c(one_worker.listen("tcp4"));
  for (int i = 0; i < 2000; ++i) {
    c.send(frame(1, 1, 9, "add", cereal_doubles({1.0, 2.0})));
    const auto r = c.read_frame();
    ASSERT_TRUE(r) << "after " << i << " calls";
    ASSERT_EQ((*r)[7], 2) << "after " << i << " calls: " << parse_error(*r).message;
  }
  // Answered at its deadline while the only worker is busy: its id is free at once.
  Bytes wait_300{0x01};
  put_le32(wait_300, 300);
  c.send(frame(1, 1, 1, "wait", wait_300));
  c.send(timed(1, 1, 2, "add", 50, cereal_doubles({2.0, 3.0})));
  const auto late = parse_error(*c.read_frame());
  ASSERT_EQ(late.call_id, 2u);
  ASSERT_EQ(late.code, 4u);
  c.send(frame(1, 1, 2, "add", cereal_doubles({2.0, 3.0})));  // id 2 again, before the wait ends
  std::vector<std::uint64_t> answered;
  for (int i = 0; i < 2; ++i) {
    const auto r = c.read_frame();
    ASSERT_TRUE(r);
    ASSERT_EQ((*r)[7], 2) << parse_error(*r).message;
    answered.push_back(get_be(*r, 12, 8));
  }
  std::sort(answered.begin(), answered.end());
  EXPECT_EQ(answered, (std::vector<std::uint64_t>{1, 2}));
}

// "Contracts", from the document: the server refuses a mismatched contract, names both
// signatures, remembers the refusal for the connection; the fingerprint is only a shortcut.
TEST_F(Wire, ContractsFromTheDocument) {
  const std::string theirs = "(s'Add'{f32,f32})->s'Number'{f64}";
  RawConn c(uri);
  c.send(contracted(1, 1, 1, "add", fnv1a("(s{f32,f32})->s{f64}"), theirs, {0x01, 0, 0, 0, 0}));
  auto e = parse_error(*c.read_frame());
  EXPECT_EQ(e.call_id, 1u);
  EXPECT_EQ(e.code, 9u);  // FAILED_PRECONDITION
  EXPECT_EQ(
      e.message,
      "method 'add': the client's `Number add(Add)` does not match the server's "
      "`calc::Number add(calc::AddRequest)` (argument 1: field 1: float on the client, double "
      "on the server)");
  // The same method without a contract, on this connection: the same answer.
  c.send(frame(1, 1, 2, "add", cereal_doubles({1.0, 2.0})));
  e = parse_error(*c.read_frame());
  EXPECT_EQ(e.call_id, 2u);
  EXPECT_EQ(e.code, 9u);
  // A text that does not parse costs its call only.
  c.send(contracted(1, 1, 3, "divide", 0, "(s{f64,f64)->", cereal_doubles({1.0, 2.0})));
  e = parse_error(*c.read_frame());
  EXPECT_EQ(e.code, 3u);
  EXPECT_NE(e.message.find("does not parse"), std::string::npos) << e.message;

  // A matching text with any fingerprint (0 here) is served; so is one with the exact
  // fingerprint, and a timeout field (flags 0x03) goes before the contract.
  RawConn d(uri);
  d.send(contracted(1, 1, 4, "add", 0, "(s'A'{f64,f64})->s'N'{f64}", cereal_doubles({2.0, 3.0})));
  auto r = d.read_frame();
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[7], 2);
  EXPECT_EQ(Bytes(r->begin() + 20, r->end()), cereal_doubles({5.0}));
  Bytes timed = frame(1, 1, 5, "add", {});
  timed.resize(20 + 3);  // header and method: the fields follow by hand
  timed[9] = 0x03;
  put_be(timed, 5000, 4);
  const std::string ours = "(s{f64,f64})->s{f64}";
  put_be(timed, 8 + ours.size(), 2);
  put_be(timed, fnv1a(ours), 8);
  timed.insert(timed.end(), ours.begin(), ours.end());
  const Bytes args = cereal_doubles({20.0, 22.0});
  timed.insert(timed.end(), args.begin(), args.end());
  for (int i = 3; i >= 0; --i)
    timed[std::size_t(3 - i)] = std::uint8_t((timed.size() - 4) >> (8 * i));
  d.send(timed);
  r = d.read_frame();
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[7], 2);
  EXPECT_EQ(Bytes(r->begin() + 20, r->end()), cereal_doubles({42.0}));
}

// Issue 13: an error message could carry invalid UTF-8 (a method name echoed raw).
TEST_F(Wire, ErrorMessagesAreUtf8) {
  RawConn c(uri);
  c.send(frame(1, 1, 1,
               "\xff\xfe"
               "add",
               cereal_doubles({1.0, 2.0})));
  const auto e = parse_error(*c.read_frame());
  EXPECT_EQ(e.code, 5u);
  EXPECT_EQ(e.message, "no method '\\xFF\\xFEadd'");
}

TEST_F(Wire, TruncatedThenClosedCostsNothing) {
  {
    RawConn c(uri);
    const Bytes f = frame(1, 1, 1, "add", cereal_doubles({1.0, 2.0}));
    c.send(Bytes(f.begin(), f.begin() + 10));
  }  // closed mid-frame
  RawConn c(uri);
  c.send(frame(1, 1, 2, "add", cereal_doubles({1.0, 2.0})));
  const auto r = c.read_frame();
  ASSERT_TRUE(r);
  EXPECT_EQ(get_be(*r, 12, 8), 2u);
}

// --- "JSON" and "Remote objects" ---------------------------------------------------------------
std::string payload_text(const Bytes& f) {
  const std::size_t start = 20 + get_be(f, 10, 2);
  return std::string(f.begin() + long(start), f.end());
}

TEST_F(Wire, JsonAddFromTheDocument) {
  RawConn c(uri);
  const Bytes request = frame(1, 3, 1, "add", text(R"({"a":2,"b":3})"));
  const Bytes documented = {0, 0, 0, 0x20, 0x62, 0x72, 1, 1, 3,   0,   0,  3,
                            0, 0, 0, 0,    0,    0,    0, 1, 'a', 'd', 'd'};
  ASSERT_EQ(request.size(), 36u);
  EXPECT_TRUE(std::equal(documented.begin(), documented.end(), request.begin()));
  c.send(request);
  const auto r = c.read_frame();
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[7], 2);  // reply
  EXPECT_EQ((*r)[8], 3);  // json
  EXPECT_EQ(payload_text(*r), R"({"value":5.0})");
}

class WireObjects : public testing::Test {
 protected:
  WireObjects() {
    server.expose<wire_objects::Counter>("counter", std::make_shared<wire_objects::CounterImpl>());
    uri = server.listen("tcp://127.0.0.1:0");
    server.start();
  }
  brine::Server server;
  std::string uri;
};

TEST_F(WireObjects, CerealArgumentListsReferencesAndRelease) {
  RawConn c(uri);
  // add(2, 3): one archive, 01 then each i32 little-endian.
  c.send(frame(1, 1, 1, "counter.add", {0x01, 2, 0, 0, 0, 3, 0, 0, 0}));
  auto r = c.read_frame();
  ASSERT_TRUE(r);
  EXPECT_EQ(payload_text(*r), std::string("\x01\x05\0\0\0", 5));
  // touch(): no arguments (the flag byte alone), void result (the flag byte alone).
  c.send(frame(1, 1, 2, "counter.touch", {0x01}));
  r = c.read_frame();
  ASSERT_TRUE(r);
  EXPECT_EQ(payload_text(*r), "\x01");
  // fork(): a reference, as a string "@N".
  c.send(frame(1, 1, 3, "counter.fork", {0x01}));
  r = c.read_frame();
  ASSERT_TRUE(r);
  const std::string ref = payload_text(*r);
  ASSERT_GE(ref.size(), 10u);
  EXPECT_EQ(ref[0], '\x01');
  const std::size_t len = std::size_t(std::uint8_t(ref[1]));
  ASSERT_EQ(ref.size(), 9 + len);
  const std::string name = ref.substr(9);
  EXPECT_EQ(name[0], '@');
  c.send(frame(1, 1, 4, name + ".add", {0x01, 1, 0, 0, 0, 1, 0, 0, 0}));
  r = c.read_frame();
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[7], 2);
  // Released by a oneway frame: the next call finds nothing.
  c.send(frame(4, 1, 5, name + ".~release", {}));
  c.send(frame(1, 1, 6, name + ".add", {0x01, 1, 0, 0, 0, 1, 0, 0, 0}));
  const auto e = parse_error(*c.read_frame());
  EXPECT_EQ(e.call_id, 6u);
  EXPECT_EQ(e.code, 5u);  // NOT_FOUND
  EXPECT_NE(e.message.find(name), std::string::npos) << e.message;
}

// Issue 13: "~release" sent as a request was carried out but never answered; with codec 0 it was
// silently ignored. It is a oneway whatever its codec byte; a request for it is refused unrun.
TEST_F(WireObjects, ReleaseIsAOnewayWhateverItsCodec) {
  RawConn c(uri);
  auto fork = [&](std::uint64_t id) {
    c.send(frame(1, 1, id, "counter.fork", {0x01}));
    const auto r = c.read_frame();
    EXPECT_TRUE(r);
    return payload_text(*r).substr(9);
  };
  const std::string name = fork(1);
  c.send(frame(1, 1, 2, name + ".~release", {}));
  auto e = parse_error(*c.read_frame());
  EXPECT_EQ(e.call_id, 2u);
  EXPECT_EQ(e.code, 3u);
  EXPECT_EQ(e.message, "'~release' is sent as a oneway; as a request it is not carried out");
  c.send(frame(1, 1, 3, name + ".add", {0x01, 1, 0, 0, 0, 1, 0, 0, 0}));
  auto r = c.read_frame();
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[7], 2) << "the object is still there";
  c.send(frame(4, 0, 4, name + ".~release", {}));  // codec 0
  c.send(frame(4, 1, 5, "@999999.~release", {}));  // a name this connection never held
  c.send(frame(1, 1, 6, name + ".add", {0x01, 1, 0, 0, 0, 1, 0, 0, 0}));
  e = parse_error(*c.read_frame());
  EXPECT_EQ(e.call_id, 6u);
  EXPECT_EQ(e.code, 5u);  // released
}

TEST_F(WireObjects, JsonArgumentListsAndReferences) {
  RawConn c(uri);
  c.send(frame(1, 3, 1, "counter.add", text("[2,3]")));
  auto r = c.read_frame();
  ASSERT_TRUE(r);
  EXPECT_EQ(payload_text(*r), "5");
  c.send(frame(1, 3, 2, "counter.touch", text("[]")));
  r = c.read_frame();
  ASSERT_TRUE(r);
  EXPECT_EQ(payload_text(*r), "[]");
  c.send(frame(1, 3, 3, "counter.fork", text("[]")));
  r = c.read_frame();
  ASSERT_TRUE(r);
  const std::string ref = payload_text(*r);
  ASSERT_EQ(ref.rfind(R"({"object":"@)", 0), 0u) << ref;
  const std::string name = ref.substr(11, ref.size() - 13);
  c.send(frame(1, 3, 4, name + ".add", text("[40,2]")));
  r = c.read_frame();
  ASSERT_TRUE(r);
  EXPECT_EQ(payload_text(*r), "42");
}

// "JSON": the answers a stdlib client needs, each refused as INVALID_ARGUMENT with a message that
// says what and where.
TEST_F(Wire, JsonNumbersDuplicatesAndTypesAsThePageSays) {
  RawConn c(uri);
  auto refused = [&](std::uint64_t id, const std::string& json, const std::string& says) {
    c.send(frame(1, 3, id, "add", text(json)));
    const auto e = parse_error(*c.read_frame());
    EXPECT_EQ(e.code, 3u) << json;
    EXPECT_NE(e.message.find(says), std::string::npos) << json << ": " << e.message;
  };
  auto answered = [&](std::uint64_t id, const std::string& json, const std::string& reply) {
    c.send(frame(1, 3, id, "add", text(json)));
    const auto r = c.read_frame();
    ASSERT_TRUE(r);
    EXPECT_EQ((*r)[7], 2) << json << ": " << payload_text(*r);
    EXPECT_EQ(payload_text(*r), reply) << json;
  };
  // Below the smallest double but above 10^-360: zero. Its last digit below 10^-360: refused.
  answered(1, R"({"a":1e-330,"b":1})", R"({"value":1.0})");
  refused(2, R"({"a":1e-400,"b":1})", "outside what a double holds");
  refused(3, R"({"a":1e310,"b":1})", "outside what a double holds");
  // A member named twice, at any depth, whatever the values.
  refused(4, R"({"a":2,"b":3,"a":2})", "member 'a' appears twice");
  // A wrong type names the member and the type it must be.
  refused(5, R"({"a":"2","b":3})", "member 'a' is not a number");
  // NaN and Infinity are read as numbers (and written so: see the page).
  c.send(frame(1, 3, 6, "add", text(R"({"a":Infinity,"b":1})")));
  const auto r = c.read_frame();
  ASSERT_TRUE(r);
  EXPECT_EQ(payload_text(*r), R"({"value":Infinity})");
}

TEST_F(WireObjects, JsonIntegersOutOfRangeNameTheirType) {
  RawConn c(uri);
  for (const char* args : {"[2,3000000000]", "[2,-2147483649]", "[2,2.5]", "[2,true]"}) {
    c.send(frame(1, 3, 1, "counter.add", text(args)));
    const auto e = parse_error(*c.read_frame());
    EXPECT_EQ(e.code, 3u) << args;
    EXPECT_NE(e.message.find("is not an int32 (a whole number from -2147483648 to 2147483647)"),
              std::string::npos)
        << args << ": " << e.message;
    EXPECT_EQ(e.message.find("rapidjson"), std::string::npos) << e.message;
  }
  c.send(frame(1, 3, 2, "counter.add", text("[2147483647,0]")));
  const auto r = c.read_frame();
  ASSERT_TRUE(r);
  EXPECT_EQ(payload_text(*r), "2147483647");
}

// "JSON": the outermost array or object is level 1 of max_depth; a bare number is level 0.
TEST(WireJsonDepth, TheOuterValueCountsAsLevelOne) {
  brine::ServerOptions options;
  options.decode_limits.max_depth = 1;
  brine::Server server(options);
  server.expose<wire_objects::Counter>("counter", std::make_shared<wire_objects::CounterImpl>());
  const std::string uri = server.listen("tcp://127.0.0.1:0");
  server.start();
  RawConn c(uri);
  c.send(frame(1, 3, 1, "counter.add", text("[2,3]")));
  const auto r = c.read_frame();
  ASSERT_TRUE(r);
  EXPECT_EQ(payload_text(*r), "5");
  c.send(frame(1, 3, 2, "counter.add", text("[[2],3]")));
  const auto e = parse_error(*c.read_frame());
  EXPECT_EQ(e.code, 3u);
  EXPECT_NE(e.message.find("nesting deeper than 1"), std::string::npos) << e.message;
}

// "Size limits": lengths stay below 2 GiB, so that every frame is a multiprocessing.connection
// message. A server accepts a limit of 2^31 - 1 and refuses 2^31; a length prefix of 2^31 is
// refused from the prefix alone (nothing allocated), even under the highest limit.
TEST(WireLimits, FrameLengthsStayBelowTwoGibibytes) {
  EXPECT_THROW(brine::Server({.max_frame_size = std::size_t(1) << 31}), std::invalid_argument);
  EXPECT_THROW(brine::Client("tcp://127.0.0.1:1", {.max_frame_size = std::size_t(1) << 31}),
               std::invalid_argument);
  brine_test::TestServer highest({.max_frame_size = (std::size_t(1) << 31) - 1});
  const std::string uri = highest.listen("tcp4");
  RawConn c(uri);
  c.send({0x80, 0x00, 0x00, 0x00});
  const auto e = parse_error(*c.read_frame());
  EXPECT_EQ(e.code, 8u);  // RESOURCE_EXHAUSTED
  EXPECT_TRUE(c.closed_by_peer());
  RawConn d(uri);  // the limit itself is fine: an ordinary frame is served
  d.send(frame(1, 1, 1, "add", cereal_doubles({2.0, 3.0})));
  const auto r = d.read_frame();
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[7], 2);
}

// "Heartbeats, timeouts and cancel": a request waiting for a worker is answered
// DEADLINE_EXCEEDED at its deadline, not when a worker frees up, and is not run.
TEST(WireDeadline, AQueuedRequestIsAnsweredAtItsDeadline) {
  brine_test::TestServer one_worker({.workers = 1});
  RawConn c(one_worker.listen("tcp4"));
  Bytes wait_700{0x01};  // cereal: calc::WaitRequest{milliseconds = 700}
  put_le32(wait_700, 700);
  c.send(frame(1, 1, 1, "wait", wait_700));
  const auto t0 = std::chrono::steady_clock::now();
  c.send(timed(1, 1, 2, "add", 100, cereal_doubles({2.0, 3.0})));
  const auto first = c.read_frame();
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(first);
  const auto e = parse_error(*first);
  EXPECT_EQ(e.call_id, 2u);
  EXPECT_EQ(e.code, 4u);  // DEADLINE_EXCEEDED
  EXPECT_GE(took, 90ms);
  EXPECT_LT(took, 500ms);  // the worker is busy until 700 ms
  const auto second = c.read_frame();
  ASSERT_TRUE(second);
  EXPECT_EQ((*second)[7], 2);
  EXPECT_EQ(get_be(*second, 12, 8), 1u);
}

// "ZeroMQ": a peer must answer ZMTP PINGs; one that answers nothing is dropped after about 4 s
// (a PING every second, 3 s to answer). Spoken by hand: the ZMTP 3.1 greeting and READY.
TEST(WireZmq, APeerThatDoesNotAnswerPingsIsDroppedInAboutFourSeconds) {
  brine_test::TestServer server;
  RawConn c(server.listen("zmq_tcp"));
  Bytes greeting{0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0x7F, 3, 1, 'N', 'U', 'L', 'L'};
  greeting.resize(64, 0);  // mechanism padded to 20 bytes, as-server 0, filler
  c.send(greeting);
  const std::string type = "Socket-Type";
  const std::string dealer = "DEALER";
  Bytes ready{0x04, 0, 5, 'R', 'E', 'A', 'D', 'Y', std::uint8_t(type.size())};
  ready.insert(ready.end(), type.begin(), type.end());
  put_be(ready, dealer.size(), 4);
  ready.insert(ready.end(), dealer.begin(), dealer.end());
  ready[1] = std::uint8_t(ready.size() - 2);
  c.send(ready);
  ASSERT_TRUE(c.read(64));  // the server's greeting
  const auto t0 = std::chrono::steady_clock::now();
  // Read (the server's READY, then its PINGs) until it hangs up.
  while (c.read(1, 10s)) {
  }
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, 2s);
  EXPECT_LT(took, 8s);
}

// "JSON", NaN and infinities: with json_strict a server reads and writes RFC 8259 only.
TEST(WireJsonStrict, NaNAndInfinityAreRefusedBothWays) {
  brine::ServerOptions options;
  options.decode_limits.json_strict = true;
  brine_test::TestServer strict(options);
  RawConn c(strict.listen("tcp4"));
  for (const char* json :
       {R"({"a":NaN,"b":1})", R"({"a":Infinity,"b":1})", R"({"a":-Infinity,"b":1})"}) {
    c.send(frame(1, 3, 1, "add", text(json)));
    const auto e = parse_error(*c.read_frame());
    EXPECT_EQ(e.code, 3u) << json;  // INVALID_ARGUMENT
    EXPECT_NE(e.message.find("json_strict"), std::string::npos) << e.message;
  }
  // A reply that would hold one (1e308 + 1e308 is Infinity) is an error instead.
  c.send(frame(1, 3, 2, "add", text(R"({"a":1e308,"b":1e308})")));
  const auto e = parse_error(*c.read_frame());
  EXPECT_EQ(e.code, 13u);  // INTERNAL
  EXPECT_NE(e.message.find("strict JSON"), std::string::npos) << e.message;
  // Finite numbers pass.
  c.send(frame(1, 3, 3, "add", text(R"({"a":1.5,"b":2})")));
  const auto r = c.read_frame();
  ASSERT_TRUE(r);
  EXPECT_EQ(payload_text(*r), R"({"value":3.5})");
}

// A strict client refuses to write NaN (locally, nothing sent) and to read an Infinity reply.
TEST_F(Wire, AStrictClientNeitherWritesNorReadsNaN) {
  brine::ClientOptions o;
  o.codecs = {"json"};
  o.decode_limits.json_strict = true;
  brine::Client client(uri, o);
  const auto nan = client.try_call(calc::kAdd, {std::nan(""), 1});
  EXPECT_EQ(nan.code(), brine::StatusCode::invalid_argument);
  EXPECT_NE(nan.status().message.find("json_strict"), std::string::npos) << nan.status().message;
  const auto inf = client.try_call(calc::kAdd, {1e308, 1e308});
  EXPECT_FALSE(inf.ok());
  EXPECT_NE(inf.status().message.find("json_strict"), std::string::npos) << inf.status().message;
  EXPECT_EQ(client.call(calc::kAdd, {1, 2}).value, 3);
}

TEST_F(Wire, WithoutJsonStrictInfinityIsABareToken) {
  RawConn c(uri);
  c.send(frame(1, 3, 1, "add", text(R"({"a":1e308,"b":1e308})")));
  const auto r = c.read_frame();
  ASSERT_TRUE(r);
  EXPECT_EQ(payload_text(*r), R"({"value":Infinity})");
}

// "Which codec a request may use": the refusal's type field lists the codecs, in decimal.
TEST(WireCodecRefusal, TheTypeFieldListsTheServedCodecs) {
  brine_test::TestServer only_protobuf({.codecs = {"protobuf"}});
  RawConn c(only_protobuf.listen("tcp4"));
  c.send(frame(1, 1, 1, "add", cereal_doubles({2.0, 3.0})));
  auto e = parse_error(*c.read_frame());
  EXPECT_EQ(e.code, 12u);  // UNIMPLEMENTED
  EXPECT_EQ(e.type, "brine.codecs:2");
  EXPECT_NE(e.message.find("is not served in codec 'cereal' by this server; it is served in "
                           "protobuf"),
            std::string::npos)
      << e.message;
  // An id nobody knows: the same answer.
  c.send(frame(1, 77, 2, "add", cereal_doubles({2.0, 3.0})));
  e = parse_error(*c.read_frame());
  EXPECT_EQ(e.code, 12u);
  EXPECT_EQ(e.type, "brine.codecs:2");
  EXPECT_NE(e.message.find("codec#77"), std::string::npos) << e.message;
  // An unknown method is NOT_FOUND whatever its codec.
  c.send(frame(1, 1, 3, "nosuch", cereal_doubles({2.0})));
  EXPECT_EQ(parse_error(*c.read_frame()).code, 5u);
}

// Issue 13: a method's refusal printed a raw std::__cxx11::basic_string<...> signature. It shows
// the method as declared, in the words of the contract.
TEST_F(WireObjects, ACodecRefusalShowsTheMethodAsDeclared) {
  RawConn c(uri);
  c.send(frame(1, 2, 1, "counter.greet", {}));
  const auto e = parse_error(*c.read_frame());
  EXPECT_EQ(e.code, 12u);
  EXPECT_NE(e.message.find("method 'counter.greet' (std::string greet(std::string)) is not "
                           "served in codec 'protobuf'"),
            std::string::npos)
      << e.message;
  EXPECT_EQ(e.message.find("__cxx11"), std::string::npos) << e.message;
  EXPECT_EQ(e.type, "brine.codecs:1,3");
}

TEST_F(WireObjects, MissingObjectAndMethodMessages) {
  RawConn c(uri);
  c.send(frame(1, 3, 1, "nobody.add", text("[1,2]")));
  auto e = parse_error(*c.read_frame());
  EXPECT_EQ(e.code, 5u);
  EXPECT_EQ(e.message, "no method 'nobody.add' and no object 'nobody'");
  c.send(frame(1, 3, 2, "counter.mul", text("[1,2]")));
  e = parse_error(*c.read_frame());
  EXPECT_EQ(e.code, 5u);
  EXPECT_EQ(e.message, "object 'counter' (Counter) has no method 'mul'");
  c.send(frame(1, 2, 3, "counter.add", {}));  // protobuf: int arguments cannot use it
  e = parse_error(*c.read_frame());
  EXPECT_EQ(e.code, 12u);
}

}  // namespace
