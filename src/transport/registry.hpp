// The registry of URI schemes: the one list of transports (internal).
#pragma once

#include <span>
#include <string_view>

#include "transport/channel.hpp"

namespace brine::transport {

// The scheme of `uri` ("tcp" for tcp://...), its URI checked. Throws std::invalid_argument for a
// URI without a known scheme or with a malformed rest.
const Scheme& scheme_of(std::string_view uri);
// Every scheme this build knows, in registry order.
std::span<const Scheme* const> schemes() noexcept;

}  // namespace brine::transport
