// The datagram transports' envelope (internal): what goes around a brine frame in a udp:// or
// unixgram:// datagram, the address cookie, and the sizes. docs/wire-format.md, "Datagrams", is
// the byte-level description; this header is its one implementation.
//
//   client -> server: "bd" 1 type session(8) cookie(16) [frame]     type 1 hello, 2 frame,
//                                                                    6 bye
//   server -> client: "bd" 1 type session(8) [cookie(16) | frame]   type 3 cookie, 4 frame,
//                                                                    5 session unknown
//
// A hello (28 bytes) is answered by a cookie (28 bytes), so an unproven address never gets more
// bytes back than it sent; a frame datagram carries the cookie, which proves that its sender
// receives at its source address.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace brine::transport::datagram {

enum class Type : std::uint8_t {
  hello = 1,
  frame = 2,
  cookie = 3,
  reply_frame = 4,
  session_unknown = 5,
  bye = 6,
};

using Cookie = std::array<std::byte, 16>;

inline constexpr std::size_t kClientHeader = 28;  // magic, version, type, session, cookie
inline constexpr std::size_t kServerHeader = 12;  // magic, version, type, session
// The largest datagram either side sends: the most an IPv4 UDP datagram can carry.
inline constexpr std::size_t kMaxDatagram = 65507;
// The largest frame (its length prefix included) a datagram carries, both ways.
inline constexpr std::size_t kMaxFrame = kMaxDatagram - kClientHeader;
// The same as a `length` field value (bytes after the prefix): what max_frame_size becomes.
inline constexpr std::size_t kMaxFrameLength = kMaxFrame - 4;

struct Header {
  Type type{};
  std::uint64_t session = 0;
  Cookie cookie{};                    // client datagrams; a cookie answer's cookie
  std::span<const std::byte> rest{};  // after the header: the frame, if any
};

// Writes a client datagram's header (kClientHeader bytes) at `out`.
void put_client_header(std::byte* out, Type type, std::uint64_t session, const Cookie& cookie);
// Writes a server datagram's header (kServerHeader bytes) at `out`.
void put_server_header(std::byte* out, Type type, std::uint64_t session);

// Parses a datagram a server received: nullopt unless its magic, version, type (hello, frame or
// bye) and size are right (a hello and a bye are exactly kClientHeader bytes).
std::optional<Header> parse_client_datagram(std::span<const std::byte> d);
// Parses a datagram a client received: nullopt unless well-formed (a cookie answer is exactly
// kServerHeader + 16 bytes, a session_unknown exactly kServerHeader).
std::optional<Header> parse_server_datagram(std::span<const std::byte> d);

// A fresh random session id (never 0).
std::uint64_t new_session();

// Makes and checks cookies: an HMAC-SHA256 of the peer's address and session under a secret
// drawn at start, keyed by a 60-second epoch of the monotonic clock (only this process checks its
// cookies). A cookie is accepted in the epoch it was made and the next one, until rotate().
class CookieJar {
 public:
  CookieJar();
  // A new secret: every cookie made so far stops being accepted.
  void rotate();
  Cookie make(std::span<const std::byte> address, std::uint64_t session) const;
  bool check(std::span<const std::byte> address, std::uint64_t session, const Cookie& cookie) const;
  // How long a cookie can make new peers at most (two epochs).
  static constexpr std::uint64_t kLifetimeSeconds = 120;

 private:
  Cookie make_at(std::uint64_t epoch, std::span<const std::byte> address,
                 std::uint64_t session) const;
  std::array<unsigned char, 32> secret_{};
};

}  // namespace brine::transport::datagram
