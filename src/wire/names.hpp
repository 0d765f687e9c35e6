// Hashing of method and object names (internal): tables keyed by std::string that are looked up
// with the std::string_view of a frame's method field, without a copy.
#pragma once

#include <functional>
#include <string_view>

namespace brine::detail {

struct NameHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};

}  // namespace brine::detail
