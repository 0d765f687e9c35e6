// Contracts (issue 13, point 1): the shape of types at compile time, the compatibility rule, and
// end to end over every transport and codec: a client whose interface differs from the server's
// gets FAILED_PRECONDITION naming both signatures, once per connection and method, while
// compatible clients (older versions of a versioned type) are served.
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <variant>
#include <vector>

#include "families.hpp"
#include "params.hpp"
#include "test_server.hpp"
#include "tls_files.hpp"
#include "wire/contract.hpp"

// --- two builds of one interface: what a client and a server that drifted apart declare -------
namespace contract_v1 {
struct Calc {
  virtual ~Calc() = default;
  virtual int add(int a, int b) = 0;
  virtual int twice(int a) = 0;
};
BRINE_INTERFACE(Calc, add, twice);
struct PbCalc {
  virtual ~PbCalc() = default;
  virtual calc::pb::Number add(const calc::pb::AddRequest& r) = 0;
  virtual calc::pb::Number twice(const calc::pb::Number& n) = 0;
};
BRINE_INTERFACE(PbCalc, add, twice);
}  // namespace contract_v1

namespace contract_v2 {
struct Calc {
  virtual ~Calc() = default;
  virtual float add(float a, float b) = 0;
  virtual int twice(int a) = 0;
};
BRINE_INTERFACE(Calc, add, twice);
struct PbCalc {
  virtual ~PbCalc() = default;
  virtual brine_test::Blob add(const calc::pb::AddRequest& r) = 0;
  virtual calc::pb::Number twice(const calc::pb::Number& n) = 0;
};
BRINE_INTERFACE(PbCalc, add, twice);
}  // namespace contract_v2

// --- a versioned type: version 2 added a field and still reads version 1 ------------------------
namespace evo_old {
struct Point {
  std::int32_t x = 0;
  template <class A>
  void serialize(A& ar, std::uint32_t /*version*/) {
    ar(CEREAL_NVP(x));
  }
};
BRINE_VERSION(Point, 1);
struct Shapes {
  virtual ~Shapes() = default;
  virtual std::int32_t norm(Point p) = 0;
  virtual Point origin() = 0;
};
BRINE_INTERFACE(Shapes, norm, origin);
}  // namespace evo_old
CEREAL_CLASS_VERSION(evo_old::Point, 1);

namespace evo_new {
struct Point {
  std::int32_t x = 0;
  std::int32_t y = 0;
  template <class A>
  void serialize(A& ar, std::uint32_t version) {
    ar(CEREAL_NVP(x));
    if (version >= 2) ar(CEREAL_NVP(y));
  }
};
BRINE_VERSION(Point, 2);
struct Shapes {
  virtual ~Shapes() = default;
  virtual std::int32_t norm(Point p) = 0;
  virtual Point origin() = 0;
};
BRINE_INTERFACE(Shapes, norm, origin);
}  // namespace evo_new
CEREAL_CLASS_VERSION(evo_new::Point, 2);

namespace {

using brine::Client;
using brine::StatusCode;
using namespace std::chrono_literals;
using namespace brine_test;

// --- shapes ------------------------------------------------------------------------------------
namespace shapes {
struct Inner {
  double d;
  std::string s;
};
struct Everything {
  std::vector<Inner> v;
  std::map<std::string, std::optional<std::int64_t>> m;
  std::set<std::uint16_t> s;
  std::variant<bool, char> var;
  std::pair<std::int8_t, float> p;
  std::tuple<> empty;
  std::array<std::uint8_t, 3> a;
  std::unordered_map<int, std::vector<bool>> u;
};
enum class Colour : std::uint8_t { red, green };
class Opaque {
 public:
  int get() const { return x_; }

 private:
  int x_ = 0;
};
struct Tagged {
  int x;
};
BRINE_VERSION(Tagged, 7);
}  // namespace shapes

TEST(Shapes, FollowTheStructureOfTheTypes) {
  EXPECT_EQ((brine::call_contract<shapes::Everything, shapes::Colour>.text),
            "(s'(anonymous)::shapes::Everything'{vec<s'(anonymous)::shapes::Inner'{f64,str}>,"
            "map<str,opt<i64>>,set<u16>,var<bool,char>,tup<i8,f32>,tup<>,arr<u8,3>,"
            "map<i32,vec<bool>>})->e'(anonymous)::shapes::Colour'<u8>");
  EXPECT_EQ((brine::method_contract<brine::Ref<contract_v1::Calc>, shapes::Opaque, shapes::Tagged,
                                    std::string>.text),
            "(o'(anonymous)::shapes::Opaque',v'Tagged'@7,str)->ref'contract_v1::Calc'");
  EXPECT_EQ((brine::call_contract<calc::pb::AddRequest, calc::pb::Number>.text),
            "(pb'calculator.AddRequest')->pb'calculator.Number'");
  EXPECT_EQ((brine::method_contract<void>.text), "()->void");
}

// Names that enter the fingerprint (enums, opaque classes) are spelt the same by g++ and clang:
// both compilers' names for an anonymous namespace become "(anonymous)". The fingerprint below
// is that of the text both compilers now produce.
TEST(Shapes, AnAnonymousNamespaceIsSpeltTheSameByEveryCompiler) {
  EXPECT_EQ((brine::method_contract<shapes::Colour>.text),
            "()->e'(anonymous)::shapes::Colour'<u8>");
  EXPECT_EQ((brine::method_contract<shapes::Colour>.fingerprint),
            brine::detail::fnv1a("()->e'(anonymous)::shapes::Colour'<u8>"));
}

TEST(Shapes, TheFingerprintIgnoresStructNamesButNotStructure) {
  struct A {
    int x;
    double y;
  };
  struct B {
    int x;
    double y;
  };
  struct C {
    double y;
    int x;
  };
  EXPECT_EQ((brine::call_contract<A, A>.fingerprint), (brine::call_contract<B, B>.fingerprint));
  EXPECT_NE((brine::call_contract<A, A>.fingerprint), (brine::call_contract<C, C>.fingerprint));
  EXPECT_NE((brine::method_contract<int, int>.fingerprint),
            (brine::method_contract<float, float>.fingerprint));
  // Stable across builds and compilers: FNV-1a 64 of the text without struct names, which
  // depends on nothing a compiler chooses (this is the value of "(s{i32,f64})->s{i32,f64}").
  EXPECT_EQ((brine::call_contract<A, A>.fingerprint),
            brine::detail::fnv1a("(s{i32,f64})->s{i32,f64}"));
  EXPECT_EQ(brine::detail::fnv1a("(s{i32,f64})->s{i32,f64}"), 0xf3e7068b48a0bd2full);
}

// --- the rule ----------------------------------------------------------------------------------
brine::Status check(std::string_view client, std::string_view server, bool oneway = false) {
  return brine::wire::check_contract("m", brine::detail::fnv1a(client), client,
                                     {brine::detail::fnv1a(server) + 1, server}, oneway);
}

TEST(ContractRule, StructuresMustMatchWhateverTheNames) {
  EXPECT_TRUE(check("(s'a::P'{i32,f64})->void", "(s'b::Q'{i32,f64})->void").ok());
  const auto s = check("(s'P'{i32,f32})->void", "(s'P'{i32,f64})->void");
  EXPECT_EQ(s.code, StatusCode::failed_precondition);
  EXPECT_EQ(s.message,
            "method 'm': the client's `void m(P)` does not match the server's `void m(P)` "
            "(argument 1: field 2: float on the client, double on the server)");
  EXPECT_FALSE(check("(vec<i32>)->void", "(set<i32>)->void").ok());
  EXPECT_FALSE(check("(arr<i32,3>)->void", "(arr<i32,4>)->void").ok());
  EXPECT_FALSE(check("(i32,i32)->void", "(i32)->void").ok());
  EXPECT_FALSE(check("()->i32", "()->i64").ok());
  EXPECT_FALSE(check("(e'E'<u8>)->void", "(e'E'<i32>)->void").ok());
}

TEST(ContractRule, ProtobufMessagesMatchByFullName) {
  EXPECT_TRUE(check("(pb'calc.Add')->pb'calc.Number'", "(pb'calc.Add')->pb'calc.Number'").ok());
  const auto s = check("(pb'calc.Add')->pb'calc.Blob'", "(pb'calc.Add')->pb'calc.Number'");
  EXPECT_EQ(s.code, StatusCode::failed_precondition);
  EXPECT_NE(s.message.find("`calc::Blob m(calc::Add)`"), std::string::npos) << s.message;
}

TEST(ContractRule, VersionsReadOlderWriters) {
  // The server reads what the client writes (arguments); the client reads the result.
  EXPECT_TRUE(check("(v'P'@1)->void", "(v'P'@2)->void").ok());
  EXPECT_FALSE(check("(v'P'@3)->void", "(v'P'@2)->void").ok());
  EXPECT_TRUE(check("()->v'P'@2", "()->v'P'@1").ok());
  EXPECT_FALSE(check("()->v'P'@1", "()->v'P'@2").ok());
  EXPECT_FALSE(check("(v'P'@1)->void", "(v'Q'@1)->void").ok());
}

TEST(ContractRule, ReferencesAndOnewayResults) {
  // A reference's own methods are checked when they are called.
  EXPECT_TRUE(check("()->ref'A'", "()->ref'B'").ok());
  // Nobody reads a oneway's result.
  EXPECT_TRUE(check("(i32)->void", "(i32)->str", true).ok());
  EXPECT_FALSE(check("(i32)->void", "(i32)->str").ok());
}

TEST(ContractRule, ReadableCpp) {
  EXPECT_EQ(brine::wire::display_signature("add", "(i32,i32)->i32"), "int add(int, int)");
  EXPECT_EQ(brine::wire::display_signature(
                "f", "(vec<str>,map<u64,opt<f64>>,arr<i8,2>,s{bool})->tup<i16,u32>"),
            "std::tuple<short, unsigned> f(std::vector<std::string>, std::map<std::uint64_t, "
            "std::optional<double>>, std::array<std::int8_t, 2>, struct {bool})");
}

TEST(ContractRule, HostileTextNeverCrashes) {
  const std::string good = "(s'P'{vec<map<str,opt<i32>>>,arr<f64,3>},v'V'@2)->var<i32,str>";
  std::mt19937 rng(13);
  for (int i = 0; i < 20000; ++i) {
    std::string t = good.substr(0, rng() % (good.size() + 1));
    for (int k = int(rng() % 4); k > 0; --k) {
      if (!t.empty()) t[rng() % t.size()] = char(rng());
    }
    const auto s = check(t, good);
    EXPECT_TRUE(s.ok() || s.code == StatusCode::invalid_argument ||
                s.code == StatusCode::failed_precondition);
  }
  std::string deep;
  for (int i = 0; i < 100000; ++i) deep += "vec<";
  EXPECT_EQ(check("(" + deep + ")->void", good).code, StatusCode::invalid_argument);
  EXPECT_EQ(check(std::string(20000, '('), good).code, StatusCode::invalid_argument);
  EXPECT_EQ(check("(arr<i32,99999999999999999999999>)->void", good).code,
            StatusCode::invalid_argument);
}

// --- end to end over the grid --------------------------------------------------------------------
// The unchecked-contract test feeds these float bit patterns, so they add without overflowing.
int wrapping_add(int a, int b) {
  return static_cast<int>(static_cast<unsigned>(a) + static_cast<unsigned>(b));
}
struct PlainV1 final : contract_v1::Calc {
  int add(int a, int b) override { return wrapping_add(a, b); }
  int twice(int a) override { return wrapping_add(a, a); }
};
struct PbV1 final : contract_v1::PbCalc {
  calc::pb::Number add(const calc::pb::AddRequest& r) override {
    calc::pb::Number n;
    n.set_value(r.a() + r.b());
    return n;
  }
  calc::pb::Number twice(const calc::pb::Number& n) override {
    calc::pb::Number out;
    out.set_value(2 * n.value());
    return out;
  }
};
struct ShapesV2 final : evo_new::Shapes {
  std::int32_t norm(evo_new::Point p) override { return p.x * p.x + p.y * p.y; }
  evo_new::Point origin() override { return {}; }
};

class Contracts : public testing::TestWithParam<Param> {
 protected:
  bool protobuf() const { return GetParam().codec == "protobuf"; }
  brine::ClientOptions client_options() const {
    brine::ClientOptions o;
    o.codec = GetParam().codec;
    o.timeout = 10s;
    o.tls.ca_file = tls_paths().ca;
    return o;
  }
  static brine::ServerOptions server_options() {
    brine::ServerOptions o;
    o.tls.certificate_file = tls_paths().server_crt;
    o.tls.private_key_file = tls_paths().server_key;
    return o;
  }
  // A server with "calc" (the v1 interface of the codec's family), "shapes" (cereal and json),
  // and the test server's typed handlers.
  struct Served {
    explicit Served(const Param& p) : server(server_options()) {
      if (test_transport(p.transport).tls) (void)tls_files();
      if (p.codec == "protobuf") {
        server.expose<contract_v1::PbCalc>("calc", std::make_shared<PbV1>());
      } else {
        server.expose<contract_v1::Calc>("calc", std::make_shared<PlainV1>());
        server.expose<evo_new::Shapes>("shapes", std::make_shared<ShapesV2>());
      }
      server.handle("add", [](const calc::AddRequest& r) { return calc::Number{r.a + r.b}; });
      server.handle("add",
                    [](const calc::pb::AddRequest& r) {
                      calc::pb::Number n;
                      n.set_value(r.a() + r.b());
                      return n;
                    },
                    {.codecs = {brine::CodecId::protobuf}});
      uri = server.listen(listen_uri(p.transport));
      server.start();
    }
    brine::Server server;
    std::string uri;
  };
};

// The interface a v2 client has for "calc" returns float (protobuf: another message), so its
// add must be refused, naming both signatures, while its twice (unchanged) works.
TEST_P(Contracts, AMismatchedInterfaceIsRefusedNamingBothSignatures) {
  Served s(GetParam());
  Client c(s.uri, client_options());
  brine::Status refused;
  if (protobuf()) {
    auto calc = c.remote<contract_v2::PbCalc>("calc");
    calc::pb::AddRequest r;
    r.set_a(2);
    r.set_b(3);
    refused = calc.try_call().add(r).status();
    calc::pb::Number n;
    n.set_value(21);
    EXPECT_EQ(calc.twice(n).value(), 42);
    EXPECT_EQ(calc.try_call().add(r).code(), StatusCode::failed_precondition);
    EXPECT_NE(refused.message.find("the client's `brine_test::Blob add(calculator::AddRequest)` "
                                   "does not match the server's `calculator::Number "
                                   "add(calculator::AddRequest)`"),
              std::string::npos)
        << refused.message;
  } else {
    auto calc = c.remote<contract_v2::Calc>("calc");
    refused = calc.try_call().add(2.5f, 3.5f).status();
    EXPECT_EQ(calc.twice(21), 42);
    // Later calls carry no contract; the server remembers the refusal for this connection.
    EXPECT_EQ(calc.try_call().add(1, 2).code(), StatusCode::failed_precondition);
    EXPECT_EQ(calc.async().add(1, 2).wait_for(10s), std::future_status::ready);
    EXPECT_EQ(refused.message,
              "method 'calc.add': the client's `float add(float, float)` does not match the "
              "server's `int add(int, int)` (argument 1: float on the client, int on the server)");
  }
  EXPECT_EQ(refused.code, StatusCode::failed_precondition) << refused.to_string();
  // A client whose interface matches is served on its own connection.
  Client good(s.uri, client_options());
  if (protobuf()) {
    calc::pb::AddRequest r;
    r.set_a(2);
    r.set_b(3);
    EXPECT_EQ(good.remote<contract_v1::PbCalc>("calc").add(r).value(), 5);
  } else {
    EXPECT_EQ(good.remote<contract_v1::Calc>("calc").add(2, 3), 5);
  }
}

struct FloatAdd {
  float a = 0;
  float b = 0;
  template <class A>
  void serialize(A& ar) {
    ar(CEREAL_NVP(a), CEREAL_NVP(b));
  }
};

TEST_P(Contracts, AMismatchedTypedCallIsRefused) {
  Served s(GetParam());
  Client c(s.uri, client_options());
  brine::Status refused;
  if (protobuf()) {
    refused = c.try_call<calc::pb::Number>("add", Blob{}).status();
    EXPECT_NE(refused.message.find("`calculator::Number add(brine_test::Blob)`"), std::string::npos)
        << refused.message;
    EXPECT_EQ(c.try_call<calc::pb::Number>("add", Blob{}).code(), StatusCode::failed_precondition);
  } else {
    refused = c.try_call<calc::Number>("add", FloatAdd{1, 2}).status();
    EXPECT_NE(refused.message.find("argument 1: field 1: float on the client, double on the "
                                   "server"),
              std::string::npos)
        << refused.message;
    EXPECT_EQ(c.try_call<calc::Number>("add", FloatAdd{1, 2}).code(),
              StatusCode::failed_precondition);
  }
  EXPECT_EQ(refused.code, StatusCode::failed_precondition) << refused.to_string();
}

TEST_P(Contracts, AnOlderVersionedClientIsServedWhereTheRuleAllows) {
  if (protobuf()) GTEST_SKIP() << "versioned C++ types are cereal and json types";
  Served s(GetParam());
  Client c(s.uri, client_options());
  auto shapes = c.remote<evo_old::Shapes>("shapes");
  // The server (version 2) reads the point an older client (version 1) writes.
  EXPECT_EQ(shapes.norm({3}), 9);
  // It cannot write a point that client reads: refused, not a misread.
  const auto r = shapes.try_call().origin();
  EXPECT_EQ(r.code(), StatusCode::failed_precondition) << r.status().to_string();
  EXPECT_NE(r.status().message.find("the reader is older than the writer"), std::string::npos);
}

TEST_P(Contracts, AClientThatSendsNoContractIsServedUnchecked) {
  Served s(GetParam());
  brine::ClientOptions o = client_options();
  o.check_contracts = false;
  Client c(s.uri, o);
  if (protobuf()) {
    calc::pb::AddRequest r;
    r.set_a(2);
    r.set_b(3);
    EXPECT_EQ(c.remote<contract_v1::PbCalc>("calc").add(r).value(), 5);
    EXPECT_NE(c.remote<contract_v2::PbCalc>("calc").try_call().add(r).code(),
              StatusCode::failed_precondition);
  } else {
    EXPECT_EQ(c.remote<contract_v1::Calc>("calc").add(2, 3), 5);
    // What the check is there for: without it, a mismatch is not noticed by the server.
    EXPECT_NE(c.remote<contract_v2::Calc>("calc").try_call().add(2, 3).code(),
              StatusCode::failed_precondition);
  }
}

INSTANTIATE_TEST_SUITE_P(AllTransportsAndCodecs, Contracts, testing::ValuesIn(grid(transports())),
                         ParamName{});

}  // namespace
