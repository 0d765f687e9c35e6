// Codec contract tests: each body is written once and runs for both codecs (typed tests).
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <malloc.h>

#include <atomic>
#include <brine/codecs/cereal.hpp>
#include <brine/codecs/json.hpp>
#include <brine/codecs/protobuf.hpp>
#include <cereal/archives/portable_binary.hpp>
#include <cereal/types/memory.hpp>  // must not make pointers carriable
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <deque>
#include <list>
#include <new>
#include <random>
#include <sstream>

#include "memory.hpp"
#include "test_messages.pb.h"

// --- allocation watch: the largest single allocation while armed ---------------------------------
// Under AddressSanitizer the replacement operators would fight ASan's own; there the watch is
// off (ASan still catches any misuse of what is allocated).
#if defined(__SANITIZE_ADDRESS__)
#define BRINE_WATCH_ALLOCATIONS 0
#else
#define BRINE_WATCH_ALLOCATIONS 1
#endif
namespace {
std::atomic<bool> g_watch{false};
std::atomic<std::size_t> g_largest{0};
[[maybe_unused]] void note(std::size_t n) {
  if (!g_watch.load(std::memory_order_relaxed)) return;
  std::size_t prev = g_largest.load(std::memory_order_relaxed);
  while (n > prev && !g_largest.compare_exchange_weak(prev, n)) {
  }
}
}  // namespace

#if BRINE_WATCH_ALLOCATIONS
// Replacement operators pair malloc with free by design; GCC cannot see that.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t n) {
  note(n);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  note(n);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
#pragma GCC diagnostic pop
#endif

namespace {

using brine::Buffer;
using brine::CodecId;
using brine::DecodeLimits;
using brine::RpcError;
using brine::StatusCode;

// --- cereal types ---
struct Inner {
  std::string name;
  std::vector<std::int64_t> values;
  bool operator==(const Inner&) const = default;
  template <class A>
  void serialize(A& ar) {
    ar(CEREAL_NVP(name), CEREAL_NVP(values));
  }
};

enum class Color : std::uint8_t { red, green };

struct Everything {
  std::int32_t i32 = 0;
  std::int64_t i64 = 0;
  std::uint32_t u32 = 0;
  std::uint64_t u64 = 0;
  double d = 0;
  float f = 0;
  bool flag = false;
  Color color = Color::red;
  std::string text;
  std::vector<Inner> inners;
  std::map<std::string, Inner> by_name;
  std::optional<Inner> single;
  std::variant<int, std::string> either;
  std::array<std::uint16_t, 3> triple{};
  std::vector<std::vector<std::string>> grid;
  std::unordered_map<int, std::set<std::string>> index;
  bool operator==(const Everything&) const = default;
  template <class A>
  void serialize(A& ar) {
    ar(i32, i64, u32, u64, d, f, flag, color, text, inners, by_name, single, either, triple, grid,
       index);
  }
};

struct Node {
  std::vector<Node> kids;
  template <class A>
  void serialize(A& ar) {
    ar(kids);
  }
};

static_assert(brine::Serializable<Everything>);
static_assert(brine::Serializable<brine_test::Everything>);
// Pointers are not accepted on the wire, even with cereal's memory header included.
static_assert(!brine::Serializable<std::shared_ptr<int>>);
static_assert(!brine::Serializable<std::unique_ptr<int>>);
static_assert(!brine::Serializable<int*>);
// Pointers nested inside a carried type fail when encode/decode is instantiated: see
// tests/compile_fail/.

// --- the two cases ---
struct CerealCase {
  static constexpr CodecId codec = CodecId::cereal;
  static constexpr const char* name = "cereal";
  using Value = Everything;
  using Tree = Node;
  static Value sample() {
    Value v;
    v.i32 = -123456;
    v.i64 = -(std::int64_t(1) << 40);
    v.u32 = 0xDEADBEEF;
    v.u64 = ~std::uint64_t(0);
    v.d = 3.141592653589793;
    v.f = -2.5f;
    v.flag = true;
    v.color = Color::green;
    v.text = std::string("h\0llo \xC3\xA9", 9);
    v.inners = {{"a", {1, 2, 3}}, {"", {}}, {"c", {-1}}};
    v.by_name = {{"x", {"x", {42}}}, {"y", {"y", {}}}};
    v.single = Inner{"s", {7}};
    v.either = std::string("variant");
    v.triple = {1, 2, 65535};
    v.grid = {{"a", "b"}, {}, {"c"}};
    v.index = {{1, {"one", "uno"}}, {2, {}}};
    return v;
  }
  static bool equal(const Value& a, const Value& b) { return a == b; }
  static Tree nested(int depth) {
    Tree root;
    Tree* t = &root;
    for (int i = 1; i < depth; ++i) {
      t->kids.emplace_back();
      t = &t->kids.back();
    }
    return root;
  }
  // 100 bytes: the byte-order flag, then a vector<Inner> size of 2^32, then padding.
  static std::vector<std::byte> size_claim_attack() {
    std::vector<std::byte> p(100, std::byte{0});
    p[0] = std::byte{1};
    const std::uint64_t claim = std::uint64_t(1) << 32;
    for (int i = 0; i < 8; ++i) p[std::size_t(1 + i)] = std::byte(claim >> (8 * i));
    return p;
  }
  using AttackTarget = std::vector<Inner>;
};

struct ProtobufCase {
  static constexpr CodecId codec = CodecId::protobuf;
  static constexpr const char* name = "protobuf";
  using Value = brine_test::Everything;
  using Tree = brine_test::Tree;
  static Value sample() {
    Value v;
    v.set_i32(-123456);
    v.set_i64(-(std::int64_t(1) << 40));
    v.set_u32(0xDEADBEEF);
    v.set_u64(~std::uint64_t(0));
    v.set_d(3.141592653589793);
    v.set_f(-2.5f);
    v.set_flag(true);
    v.set_text("hello \xC3\xA9");
    v.set_raw(std::string("\0\1\2", 3));
    auto* a = v.add_inners();
    a->set_name("a");
    a->add_values(1);
    a->add_values(-2);
    v.add_inners();
    (*v.mutable_by_name())["x"].set_name("x");
    v.mutable_single()->add_values(7);
    return v;
  }
  static bool equal(const Value& a, const Value& b) {
    return google::protobuf::util::MessageDifferencer::Equals(a, b);
  }
  static Tree nested(int depth) {
    Tree root;
    Tree* t = &root;
    for (int i = 1; i < depth; ++i) t = t->add_children();
    return root;
  }
  // 100 bytes: field 10 (inners, length-delimited) claiming 2^31-1 bytes, then padding.
  static std::vector<std::byte> size_claim_attack() {
    std::vector<std::byte> p(100, std::byte{0});
    const std::uint8_t head[] = {0x52, 0xFF, 0xFF, 0xFF, 0xFF, 0x07};
    for (std::size_t i = 0; i < sizeof head; ++i) p[i] = std::byte{head[i]};
    return p;
  }
  using AttackTarget = brine_test::Everything;
};

// The same values through the json codec: cereal's JSON archive, and protobuf's JSON mapping.
struct JsonCase : CerealCase {
  static constexpr CodecId codec = CodecId::json;
  static constexpr const char* name = "json";
  // cereal's JSON archive cannot carry NUL inside strings (JsonCodec.NulInStringsIsRefused).
  static Value sample() {
    Value v = CerealCase::sample();
    v.text = "h\x01llo \xC3\xA9";
    return v;
  }
  // Deeper than the limit; the encoder would write it, protobuf's JSON printer would not.
  static Buffer deep() {
    Buffer b;
    const std::string s = std::string(5000, '[') + std::string(5000, ']');
    b.append(s.data(), s.size());
    return b;
  }
  // 100 bytes of '[': nesting far past the limit, refused before anything is built.
  static std::vector<std::byte> size_claim_attack() {
    return std::vector<std::byte>(100, std::byte{'['});
  }
};

struct JsonProtobufCase : ProtobufCase {
  static constexpr CodecId codec = CodecId::json;
  static constexpr const char* name = "json_protobuf";
  static Buffer deep() { return JsonCase::deep(); }
  static std::vector<std::byte> size_claim_attack() { return JsonCase::size_claim_attack(); }
};

template <class T>
Buffer encode(CodecId codec, const T& v) {
  Buffer b;
  brine::Serialization<T>::encode(codec, v, b);
  return b;
}

template <class T>
StatusCode decode_status(CodecId codec, std::span<const std::byte> in, DecodeLimits limits = {}) {
  try {
    (void)brine::Serialization<T>::decode(codec, in, limits);
    return StatusCode::ok;
  } catch (const RpcError& e) {
    return e.code();
  }
}

template <class C>
class CodecTest : public testing::Test {};
using Cases = testing::Types<CerealCase, ProtobufCase, JsonCase, JsonProtobufCase>;
class CaseNames {
 public:
  template <class T>
  static std::string GetName(int) {
    return T::name;
  }
};
TYPED_TEST_SUITE(CodecTest, Cases, CaseNames);

TYPED_TEST(CodecTest, RoundTripOfEveryKindOfField) {
  using C = TypeParam;
  using V = typename C::Value;
  const V in = C::sample();
  const Buffer b = encode(C::codec, in);
  const V out = brine::Serialization<V>::decode(C::codec, b.bytes(), {});
  EXPECT_TRUE(C::equal(in, out));
}

TYPED_TEST(CodecTest, RoundTripOfDefaults) {
  using C = TypeParam;
  using V = typename C::Value;
  const V in{};
  const Buffer b = encode(C::codec, in);
  EXPECT_TRUE(C::equal(in, brine::Serialization<V>::decode(C::codec, b.bytes(), {})));
}

TYPED_TEST(CodecTest, EncodeAppendsAfterExistingBytes) {
  using C = TypeParam;
  using V = typename C::Value;
  Buffer b;
  b.append("HEADER", 6);
  brine::Serialization<V>::encode(C::codec, C::sample(), b);
  const Buffer alone = encode(C::codec, C::sample());
  ASSERT_EQ(b.size(), 6 + alone.size());
  EXPECT_EQ(std::memcmp(b.data(), "HEADER", 6), 0);
}

TYPED_TEST(CodecTest, SizeClaimAttackFailsWithoutAllocating) {
  using C = TypeParam;
  using T = typename C::AttackTarget;
  const auto attack = C::size_claim_attack();
  ASSERT_EQ(attack.size(), 100u);
  g_largest = 0;
  g_watch = true;
  const StatusCode code = decode_status<T>(C::codec, attack);
  g_watch = false;
  EXPECT_EQ(code, StatusCode::invalid_argument);
  if (BRINE_WATCH_ALLOCATIONS) {
    EXPECT_LT(g_largest.load(), std::size_t(64 * 1024)) << "largest allocation while decoding";
  }
}

TYPED_TEST(CodecTest, TruncationsNeverCrash) {
  using C = TypeParam;
  using V = typename C::Value;
  const Buffer b = encode(C::codec, C::sample());
  int failures = 0;
  for (std::size_t n = 0; n < b.size(); ++n) {
    const StatusCode code = decode_status<V>(C::codec, {b.data(), n});
    EXPECT_TRUE(code == StatusCode::ok || code == StatusCode::invalid_argument) << n;
    failures += code != StatusCode::ok;
  }
  EXPECT_GT(failures, 0);
}

TYPED_TEST(CodecTest, RandomBytesNeverCrash) {
  using C = TypeParam;
  using V = typename C::Value;
  std::mt19937 rng(42);
  const Buffer good = encode(C::codec, C::sample());
  for (int round = 0; round < 2000; ++round) {
    // Mutate a valid encoding: flips, insertions and random lengths reach deeper than noise.
    std::vector<std::byte> data(good.data(), good.data() + good.size());
    const int edits = 1 + int(rng() % 8);
    for (int e = 0; e < edits && !data.empty(); ++e) {
      data[rng() % data.size()] = std::byte(rng());
    }
    if (round % 3 == 0) data.resize(rng() % (data.size() + 1));
    g_largest = 0;
    g_watch = true;
    const StatusCode code = decode_status<V>(C::codec, data);
    g_watch = false;
    EXPECT_TRUE(code == StatusCode::ok || code == StatusCode::invalid_argument);
    if (BRINE_WATCH_ALLOCATIONS) {
      EXPECT_LT(g_largest.load(), std::size_t(1) << 20) << "round " << round;
    }
  }
}

TYPED_TEST(CodecTest, NestingLimit) {
  using C = TypeParam;
  using Tree = typename C::Tree;
  const Buffer shallow = encode(C::codec, C::nested(20));
  EXPECT_EQ(decode_status<Tree>(C::codec, shallow.bytes()), StatusCode::ok);
  Buffer deep;
  if constexpr (requires { C::deep(); }) {
    deep = C::deep();
  } else {
    deep = encode(C::codec, C::nested(5000));
  }
  EXPECT_EQ(decode_status<Tree>(C::codec, deep.bytes()), StatusCode::invalid_argument);
}

TEST(CerealCodec, NestingLimitIsConfigurable) {
  const Buffer shallow = encode(CodecId::cereal, CerealCase::nested(20));
  DecodeLimits tight;
  tight.max_depth = 10;
  EXPECT_EQ(decode_status<Node>(CodecId::cereal, shallow.bytes(), tight),
            StatusCode::invalid_argument);
}

TYPED_TEST(CodecTest, TrailingGarbageIsRejected) {
  using C = TypeParam;
  using V = typename C::Value;
  Buffer b = encode(C::codec, C::sample());
  // 0xFF 0xFF ...: for protobuf an unfinished varint tag; for cereal trailing bytes.
  b.append("\xFF\xFF\xFF", 3);
  EXPECT_EQ(decode_status<V>(C::codec, b.bytes()), StatusCode::invalid_argument);
}

// --- cereal specifics ---
TEST(CerealCodec, MatchesStockPortableBinaryArchive) {
  const Everything v = CerealCase::sample();
  std::ostringstream os;
  {
    cereal::PortableBinaryOutputArchive ar(os);
    ar(v);
  }
  const Buffer ours = encode(CodecId::cereal, v);
  ASSERT_EQ(os.str().size(), ours.size());
  EXPECT_EQ(std::memcmp(os.str().data(), ours.data(), ours.size()), 0);
  // And stock cereal reads ours.
  std::istringstream is(std::string(reinterpret_cast<const char*>(ours.data()), ours.size()));
  Everything back;
  {
    cereal::PortableBinaryInputArchive ar(is);
    ar(back);
  }
  EXPECT_EQ(back, v);
}

TEST(CerealCodec, ReadsBigEndianData) {
  std::ostringstream os;
  {
    cereal::PortableBinaryOutputArchive ar(
        os, cereal::PortableBinaryOutputArchive::Options::BigEndian());
    ar(CerealCase::sample());
  }
  const std::string s = os.str();
  const auto out = brine::Serialization<Everything>::decode(
      CodecId::cereal, {reinterpret_cast<const std::byte*>(s.data()), s.size()}, {});
  EXPECT_EQ(out, CerealCase::sample());
}

TEST(CerealCodec, BoolOtherThanZeroOrOneIsRejected) {
  const std::vector<std::byte> p = {std::byte{1}, std::byte{2}};
  EXPECT_EQ(decode_status<bool>(CodecId::cereal, p), StatusCode::invalid_argument);
  const std::vector<std::byte> ok = {std::byte{1}, std::byte{1}};
  EXPECT_EQ(decode_status<bool>(CodecId::cereal, ok), StatusCode::ok);
}

TEST(CerealCodec, BadByteOrderFlag) {
  const std::vector<std::byte> p = {std::byte{7}, std::byte{0}, std::byte{0}, std::byte{0},
                                    std::byte{0}};
  EXPECT_EQ(decode_status<std::int32_t>(CodecId::cereal, p), StatusCode::invalid_argument);
}

TEST(CerealCodec, StringClaimLargerThanPayload) {
  std::vector<std::byte> p(20, std::byte{0});
  p[0] = std::byte{1};
  p[1] = std::byte{0xFF};  // size 255 with 11 bytes left
  EXPECT_EQ(decode_status<std::string>(CodecId::cereal, p), StatusCode::invalid_argument);
}

TEST(CerealCodec, CumulativeClaimsAreBounded) {
  // Each claim alone fits in the bytes left, but together they claim more elements than the
  // payload has bytes: the second claim is refused before anything is resized.
  std::vector<std::byte> p(1 + 8 + 8 + 60, std::byte{0});
  p[0] = std::byte{1};
  p[1] = std::byte{60};  // outer: 60 inner vectors (68 bytes left)
  p[9] = std::byte{59};  // first inner: 59 bytes (60 left, but only 17 of the budget)
  try {
    (void)brine::Serialization<std::vector<std::vector<std::uint8_t>>>::decode(CodecId::cereal, p,
                                                                               {});
    FAIL() << "decoded";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::invalid_argument);
    EXPECT_NE(e.message().find("claimed size 59"), std::string::npos) << e.message();
  }
}

TEST(CerealCodec, BadVariantIndexIsInvalidArgument) {
  const Buffer b = encode(CodecId::cereal, std::variant<int, std::string>(5));
  std::vector<std::byte> p(b.data(), b.data() + b.size());
  p[1] = std::byte{9};  // variant index 9 of 2
  EXPECT_EQ((decode_status<std::variant<int, std::string>>(CodecId::cereal, p)),
            StatusCode::invalid_argument);
}

TEST(ProtobufCodec, MissingRequiredLikeGarbageIsInvalidArgument) {
  const std::vector<std::byte> p = {std::byte{0x08}};  // tag of field 1 without its varint
  EXPECT_EQ(decode_status<brine_test::Everything>(CodecId::protobuf, p),
            StatusCode::invalid_argument);
}

// --- the json codec's shapes (docs/wire-format.md, "JSON") and its hostile-input checks ---------
std::string json_of(const Buffer& b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}
std::span<const std::byte> bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

TEST(JsonCodec, ShapesAreTheDocumentedOnes) {
  EXPECT_EQ(json_of(encode(CodecId::json, Inner{"n", {1, 2}})), R"({"name":"n","values":[1,2]})");
  EXPECT_EQ(json_of(encode(CodecId::json, std::int32_t(-7))), "-7");
  EXPECT_EQ(json_of(encode(CodecId::json, std::string("\"q\"\n"))), R"("\"q\"\n")");
  EXPECT_EQ(json_of(encode(CodecId::json, std::vector<double>{0.5, 2})), "[0.5,2.0]");
  using Args = brine::detail::ArgPack<int, std::string, Inner>;
  EXPECT_EQ(json_of(encode(CodecId::json, Args{{2, "x", Inner{"i", {}}}})),
            R"([2,"x",{"name":"i","values":[]}])");
  EXPECT_EQ(json_of(encode(CodecId::json, brine::detail::ArgPack<>{})), "[]");
  EXPECT_EQ(json_of(encode(CodecId::json, brine::detail::ObjectName{"@3"})), R"({"object":"@3"})");
  // A protobuf message in an argument list: its own JSON mapping, with the .proto names.
  brine_test::Inner m;
  m.set_name("pb");
  m.add_values(4);
  EXPECT_EQ(json_of(encode(CodecId::json, brine::detail::ArgPack<brine_test::Inner>{{m}})),
            R"([{"name":"pb","values":["4"]}])");  // protobuf's mapping: int64 as a string
}

TEST(JsonCodec, ReadsWhatOtherLanguagesWrite) {
  // Members in any order, whitespace, unknown members ignored.
  const auto inner = brine::Serialization<Inner>::decode(
      CodecId::json, bytes(" { \"values\" : [3] , \"extra\": null, \"name\": \"x\" } "), {});
  EXPECT_EQ(inner.name, "x");
  EXPECT_EQ(inner.values, std::vector<std::int64_t>{3});
  using Args = brine::detail::ArgPack<int, std::string>;
  const auto args =
      brine::Serialization<Args>::decode(CodecId::json, bytes(R"([ 5, "five" ])"), {});
  EXPECT_EQ(std::get<0>(args.values), 5);
  EXPECT_EQ(std::get<1>(args.values), "five");
}

TEST(JsonCodec, MalformedTextIsInvalidArgument) {
  using Args = brine::detail::ArgPack<int, std::string>;
  for (const std::string& bad : {
           std::string(""),                 // empty
           std::string("[1, \"a\"] x"),     // trailing garbage
           std::string("[1, \"a\"]\0", 9),  // a NUL after the value
           std::string("[1, \"\xFF\"]"),    // not UTF-8
           std::string("[1]"),              // too few arguments
           std::string("[1, \"a\", 2]"),    // too many
           std::string("{\"0\": 1}"),       // not an array
           std::string("[\"1\", \"a\"]"),   // wrong type
           "[" + std::string(140, '4') +
               "3e300, \"a\"]",                       // beyond a double (rapidjson 1.1 overread)
           "[" + std::string(101, '1') + ", \"a\"]",  // over 100 digits
           std::string("[1, \"a\""),                  // truncated
       }) {
    EXPECT_EQ(decode_status<Args>(CodecId::json, bytes(bad)), StatusCode::invalid_argument) << bad;
  }
}

TEST(JsonCodec, EveryDoubleStillParses) {
  for (const char* text :
       {"1.7976931348623157e308", "-1.7976931348623157e308", "5e-324", "2.2250738585072014e-308",
        "123456789012345678901234567890", "0.1", "1e310", "0.000001e-300"}) {
    const std::string t(text);
    const bool in_range = t != "1e310";  // 1e310: its leading digit lies above 10^310
    EXPECT_EQ(decode_status<double>(CodecId::json, bytes(t)) == StatusCode::ok, in_range) << t;
  }
}

// rapidjson 1.1 turns a zero significand with a decimal exponent beyond +-22 into garbage ("0e40"
// into -2.4e229 on this machine); the codec hands it every zero as 0.0 or -0.0 instead.
TEST(JsonCodec, EveryZeroIsZero) {
  const std::string zeros40(40, '0');
  for (const std::string& text :
       {std::string("0e40"), std::string("-0e40"), std::string("0E+300"), std::string("0e-400"),
        "0." + zeros40, "-0." + zeros40, "0." + zeros40 + "e-40", std::string("0.0"),
        std::string("-0.0"), std::string("0"), std::string("-0"), "0" + std::string(".0e93")}) {
    const double d = brine::Serialization<double>::decode(CodecId::json, bytes(text), {});
    EXPECT_EQ(d, 0.0) << text;
    // -0 written as an integer is the integer 0; with a fraction or an exponent it is -0.0.
    EXPECT_EQ(std::signbit(d), text.starts_with("-") && text != "-0") << text;
  }
  // In argument lists (their own parse), inside structs and beside strings that look like zeros.
  using Args = brine::detail::ArgPack<double, std::string, std::vector<double>>;
  const auto args = brine::Serialization<Args>::decode(
      CodecId::json, bytes(R"([-0e93, "0e93 \" 0.000e99", [1.5, 0.0e-99, 2e2]])"), {});
  EXPECT_TRUE(std::signbit(std::get<0>(args.values)) && std::get<0>(args.values) == 0.0);
  EXPECT_EQ(std::get<1>(args.values), R"(0e93 " 0.000e99)");
  EXPECT_EQ(std::get<2>(args.values), (std::vector<double>{1.5, 0.0, 200.0}));
  const auto inner = brine::Serialization<Inner>::decode(
      CodecId::json, bytes(R"({"name": "0.0e50", "values": [0, -0]})"), {});
  EXPECT_EQ(inner.name, "0.0e50");
  EXPECT_EQ(inner.values, (std::vector<std::int64_t>{0, 0}));
  // An integer field does not take a zero written as a double, as for any other double.
  EXPECT_EQ(decode_status<std::int32_t>(CodecId::json, bytes("0e5")), StatusCode::invalid_argument);
}

// rapidjson 1.1 gathers 20 significant digits into a uint64 and rounds up on the 21st: after
// "18446744073709551615" that wraps to zero (garbage, or UB). The codec hands it such numbers
// rounded by std::from_chars instead; every long number reads as the nearest double.
TEST(JsonCodec, LongNumbersAreTheNearestDouble) {
  const std::string max = "18446744073709551615";
  for (const std::string& text :
       {"0.000000000000000000000000" + max + "744073709551615", "-" + max + "7.5", max + "9",
        max + "5e-3", std::string("3.14159265358979323846264338327950288"),
        std::string("-2.718281828459045235360287e-7"), "1." + std::string(60, '0') + "1",
        std::string("1.23456789012345678901e-320")}) {
    double expected = 0;
    std::from_chars(text.data(), text.data() + text.size(), expected);
    EXPECT_EQ(brine::Serialization<double>::decode(CodecId::json, bytes(text), {}), expected)
        << text;
    using Args = brine::detail::ArgPack<double>;
    EXPECT_EQ(
        std::get<0>(
            brine::Serialization<Args>::decode(CodecId::json, bytes("[" + text + "]"), {}).values),
        expected)
        << text;
  }
  // Integers of up to 20 digits are left to rapidjson (it reads them exactly where they fit).
  EXPECT_EQ(brine::Serialization<std::uint64_t>::decode(CodecId::json, bytes(max), {}),
            18446744073709551615u);
  // Too small for a double: zero, keeping the sign; too large: refused.
  const double tiny = brine::Serialization<double>::decode(
      CodecId::json, bytes("-1.23456789012345678901e-330"), {});
  EXPECT_TRUE(tiny == 0.0 && std::signbit(tiny));
  EXPECT_EQ(decode_status<double>(CodecId::json, bytes("1.797693134862315808e308")),
            StatusCode::invalid_argument);
}

TEST(JsonCodec, NestingLimitIsCheckedBeforeParsing) {
  // Far deeper than any recursive parser's stack: refused by the iterative check.
  const std::string deep = std::string(1 << 20, '[') + std::string(1 << 20, ']');
  EXPECT_EQ(decode_status<std::vector<int>>(CodecId::json, bytes(deep)),
            StatusCode::invalid_argument);
  const std::string three = "[[[1]]]";
  using V = std::vector<std::vector<std::vector<int>>>;
  EXPECT_EQ(decode_status<V>(CodecId::json, bytes(three), {.max_depth = 4}), StatusCode::ok);
  EXPECT_EQ(decode_status<V>(CodecId::json, bytes(three), {.max_depth = 2}),
            StatusCode::invalid_argument);
}

TEST(JsonCodec, NulInStringsIsRefusedNotCutShort) {
  EXPECT_EQ(decode_status<std::string>(CodecId::json, bytes(R"("a\u0000b")")),
            StatusCode::invalid_argument);
  EXPECT_THROW(encode(CodecId::json, std::string("a\0b", 3)), RpcError);
  // A protobuf message keeps it.
  brine_test::Inner m;
  m.set_name(std::string("a\0b", 3));
  const Buffer b = encode(CodecId::json, m);
  EXPECT_EQ(brine::Serialization<brine_test::Inner>::decode(CodecId::json, b.bytes(), {}).name(),
            std::string("a\0b", 3));
}

TEST(JsonCodec, AMemberNamedTwiceIsRefusedInBothFamilies) {
  using brine::StatusCode;
  for (const char* t : {R"({"name":"a","values":[],"name":"b"})",
                        R"({"name":"a","values":[],"x":{"k":1,"k":1}})"}) {
    EXPECT_EQ(decode_status<Inner>(CodecId::json, bytes(t)), StatusCode::invalid_argument) << t;
  }
  EXPECT_EQ(
      decode_status<brine_test::Everything>(CodecId::json, bytes(R"({"text":"a","text":"b"})")),
      StatusCode::invalid_argument);
  EXPECT_EQ(decode_status<brine_test::Everything>(
                CodecId::json, bytes(R"({"inners":[{"name":"x"},{"name":"y","name":"z"}]})")),
            StatusCode::invalid_argument);
  // The same name in sibling or nested objects is not a repeat.
  EXPECT_EQ(decode_status<brine_test::Everything>(
                CodecId::json, bytes(R"({"inners":[{"name":"x"},{"name":"y"}],"text":"t"})")),
            StatusCode::ok);
  EXPECT_EQ(decode_status<Inner>(CodecId::json,
                                 bytes(R"({"name":"a","values":[1],"o":{"name":{"name":1}}})")),
            StatusCode::ok);
}

TEST(JsonCodec, StringsThatAreNotUtf8DoNotEncode) {
  try {
    (void)encode(CodecId::json, std::string("\xC3"));
    FAIL() << "encoded";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.code(), StatusCode::internal);
  }
}

}  // namespace

// --- decoded size: a frame of valid size that would decode into far more memory ----------------

namespace {

template <class T>
brine::Status decode_with_limit(CodecId c, const Buffer& b, std::uint64_t limit) {
  brine::DecodeLimits limits;
  limits.max_decoded_bytes = limit;
  try {
    (void)brine::Serialization<T>::decode(c, b.bytes(), limits);
    return {};
  } catch (const RpcError& e) {
    return e.status();
  }
}

}  // namespace

TEST(DecodedSize, CerealNodeContainersAreChargedPerElement) {
  // 100,000 one-byte elements: 100 KB on the wire, ~2.4 MB as list nodes (charged 48 bytes each).
  const std::list<std::uint8_t> list(100000, 7);
  const Buffer b = encode(CodecId::cereal, list);
  const auto refused = decode_with_limit<std::list<std::uint8_t>>(CodecId::cereal, b, 1 << 20);
  EXPECT_EQ(refused.code, StatusCode::invalid_argument);
  EXPECT_NE(refused.message.find("max_decoded_bytes"), std::string::npos) << refused.message;
  EXPECT_TRUE((decode_with_limit<std::list<std::uint8_t>>(CodecId::cereal, b, 8 << 20)).ok());
}

TEST(DecodedSize, CerealContiguousDataCostsItsBytes) {
  // A million bytes as a vector or a string: charged what they take, so a 2 MiB limit passes.
  const Buffer v = encode(CodecId::cereal, std::vector<std::uint8_t>(1000000, 1));
  EXPECT_TRUE((decode_with_limit<std::vector<std::uint8_t>>(CodecId::cereal, v, 2 << 20)).ok())
      << decode_with_limit<std::vector<std::uint8_t>>(CodecId::cereal, v, 2 << 20).to_string();
  const Buffer s = encode(CodecId::cereal, std::string(1000000, 's'));
  EXPECT_TRUE((decode_with_limit<std::string>(CodecId::cereal, s, 2 << 20)).ok());
  const Buffer d = encode(CodecId::cereal, std::vector<double>(100000, 1.5));
  EXPECT_TRUE((decode_with_limit<std::vector<double>>(CodecId::cereal, d, 2 << 20)).ok());
}

TEST(DecodedSize, ProtobufEmptySubMessagesAreEstimatedBeforeParsing) {
  // 500,000 empty children: 1 MB on the wire (2 bytes each), tens of MB as message objects.
  std::string wire;
  for (int i = 0; i < 500000; ++i) wire += std::string("\x0a\x00", 2);
  Buffer b;
  b.append(wire.data(), wire.size());
  const auto refused = decode_with_limit<brine_test::Tree>(CodecId::protobuf, b, 4 << 20);
  EXPECT_EQ(refused.code, StatusCode::invalid_argument);
  EXPECT_NE(refused.message.find("max_decoded_bytes"), std::string::npos) << refused.message;
  EXPECT_TRUE((decode_with_limit<brine_test::Tree>(CodecId::protobuf, b, 256 << 20)).ok());
  // Nested the same way one level down: still seen (the estimate follows the descriptors).
  std::string nested = "\x0a";
  std::string len;
  std::size_t n = wire.size();
  while (n >= 0x80) {
    len += char((n & 0x7F) | 0x80);
    n >>= 7;
  }
  len += char(n);
  nested += len + wire;
  Buffer nb;
  nb.append(nested.data(), nested.size());
  EXPECT_EQ((decode_with_limit<brine_test::Tree>(CodecId::protobuf, nb, 4 << 20)).code,
            StatusCode::invalid_argument);
}

TEST(DecodedSize, ProtobufUnknownFieldsAndPackedScalarsCount) {
  // Unknown varint fields (number 15) are kept by the parser: 2 bytes each on the wire.
  std::string unknown;
  for (int i = 0; i < 300000; ++i) unknown += std::string("\x78\x01", 2);
  Buffer b;
  b.append(unknown.data(), unknown.size());
  EXPECT_EQ((decode_with_limit<brine_test::Blob>(CodecId::protobuf, b, 4 << 20)).code,
            StatusCode::invalid_argument);
  // An ordinary message well under the limit decodes.
  brine_test::Everything e;
  e.set_text(std::string(100000, 't'));
  for (int i = 0; i < 1000; ++i) e.add_inners()->set_name("n");
  const Buffer ok = encode(CodecId::protobuf, e);
  EXPECT_TRUE((decode_with_limit<brine_test::Everything>(CodecId::protobuf, ok, 4 << 20)).ok());
}

TEST(DecodedSize, JsonValuesAreCountedBeforeParsing) {
  // [[],[],...]: 3 bytes per empty array, each a DOM value and a vector.
  std::string text = "[";
  for (int i = 0; i < 300000; ++i) text += i == 0 ? "[]" : ",[]";
  text += "]";
  Buffer b;
  b.append(text.data(), text.size());
  using Nested = std::vector<std::vector<int>>;
  const auto refused = decode_with_limit<Nested>(CodecId::json, b, 4 << 20);
  EXPECT_EQ(refused.code, StatusCode::invalid_argument);
  EXPECT_NE(refused.message.find("max_decoded_bytes"), std::string::npos) << refused.message;
  EXPECT_TRUE((decode_with_limit<Nested>(CodecId::json, b, 64 << 20)).ok());
}

// The bound holds for JSON: what decoding really takes, measured as the peak resident size, is
// never more than the estimate that check() compares with max_decoded_bytes. A limit just below
// the measured peak refuses the payload; five times the peak lets it through (the estimate is
// not so cautious that ordinary payloads are refused).
namespace {

template <class T>
void expect_json_bound_holds(const std::string& shape, const std::string& text) {
  Buffer b;
  b.append(text.data(), text.size());
  malloc_trim(0);
  brine_test::reset_peak_rss();
  const std::size_t before = brine_test::rss_kib();
  EXPECT_TRUE((decode_with_limit<T>(CodecId::json, b, std::uint64_t(1) << 40)).ok()) << shape;
  const std::uint64_t peak = std::uint64_t(brine_test::peak_rss_kib() - before) * 1024;
  std::printf("  %-24s %5.1f MiB of JSON took %6.1f MiB\n", shape.c_str(), text.size() / 1048576.0,
              double(peak) / 1048576.0);
  const auto refused = decode_with_limit<T>(CodecId::json, b, peak - 1);
  EXPECT_EQ(refused.code, StatusCode::invalid_argument) << shape << ": took " << peak;
  EXPECT_NE(refused.message.find("max_decoded_bytes"), std::string::npos) << refused.message;
  EXPECT_TRUE((decode_with_limit<T>(CodecId::json, b, 5 * peak)).ok()) << shape;
}

// A JSON array of about `bytes` bytes whose i-th element is element(i).
template <class F>
std::string json_array(std::size_t bytes, F element) {
  std::string t = "[";
  for (std::size_t i = 0;; ++i) {
    const std::string e = element(i);
    if (t.size() + e.size() + 2 > bytes) break;
    if (i != 0) t += ',';
    t += e;
  }
  return t + "]";
}

}  // namespace

TEST(DecodedSize, JsonDecodingTakesNoMoreThanItsEstimate) {
  if (!brine_test::kMeasuresMemory) GTEST_SKIP() << "resident sizes mean nothing under sanitizers";
  constexpr std::size_t kBytes = 2 << 20;
  const auto same = [](std::string e) { return [e](std::size_t) { return e; }; };
  const auto number = [](std::size_t i) { return std::to_string(i); };
  const auto text = [](std::size_t i) { return '"' + std::to_string(i) + '"'; };
  expect_json_bound_holds<std::vector<int>>("vector<int>", json_array(kBytes, same("1")));
  expect_json_bound_holds<std::vector<double>>("vector<double>", json_array(kBytes, same("1.5")));
  expect_json_bound_holds<std::vector<std::string>>("vector<string> empty",
                                                    json_array(kBytes, same(R"("")")));
  expect_json_bound_holds<std::vector<std::string>>(
      "vector<string> 20 chars", json_array(kBytes, same(R"("abcdefghijabcdefghij")")));
  expect_json_bound_holds<std::vector<std::vector<int>>>("vector<vector<int>>",
                                                         json_array(kBytes, same("[]")));
  expect_json_bound_holds<std::vector<Inner>>(
      "vector<struct>", json_array(kBytes, same(R"({"name":"","values":[]})")));
  expect_json_bound_holds<std::string>("one string", '"' + std::string(kBytes, 's') + '"');
  expect_json_bound_holds<std::set<int>>("set<int>", json_array(kBytes, number));
  expect_json_bound_holds<std::set<std::string>>("set<string>", json_array(kBytes, text));
  expect_json_bound_holds<std::list<int>>("list<int>", json_array(kBytes, same("1")));
  expect_json_bound_holds<std::deque<int>>("deque<int>", json_array(kBytes, same("1")));
  expect_json_bound_holds<std::map<int, int>>("map<int,int>", json_array(kBytes, [](std::size_t i) {
                                                return R"({"key":)" + std::to_string(i) +
                                                       R"(,"value":1})";
                                              }));
  expect_json_bound_holds<brine_test::Inner>(
      "pb repeated int64", R"({"name":"x","values":)" + json_array(kBytes, same("1")) + "}");
  expect_json_bound_holds<brine_test::Tree>(
      "pb empty children", R"({"children":)" + json_array(kBytes, same("{}")) + "}");
}

// The issue's case: one 16 MiB payload of small numbers took +311 MB although max_decoded_bytes
// was 256 MiB. With the default limits it is refused before decoding, taking next to nothing.
TEST(DecodedSize, ASixteenMebibyteJsonArrayIsRefusedUnderTheDefaultLimit) {
  const std::string text = json_array(16 << 20, [](std::size_t) { return std::string("1"); });
  Buffer b;
  b.append(text.data(), text.size());
  malloc_trim(0);
  brine_test::reset_peak_rss();
  const std::size_t before = brine_test::rss_kib();
  const auto refused =
      decode_with_limit<std::vector<int>>(CodecId::json, b, DecodeLimits{}.max_decoded_bytes);
  EXPECT_EQ(refused.code, StatusCode::invalid_argument);
  EXPECT_NE(refused.message.find("max_decoded_bytes"), std::string::npos) << refused.message;
  if (brine_test::kMeasuresMemory) {
    EXPECT_LT(brine_test::peak_rss_kib() - before, 16u * 1024) << "KiB taken to refuse it";
  }
}
