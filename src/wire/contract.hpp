// Contracts on the server side (internal): the client's contract text, read from a request, is
// hostile; it is parsed with bounded length and depth, compared with the server's own by the
// compatibility rule of docs/design.md ("Contracts"), and shown as readable C++ in the refusal.
#pragma once

#include <string>
#include <string_view>

#include "brine/detail/frame.hpp"
#include "brine/fingerprint.hpp"
#include "brine/status.hpp"

namespace brine::wire {

using detail::kMaxContractText;  // the longest contract text a frame may carry
// The deepest nesting a contract text may have.
inline constexpr std::size_t kMaxContractDepth = 64;

// OK when a client whose contract for `method` is `client` may call the server's method of
// contract `server` (equal fingerprints are compatible without a look at the texts). Otherwise
// FAILED_PRECONDITION naming the method and both signatures in C++, or INVALID_ARGUMENT when the
// client's text does not parse. `method` is the frame's method field ("add", "calc.add"). For a
// oneway only the arguments count: nobody reads its result.
Status check_contract(std::string_view method, std::uint64_t client_fingerprint,
                      std::string_view client, const Contract& server, bool oneway = false);

// `contract` as a C++ declaration of `name`: "int add(int, int)"; the text itself when it does
// not parse.
std::string display_signature(std::string_view name, std::string_view contract);

// Which stream ends a stream method's contract has: items from the client (in<...>), to it
// (out<...>). Neither for a contract that does not parse.
struct StreamEnds {
  bool in = false;
  bool out = false;
};
StreamEnds stream_ends(std::string_view contract);

}  // namespace brine::wire
