#include "transport/registry.hpp"

#include <stdexcept>
#include <string>

namespace brine::transport {

// THE SCHEME LIST. A new transport is its folder under src/transport/ (which defines the Scheme
// constant) and one line here.
#define BRINE_SCHEME_LIST(X) \
  X(kSchemeTcp)              \
  X(kSchemeUnix)             \
  X(kSchemeTls)              \
  X(kSchemeZmqTcp)           \
  X(kSchemeZmqIpc)           \
  X(kSchemeZmqInproc)        \
  X(kSchemeMem)              \
  X(kSchemeUdp)              \
  X(kSchemeUnixgram)         \
  X(kSchemeHttp)             \
  X(kSchemeHttps)

#define BRINE_DECLARE_SCHEME(name) extern const Scheme name;
BRINE_SCHEME_LIST(BRINE_DECLARE_SCHEME)
#undef BRINE_DECLARE_SCHEME

namespace {
#define BRINE_SCHEME_ADDRESS(name) &name,
const Scheme* const kSchemes[] = {BRINE_SCHEME_LIST(BRINE_SCHEME_ADDRESS)};
#undef BRINE_SCHEME_ADDRESS

std::string known() {
  std::string out;
  for (const Scheme* s : kSchemes) out += (out.empty() ? "" : ", ") + std::string(s->name) + "://";
  return out;
}
}  // namespace

std::span<const Scheme* const> schemes() noexcept {
  return kSchemes;
}

const Scheme& scheme_of(std::string_view uri) {
  const auto sep = uri.find("://");
  if (sep == std::string_view::npos) {
    throw std::invalid_argument("URI '" + std::string(uri) + "' lacks a scheme (" + known() + ")");
  }
  const std::string_view name = uri.substr(0, sep);
  for (const Scheme* s : kSchemes) {
    if (s->name == name) {
      s->check(uri);
      return *s;
    }
  }
  throw std::invalid_argument("URI '" + std::string(uri) + "': unknown scheme '" +
                              std::string(name) + "' (known: " + known() + ")");
}

}  // namespace brine::transport
