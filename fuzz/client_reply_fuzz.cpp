// libFuzzer target: a client fed a hostile server's replies. A fake server accepts the client's
// connection, reads its request, and answers with the input's bytes (after the first, whose low
// bit picks the codec: cereal or json), the request's call id patched into the first frame so that
// the fuzzer reaches the reply decoders. The first byte's second bit opens a server stream
// instead of a call, so the items, credits and ends reach the client's stream state. Every call
// and stream must end with a reply or a status, and nothing may crash.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <brine/brine.hpp>
#include <brine/codecs/cereal.hpp>
#include <brine/codecs/json.hpp>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace fuzz_client {
struct Reply {
  std::string text;
  std::vector<std::int32_t> values;
  template <class A>
  void serialize(A& ar) {
    ar(CEREAL_NVP(text), CEREAL_NVP(values));
  }
};
}  // namespace fuzz_client

namespace {

const std::string kName = "brine-fuzz-client-" + std::to_string(::getpid());

int listener() {
  static const int fd = [] {
    const int l = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path + 1, kName.data(), kName.size());
    const auto len = socklen_t(offsetof(sockaddr_un, sun_path) + 1 + kName.size());
    if (::bind(l, reinterpret_cast<sockaddr*>(&a), len) != 0 || ::listen(l, 16) != 0) {
      __builtin_trap();
    }
    return l;
  }();
  return fd;
}

bool read_exact(int fd, std::uint8_t* p, std::size_t n) {
  while (n > 0) {
    const ssize_t r = ::recv(fd, p, n, 0);
    if (r <= 0) return false;
    p += r;
    n -= std::size_t(r);
  }
  return true;
}

// Accepts one connection, reads one request frame, answers `reply` with its call id patched in.
void fake_server(std::vector<std::uint8_t> reply) {
  const int fd = ::accept4(listener(), nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) return;
  std::uint8_t head[20];
  if (read_exact(fd, head, 20)) {
    const std::uint32_t len = std::uint32_t(head[0]) << 24 | std::uint32_t(head[1]) << 16 |
                              std::uint32_t(head[2]) << 8 | head[3];
    std::vector<std::uint8_t> rest(len > 16 ? len - 16 : 0);
    if (rest.size() < (1u << 20) && read_exact(fd, rest.data(), rest.size())) {
      if (reply.size() >= 20) std::memcpy(reply.data() + 12, head + 12, 8);
      (void)::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
    }
  }
  ::close(fd);  // EOF after the reply: nothing waits for a timeout
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static const char* codecs[] = {"cereal", "json"};
  constexpr std::size_t kLimit = brine::detail::kDefaultMaxFrameSize;
  (void)listener();
  std::thread server(fake_server, std::vector<std::uint8_t>(data + 1, data + size));
  {
    // It takes compressed answers, so the decompressors meet the input too.
    brine::Client client("unix://@" + kName, {.codec = codecs[data[0] % 2],
                                              .timeout = std::chrono::milliseconds(2000),
                                              .compression = {.algorithms = {"zstd", "lz4"}}});
    if ((data[0] & 2) != 0) {
      auto stream = client.stream<fuzz_client::Reply>("get", fuzz_client::Reply{"q", {1}});
      std::size_t items = 0;
      while (auto item = stream.read()) {
        // (A compressed item may decode to more than its bytes, never past the frame limit.)
        if (item->text.size() > kLimit || ++items > size) __builtin_trap();
      }
      if (!stream.finished()) __builtin_trap();  // read() ends only with the stream
    } else {
      const auto r = client.try_call<fuzz_client::Reply>("get", fuzz_client::Reply{"q", {1}});
      if (r.ok() && r->text.size() > kLimit) __builtin_trap();  // nor a reply
    }
  }
  server.join();
  return 0;
}
