#include "brine/context.hpp"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace brine {

Metadata::Metadata(std::initializer_list<Entry> entries) {
  for (const auto& [k, v] : entries) add(k, v);
}

bool Metadata::valid_key(std::string_view key) noexcept {
  if (key.empty() || key.size() > 255) return false;
  return std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
  });
}

Metadata& Metadata::add(std::string key, std::string value) {
  if (!valid_key(key)) {
    throw std::invalid_argument("metadata key '" + key +
                                "': 1 to 255 of a-z, 0-9, '-', '_' and '.'");
  }
  if (value.size() > 0xFFFF) {
    throw std::invalid_argument("metadata value of '" + key + "' exceeds 65535 bytes");
  }
  entries_.emplace_back(std::move(key), std::move(value));
  return *this;
}

Metadata& Metadata::set(std::string key, std::string value) {
  erase(key);
  return add(std::move(key), std::move(value));
}

void Metadata::erase(std::string_view key) {
  std::erase_if(entries_, [&](const Entry& e) { return e.first == key; });
}

std::optional<std::string_view> Metadata::get(std::string_view key) const noexcept {
  for (const auto& [k, v] : entries_) {
    if (k == key) return std::string_view(v);
  }
  return std::nullopt;
}

std::vector<std::string_view> Metadata::get_all(std::string_view key) const {
  std::vector<std::string_view> out;
  for (const auto& [k, v] : entries_) {
    if (k == key) out.emplace_back(v);
  }
  return out;
}

std::size_t Metadata::wire_size() const noexcept {
  std::size_t n = 0;
  for (const auto& [k, v] : entries_) n += 3 + k.size() + v.size();
  return n;
}

Metadata& Metadata::merge(const Metadata& other) {
  entries_.insert(entries_.end(), other.entries_.begin(), other.entries_.end());
  return *this;
}

namespace detail {
Status run_before(const Interceptors& chain, CallInfo& call, std::size_t& asked, Retry hint,
                  std::string_view side) {
  for (const auto& i : chain) {
    Status s;
    try {
      s = i->before(call);
    } catch (const std::exception& e) {
      s = {StatusCode::internal, "a " + std::string(side) + " interceptor threw: " + e.what()};
    } catch (...) {
      s = {StatusCode::unknown,
           "a " + std::string(side) + " interceptor threw something that is not a std::exception"};
    }
    if (!s.ok()) {
      if (s.retry == Retry::unknown) s.retry = hint;
      return s;
    }
    ++asked;
  }
  return {};
}

void run_after(const Interceptors& chain, CallInfo& call, std::size_t& asked, const Status& outcome,
               std::chrono::nanoseconds took) noexcept {
  for (std::size_t i = asked; i-- > 0;) {
    try {
      chain[i]->after(call, outcome, took);
    } catch (...) {
      // after() cannot change the outcome; its failure is its own.
    }
  }
  asked = 0;
}
}  // namespace detail

LoggingInterceptor::LoggingInterceptor(std::string side, Sink sink)
    : side_(std::move(side)), sink_(std::move(sink)) {}

Status LoggingInterceptor::before(CallInfo&) {
  return {};
}

void LoggingInterceptor::after(CallInfo& call, const Status& outcome,
                               std::chrono::nanoseconds duration) {
  std::string line = side_;
  if (call.peer != nullptr) {
    line += "  " + call.peer->transport + " " +
            (call.peer->address.empty() ? std::string("-") : call.peer->address);
  }
  line += "  ";
  if (!call.object.empty()) line.append(call.object).push_back('.');
  line.append(call.method);
  if (call.stream) line += " (stream)";
  if (call.oneway) line += " (oneway)";
  line += "  ";
  line += status_name(outcome.code);
  char ms[32];
  std::snprintf(ms, sizeof ms, "  %.3f ms", double(duration.count()) / 1e6);
  line += ms;
  line += "  md=" + std::to_string(call.metadata != nullptr ? call.metadata->size() : 0);
  if (!outcome.ok() && !outcome.message.empty()) line += "  " + outcome.message;
  if (sink_) {
    sink_(line);
  } else {
    line.push_back('\n');
    std::fwrite(line.data(), 1, line.size(), stderr);
  }
}

TokenCheck::TokenCheck(std::vector<std::string> tokens, std::vector<std::string> open_methods)
    : tokens_(std::move(tokens)), open_(std::move(open_methods)) {
  if (tokens_.empty()) throw std::invalid_argument("TokenCheck: no tokens");
  for (const auto& t : tokens_) {
    if (t.empty()) throw std::invalid_argument("TokenCheck: an empty token");
  }
}

namespace {
// Equal without an early exit on the first differing byte: the time taken does not tell an
// attacker how much of a guess was right (the length is not secret).
bool same(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}
}  // namespace

Status TokenCheck::before(CallInfo& call) {
  // An open method's name, "object.method" or "method", compared without building it.
  const auto is_call = [&](std::string_view open) {
    if (call.object.empty()) return open == call.method;
    return open.size() == call.object.size() + 1 + call.method.size() &&
           open.starts_with(call.object) && open[call.object.size()] == '.' &&
           open.ends_with(call.method);
  };
  if (std::any_of(open_.begin(), open_.end(), is_call)) return {};
  constexpr std::string_view kBearer = "Bearer ";
  const auto value = call.metadata != nullptr ? call.metadata->get("authorization") : std::nullopt;
  if (!value) {
    return {StatusCode::unauthenticated,
            "this server needs a token (metadata 'authorization: "
            "Bearer <token>'; brine::ClientOptions::token)",
            Retry::never};
  }
  if (value->substr(0, kBearer.size()) == kBearer) {
    const std::string_view given = value->substr(kBearer.size());
    bool ok = false;
    for (const auto& t : tokens_) ok |= same(given, t);
    if (ok) return {};
  }
  return {StatusCode::unauthenticated, "the call's token is not valid here", Retry::never};
}

}  // namespace brine
