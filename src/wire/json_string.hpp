// JSON strings written by brine itself (internal): describe, the status page's JSON, the HTTP
// front door's error bodies.
#pragma once

#include <string>
#include <string_view>

namespace brine::wire {

// Appends `s` as a JSON string: quoted, with '"', '\' and control characters escaped, and every
// byte that does not begin a well-formed UTF-8 sequence (overlong forms, surrogates, code points
// above U+10FFFF, stray continuation bytes) written as U+FFFD, so the result is always valid
// JSON (RFC 8259) whatever `s` holds.
void append_json_string(std::string& out, std::string_view s);

}  // namespace brine::wire
