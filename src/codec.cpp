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

std::string type_name(const std::type_info& type) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> out(
      abi::__cxa_demangle(type.name(), nullptr, nullptr, &status), std::free);
  return status == 0 && out ? std::string(out.get()) : std::string(type.name());
}

namespace detail {
void throw_unsupported_codec(CodecId id, const std::type_info& type) {
  throw RpcError(StatusCode::unimplemented, "type " + type_name(type) + " cannot use codec '" +
                                                std::string(codec_name(id)) + "'");
}
}  // namespace detail

}  // namespace brine
