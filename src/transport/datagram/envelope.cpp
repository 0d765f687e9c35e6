#include "transport/datagram/envelope.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/random.h>

#include <chrono>
#include <cstring>
#include <stdexcept>

#include "brine/detail/frame.hpp"

namespace brine::transport::datagram {
namespace {

constexpr std::byte kMagic0{0x62};  // 'b'
constexpr std::byte kMagic1{0x64};  // 'd'
constexpr std::byte kVersion{1};
constexpr std::uint64_t kEpochSeconds = CookieJar::kLifetimeSeconds / 2;

void put_common(std::byte* out, Type type, std::uint64_t session) {
  out[0] = kMagic0;
  out[1] = kMagic1;
  out[2] = kVersion;
  out[3] = std::byte(type);
  detail::store_be64(out + 4, session);
}

bool common_ok(std::span<const std::byte> d, std::size_t header) {
  return d.size() >= header && d[0] == kMagic0 && d[1] == kMagic1 && d[2] == kVersion;
}

std::uint64_t epoch_now() {
  const auto now = std::chrono::steady_clock::now().time_since_epoch();
  return std::uint64_t(std::chrono::duration_cast<std::chrono::seconds>(now).count()) /
         kEpochSeconds;
}

}  // namespace

void put_client_header(std::byte* out, Type type, std::uint64_t session, const Cookie& cookie) {
  put_common(out, type, session);
  std::memcpy(out + 12, cookie.data(), cookie.size());
}

void put_server_header(std::byte* out, Type type, std::uint64_t session) {
  put_common(out, type, session);
}

std::optional<Header> parse_client_datagram(std::span<const std::byte> d) {
  if (!common_ok(d, kClientHeader)) return std::nullopt;
  Header h;
  h.type = Type(d[3]);
  h.session = detail::load_be64(d.data() + 4);
  std::memcpy(h.cookie.data(), d.data() + 12, h.cookie.size());
  h.rest = d.subspan(kClientHeader);
  if (h.session == 0) return std::nullopt;
  if (h.type == Type::hello || h.type == Type::bye) {
    return d.size() == kClientHeader ? std::optional(h) : std::nullopt;
  }
  if (h.type == Type::frame) return std::optional(h);
  return std::nullopt;
}

std::optional<Header> parse_server_datagram(std::span<const std::byte> d) {
  if (!common_ok(d, kServerHeader)) return std::nullopt;
  Header h;
  h.type = Type(d[3]);
  h.session = detail::load_be64(d.data() + 4);
  h.rest = d.subspan(kServerHeader);
  switch (h.type) {
    case Type::cookie:
      if (h.rest.size() != h.cookie.size()) return std::nullopt;
      std::memcpy(h.cookie.data(), h.rest.data(), h.cookie.size());
      h.rest = {};
      return h;
    case Type::reply_frame:
      return h;
    case Type::session_unknown:
      return h.rest.empty() ? std::optional(h) : std::nullopt;
    default:
      return std::nullopt;
  }
}

std::uint64_t new_session() {
  std::uint64_t s = 0;
  while (s == 0) {
    if (::getrandom(&s, sizeof s, 0) != ssize_t(sizeof s)) {
      throw std::runtime_error("getrandom failed: cannot draw a datagram session id");
    }
  }
  return s;
}

CookieJar::CookieJar() {
  rotate();
}

void CookieJar::rotate() {
  if (RAND_bytes(secret_.data(), int(secret_.size())) != 1) {
    throw std::runtime_error("cannot draw the datagram cookie secret (RAND_bytes failed)");
  }
}

Cookie CookieJar::make_at(std::uint64_t epoch, std::span<const std::byte> address,
                          std::uint64_t session) const {
  // epoch(8) session(8) address: fixed-size fields first, so no two inputs share a message.
  unsigned char message[16 + 128];
  std::size_t n = std::min<std::size_t>(address.size(), 128);
  detail::store_be64(reinterpret_cast<std::byte*>(message), epoch);
  detail::store_be64(reinterpret_cast<std::byte*>(message + 8), session);
  std::memcpy(message + 16, address.data(), n);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), secret_.data(), int(secret_.size()), message, 16 + n, mac, &mac_len);
  Cookie c{};
  std::memcpy(c.data(), mac, c.size());
  return c;
}

Cookie CookieJar::make(std::span<const std::byte> address, std::uint64_t session) const {
  return make_at(epoch_now(), address, session);
}

bool CookieJar::check(std::span<const std::byte> address, std::uint64_t session,
                      const Cookie& cookie) const {
  const std::uint64_t now = epoch_now();
  for (const std::uint64_t epoch : {now, now - 1}) {
    const Cookie expected = make_at(epoch, address, session);
    if (CRYPTO_memcmp(expected.data(), cookie.data(), cookie.size()) == 0) return true;
  }
  return false;
}

}  // namespace brine::transport::datagram
