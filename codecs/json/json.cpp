// The JSON text checks. Included first so that rapidjson sees cereal's configuration (its
// assertions throw) in this file as in every other.
#include "brine/codecs/json.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <optional>
#include <string_view>

#include <rapidjson/document.h>
#include <rapidjson/encodedstream.h>
#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace brine::json_codec {
namespace {

constexpr unsigned kReadFlags = rapidjson::kParseFullPrecisionFlag | rapidjson::kParseNanAndInfFlag;
// The check reads numbers as text (no conversion) so that it can look at them first.
constexpr unsigned kCheckFlags = kReadFlags | rapidjson::kParseIterativeFlag |
                                 rapidjson::kParseValidateEncodingFlag |
                                 rapidjson::kParseNumbersAsStringsFlag;

// The digits before the exponent, without the leading zeros ("-0.00120e5": 3; a zero: 0).
std::size_t significant_digits(std::string_view number) {
  const std::string_view mantissa = number.substr(0, number.find_first_of("eE"));
  const std::size_t first = mantissa.find_first_of("123456789");
  if (first == std::string_view::npos) return 0;
  return std::size_t(std::count_if(mantissa.begin() + std::ptrdiff_t(first), mantissa.end(),
                                   [](char ch) { return ch >= '0' && ch <= '9'; }));
}

// rapidjson 1.1's full-precision conversion also reads past its table of powers of ten for a
// long significand with a large exponent (found by fuzz/json_decode_fuzz: 140 digits, e300).
// Such numbers are outside what a double holds anyway: refused are numbers of more than 100
// digits, and numbers whose leading digit lies above 10^310 or whose last digit lies below
// 10^-360 (every double, 5e-324 to 1.8e308, passes).
bool outside_double_range(const char* s, std::size_t n) {
  const std::string_view t(s, n);
  if (significant_digits(t) == 0) return false;  // zero at any exponent: respelled, see below
  const auto e_at = t.find_first_of("eE");
  const std::string_view mantissa = t.substr(0, e_at);
  const auto dot = mantissa.find('.');
  auto digits = [](std::string_view v) {
    return std::size_t(
        std::count_if(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; }));
  };
  const std::size_t int_digits = digits(mantissa.substr(0, dot));
  const std::size_t frac_digits = dot == std::string_view::npos ? 0 : digits(mantissa.substr(dot));
  if (int_digits + frac_digits > 100) return true;
  long exponent = 0;
  if (e_at != std::string_view::npos) {
    std::string_view ex = t.substr(e_at + 1);
    const bool negative = !ex.empty() && ex.front() == '-';
    if (!ex.empty() && (ex.front() == '-' || ex.front() == '+')) ex.remove_prefix(1);
    for (char c : ex) {
      exponent = exponent * 10 + (c - '0');
      if (exponent > 100000) break;  // far out of range already
    }
    if (negative) exponent = -exponent;
  }
  return exponent + long(int_digits) > 310 || exponent - long(frac_digits) < -360;
}

std::string_view text_of(std::span<const std::byte> in) {
  return {reinterpret_cast<const char*>(in.data()), in.size()};
}

[[noreturn]] void fail(const std::string& why) {
  throw RpcError(StatusCode::invalid_argument, "json payload: " + why);
}

// The text rapidjson 1.1's converting parsers read has two kinds of number respelled, because
// its full-precision conversion gets them wrong (both found by fuzz/json_decode_fuzz):
// * A zero significand whose decimal exponent (the written one minus the fraction digits) lies
//   outside its fast range of +-22 goes through clz(0): undefined behaviour, and in practice a
//   garbage double ("0e40" read as -2.4e229, "0." and 39 zeros as -5.9e-272). Every zero with a
//   fraction or an exponent becomes 0.0 (or -0.0, keeping the sign); integer zeros stay.
// * The conversion gathers up to 20 significant digits into a uint64 and rounds up on the next
//   digit: "18446744073709551615" followed by a digit of 5 or more wraps it to zero, and clz(0)
//   again. A number rapidjson converts to a double (one with a fraction or exponent, or an
//   integer of more than 20 digits) that has more than 17 significant digits is rounded to the
//   nearest double by the standard library (std::from_chars, correctly rounded, as rapidjson's
//   conversion means to be) and written in the shortest scientific form that reads back as the
//   same double, at most 17 digits. One too small for a double is zero; one too large is
//   refused.
// `text` has passed check(): one valid JSON value, so a number is exactly a run of number
// characters outside strings that begins with '-' or a digit. Returns the respelled text, or
// nothing when no number needed it (the usual case, which copies nothing).
std::optional<std::string> respelled(std::string_view text) {
  std::optional<std::string> out;
  std::size_t copied = 0;
  auto replace = [&](std::size_t from, std::size_t to, std::string_view with) {
    if (!out) out.emplace().reserve(text.size() + 16);
    out->append(text.substr(copied, from - copied));
    out->append(with);
    copied = to;
  };
  std::size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c == '"') {  // a string, with its escapes; check() saw it closed
      for (++i; i < text.size() && text[i] != '"'; ++i) {
        if (text[i] == '\\') ++i;
      }
      ++i;
      continue;
    }
    if (c != '-' && (c < '0' || c > '9')) {
      ++i;
      continue;
    }
    const std::size_t end = std::min(text.find_first_not_of("+-.0123456789eE", i), text.size());
    const std::string_view number = text.substr(i, end - i);
    const bool floating = number.find_first_of(".eE") != std::string_view::npos;
    const std::size_t digits = significant_digits(number);
    const std::string_view zero = c == '-' ? "-0.0" : "0.0";
    if (digits == 0 && floating) {
      replace(i, end, zero);
    } else if (digits > 17 && (floating || digits > 20)) {
      double d = 0;
      const auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), d);
      const std::size_t e = number.find_first_of("eE");
      const bool negative_exponent =
          e != std::string_view::npos && number.substr(e + 1).starts_with('-');
      if (ec == std::errc::result_out_of_range && negative_exponent) {
        // check() allows at most 100 digits, so with a negative exponent the number is too
        // small, not too large: it reads as zero, as shorter ones do.
        replace(i, end, zero);
      } else if (ec != std::errc() || ptr != number.data() + number.size()) {
        fail("a number outside what a double holds: " + std::string(number.substr(0, 40)));
      } else {
        std::array<char, 32> buf;
        const auto written =
            std::to_chars(buf.data(), buf.data() + buf.size(), d, std::chars_format::scientific);
        replace(i, end, std::string_view(buf.data(), std::size_t(written.ptr - buf.data())));
      }
    }
    i = end;
  }
  if (out) out->append(text.substr(copied));
  return out;
}

// NaN, Infinity or -Infinity, as rapidjson hands them over with kParseNumbersAsStringsFlag.
bool nonfinite(const char* s, std::size_t n) {
  const std::string_view t(s, n);
  return t.starts_with('N') || t.starts_with('I') || t.starts_with("-I");
}

// Accepts every value; refuses to go deeper than the limit, and (for cereal's archive, which
// reads strings as C strings) strings holding a NUL character.
class DepthGuard : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, DepthGuard> {
 public:
  // `fixed`: what decoding allocates whatever the values (copies of the text).
  DepthGuard(std::uint32_t max_depth, bool allow_nul, std::uint64_t max_bytes,
             std::uint64_t value_bytes, std::uint64_t fixed)
      : max_depth_(max_depth),
        allow_nul_(allow_nul),
        max_bytes_(max_bytes),
        value_bytes_(value_bytes),
        estimate_(fixed) {}
  bool Default() { return value(0); }
  bool String(const char* s, rapidjson::SizeType n, bool) { return value(n) && text(s, n); }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool) {
    if (strict_ && nonfinite(s, n)) nonfinite_ = true;
    if (outside_double_range(s, n)) bad_number_ = true;
    return !bad_number_ && !nonfinite_ && value(0);
  }
  bool nonfinite_number() const { return nonfinite_; }
  void strict(bool on) { strict_ = on; }
  bool bad_number() const { return bad_number_; }
  bool Key(const char* s, rapidjson::SizeType n, bool) {
    if (!value(n) || !text(s, n)) return false;
    keys_[objects_ - 1].emplace_back(s, n);
    return true;
  }
  bool nul() const { return nul_; }
  bool StartObject() {
    if (!value(0) || !enter()) return false;
    if (objects_ == keys_.size()) keys_.emplace_back();
    keys_[objects_++].clear();
    return true;
  }
  bool StartArray() { return value(0) && enter(); }
  bool too_big() const { return too_big_; }
  // A member named twice: RFC 8259 leaves its meaning open (parsers keep the first, the last or
  // both), so a reader and a proxy in front of it could see different values. Refused.
  bool EndObject(rapidjson::SizeType) {
    std::vector<std::string>& keys = keys_[--objects_];
    std::sort(keys.begin(), keys.end());
    const auto twice = std::adjacent_find(keys.begin(), keys.end());
    if (twice != keys.end()) {
      duplicate_ = std::move(*twice);
      return false;
    }
    return leave();
  }
  const std::optional<std::string>& duplicate() const { return duplicate_; }
  bool EndArray(rapidjson::SizeType) { return leave(); }
  bool too_deep() const { return too_deep_; }

 private:
  bool text(const char* s, rapidjson::SizeType n) {
    if (!allow_nul_ && std::memchr(s, 0, n) != nullptr) nul_ = true;
    return !nul_;
  }
  bool enter() {
    if (++depth_ > max_depth_) too_deep_ = true;
    return !too_deep_;
  }
  // What decoding will allocate at its peak (json.hpp, check()): each value's DOM and C++
  // element, and a string's text three times (the parser's stack, the document, the C++ string).
  bool value(std::size_t text_bytes) {
    estimate_ += value_bytes_ + 3 * std::uint64_t(text_bytes);
    if (estimate_ > max_bytes_) too_big_ = true;
    return !too_big_;
  }
  bool leave() {
    --depth_;
    return true;
  }
  std::uint32_t depth_ = 0;
  std::uint32_t max_depth_;
  bool allow_nul_;
  std::uint64_t max_bytes_;
  std::uint64_t value_bytes_;
  std::uint64_t estimate_;
  bool too_big_ = false;
  bool too_deep_ = false;
  bool nul_ = false;
  bool bad_number_ = false;
  bool strict_ = false;
  bool nonfinite_ = false;
  // The member names of each open object, innermost last (levels are reused, not freed); their
  // bytes are already counted by value().
  std::vector<std::vector<std::string>> keys_;
  std::size_t objects_ = 0;
  std::optional<std::string> duplicate_;
};

// At most `max` bytes of `s`, cut at a UTF-8 character boundary.
std::string_view clipped(std::string_view s, std::size_t max) {
  if (s.size() <= max) return s;
  std::size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

// Forwards a document to a writer, refusing strings that hold a NUL character.
template <class Writer>
class NoNul : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, NoNul<Writer>> {
 public:
  explicit NoNul(Writer& w) : w_(w) {}
  bool Null() { return w_.Null(); }
  bool Bool(bool b) { return w_.Bool(b); }
  bool Int(int i) { return w_.Int(i); }
  bool Uint(unsigned u) { return w_.Uint(u); }
  bool Int64(std::int64_t i) { return w_.Int64(i); }
  bool Uint64(std::uint64_t u) { return w_.Uint64(u); }
  bool Double(double d) { return w_.Double(d); }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool copy) {
    return w_.RawNumber(s, n, copy);
  }
  bool String(const char* s, rapidjson::SizeType n, bool copy) {
    return std::memchr(s, 0, n) == nullptr && w_.String(s, n, copy);
  }
  bool Key(const char* s, rapidjson::SizeType n, bool copy) {
    return std::memchr(s, 0, n) == nullptr && w_.Key(s, n, copy);
  }
  bool StartObject() { return w_.StartObject(); }
  bool EndObject(rapidjson::SizeType n) { return w_.EndObject(n); }
  bool StartArray() { return w_.StartArray(); }
  bool EndArray(rapidjson::SizeType n) { return w_.EndArray(n); }

 private:
  Writer& w_;
};

}  // namespace

void check(std::span<const std::byte> in, const DecodeLimits& limits, bool allow_nul,
           std::uint64_t value_bytes) {
  const char* text = reinterpret_cast<const char*>(in.data());
  // rapidjson's streams end at a NUL byte; JSON text never holds a raw one.
  if (in.empty()) fail("empty");
  if (std::memchr(text, 0, in.size()) != nullptr) fail("NUL byte in the text");
  rapidjson::MemoryStream ms(text, in.size());
  rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> is(ms);
  // The text is copied once to be wrapped for cereal's archive, and once more when numbers
  // need respelling (wrap(), split_array()).
  DepthGuard guard(limits.max_depth, allow_nul, limits.max_decoded_bytes, value_bytes,
                   2 * std::uint64_t(in.size()));
  guard.strict(limits.json_strict);
  rapidjson::Reader reader;
  const rapidjson::ParseResult r = reader.Parse<kCheckFlags>(is, guard);
  if (guard.nonfinite_number()) {
    fail(
        "NaN and Infinity are not JSON numbers (RFC 8259), and this side reads JSON strictly "
        "(json_strict)");
  }
  if (guard.too_deep()) fail("nesting deeper than " + std::to_string(limits.max_depth));
  if (guard.too_big()) {
    fail("decoding would take more than max_decoded_bytes (" +
         std::to_string(limits.max_decoded_bytes) + " bytes)");
  }
  if (guard.bad_number() || r.Code() == rapidjson::kParseErrorNumberTooBig) {
    fail("a number outside what a double holds (over 100 digits, beyond 1e310 or 1e-360)");
  }
  if (guard.nul()) fail("a string holds a NUL character (\\u0000), which this type cannot carry");
  if (guard.duplicate()) {
    fail("member '" + std::string(clipped(*guard.duplicate(), 64)) +
         "' appears twice in one object (a name may appear once)");
  }
  if (r.IsError()) {
    fail(std::string(rapidjson::GetParseError_En(r.Code())) + " at offset " +
         std::to_string(r.Offset()));
  }
}

void fail_mismatch(std::string_view assertion, const char* member) {
  struct Expected {
    std::string_view needle;
    std::string_view text;
  };
  // The assertions rapidjson 1.1's getters make, as cereal's JSON archive reaches them.
  static constexpr Expected kExpected[] = {
      {"kInt64Flag", "an int64 (a whole number from -2^63 to 2^63-1)"},
      {"kUint64Flag", "a uint64 (a whole number from 0 to 2^64-1)"},
      {"kIntFlag", "an int32 (a whole number from -2147483648 to 2147483647)"},
      {"kUintFlag", "a uint32 (a whole number from 0 to 4294967295)"},
      {"IsNumber", "a number"},
      {"IsBool", "true or false"},
      {"IsString", "a string"},
      {"IsObject", "an object"},
      {"IsArray", "an array"},
      {"IsNull", "null"},
  };
  std::string_view expected = "a value of another type";
  for (const Expected& e : kExpected) {
    if (assertion.find(e.needle) != std::string_view::npos) {
      expected = e.text;
      break;
    }
  }
  // "value0" is the wrapper wrap() puts around a bare value.
  const std::string where = member == nullptr || std::string_view(member) == "value0"
                                ? std::string("a value")
                                : "member '" + std::string(clipped(member, 64)) + "'";
  fail(where + " is not " + std::string(expected));
}

std::vector<std::string> split_array(std::span<const std::byte> in, const DecodeLimits& limits,
                                     std::uint64_t value_bytes) {
  check(in, limits, true, value_bytes);  // each element is checked again by its own type's decoder
  const std::optional<std::string> respelled_text = respelled(text_of(in));
  const std::string_view text = respelled_text ? *respelled_text : text_of(in);
  rapidjson::Document doc;
  doc.Parse<kReadFlags>(text.data(), text.size());
  if (doc.HasParseError()) fail("does not parse");  // check() said it would: defensive
  if (!doc.IsArray()) fail("expected an array of arguments");
  std::vector<std::string> items;
  items.reserve(doc.Size());
  for (const auto& v : doc.GetArray()) {
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer, rapidjson::UTF8<>, rapidjson::UTF8<>,
                      rapidjson::CrtAllocator, rapidjson::kWriteNanAndInfFlag>
        w(sb);
    v.Accept(w);
    items.emplace_back(sb.GetString(), sb.GetSize());
  }
  return items;
}

void append_unwrapped(const std::string& cereal_json, Buffer& out) {
  rapidjson::Document doc;
  doc.Parse<kReadFlags>(cereal_json.data(), cereal_json.size());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("value0")) {
    throw RpcError(StatusCode::internal, "json: unexpected output from cereal's JSON archive");
  }
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer, rapidjson::UTF8<>, rapidjson::UTF8<>,
                    rapidjson::CrtAllocator,
                    rapidjson::kWriteValidateEncodingFlag | rapidjson::kWriteNanAndInfFlag>
      w(sb);
  NoNul<decltype(w)> guarded(w);
  if (!doc["value0"].Accept(guarded)) {
    throw RpcError(StatusCode::internal,
                   "json: the value holds a string that is not UTF-8 or holds a NUL character");
  }
  out.append(sb.GetString(), sb.GetSize());
}

std::string wrap(std::span<const std::byte> in) {
  const std::optional<std::string> respelled_text = respelled(text_of(in));
  const std::string_view text = respelled_text ? *respelled_text : text_of(in);
  std::string s;
  s.reserve(text.size() + 12);
  s.append("{\"value0\":");
  s.append(text);
  s.push_back('}');
  return s;
}

}  // namespace brine::json_codec

namespace brine::detail {

bool json_holds_nonfinite(std::span<const std::byte> payload) {
  // A handler that notes the tokens and otherwise accepts what the writer wrote.
  struct Finder : rapidjson::BaseReaderHandler<rapidjson::UTF8<>, Finder> {
    bool found = false;
    bool RawNumber(const char* s, rapidjson::SizeType n, bool) {
      found = found || json_codec::nonfinite(s, n);
      return true;
    }
  } finder;
  rapidjson::MemoryStream ms(reinterpret_cast<const char*>(payload.data()), payload.size());
  rapidjson::Reader reader;
  reader.Parse<json_codec::kCheckFlags>(ms, finder);
  return finder.found;
}

}  // namespace brine::detail
