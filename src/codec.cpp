#include "brine/codec.hpp"

#include <cxxabi.h>

#include <array>
#include <cstdlib>
#include <memory>

namespace brine {
namespace {
constexpr auto kKnown = [] {
  std::array<CodecId, detail::kCodecCount> ids{};
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = detail::kCodecs[i].id;
  return ids;
}();
}  // namespace

std::string_view codec_name(CodecId id) noexcept {
  for (const auto& c : detail::kCodecs) {
    if (c.id == id) return c.name;
  }
  return "unknown";
}

std::string codec_display(std::uint8_t wire_id) {
  for (const auto& c : detail::kCodecs) {
    if (std::uint8_t(c.id) == wire_id) return std::string(c.name);
  }
  return "codec#" + std::to_string(wire_id);
}

std::optional<CodecId> codec_from_name(std::string_view name) noexcept {
  for (const auto& c : detail::kCodecs) {
    if (c.name == name) return c.id;
  }
  return std::nullopt;
}

std::span<const CodecId> known_codecs() noexcept {
  return kKnown;
}

std::string codec_names(CodecSet set) {
  std::string out;
  for (unsigned id = 0; id < 32; ++id) {
    if ((set & (CodecSet(1) << id)) == 0) continue;
    if (!out.empty()) out += ", ";
    out += codec_display(std::uint8_t(id));
  }
  return out.empty() ? "none" : out;
}

std::string type_name(const std::type_info& type) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> out(
      abi::__cxa_demangle(type.name(), nullptr, nullptr, &status), std::free);
  return status == 0 && out ? std::string(out.get()) : std::string(type.name());
}

namespace detail {
std::string codecs_refusal(CodecSet served) {
  std::string out(kCodecsRefusal);
  bool first = true;
  for (unsigned id = 0; id < 32; ++id) {
    if ((served & (CodecSet(1) << id)) == 0) continue;
    if (!first) out += ',';
    first = false;
    out += std::to_string(id);
  }
  return out;
}

std::optional<CodecSet> refused_codecs(const Status& status) {
  if ((status.code != StatusCode::unimplemented &&
       status.code != StatusCode::failed_precondition) ||
      !status.type.starts_with(kCodecsRefusal)) {
    return std::nullopt;
  }
  // Hostile text: ids below 32, separated by single commas; anything else is not a refusal.
  const std::string_view list = std::string_view(status.type).substr(kCodecsRefusal.size());
  CodecSet set = 0;
  std::size_t i = 0;
  while (i < list.size()) {
    unsigned id = 0;
    const std::size_t start = i;
    while (i < list.size() && list[i] >= '0' && list[i] <= '9' && i - start < 2) {
      id = id * 10 + unsigned(list[i++] - '0');
    }
    if (i == start || id > 31) return std::nullopt;
    set |= CodecSet(1) << id;
    if (i < list.size() && list[i++] != ',') return std::nullopt;
    if (i == list.size() && list.back() == ',') return std::nullopt;
  }
  return set;
}

void throw_unsupported_codec(CodecId id, const std::type_info& type) {
  throw RpcError(StatusCode::unimplemented, "type " + type_name(type) + " cannot use codec '" +
                                                std::string(codec_name(id)) + "'");
}
}  // namespace detail

}  // namespace brine
