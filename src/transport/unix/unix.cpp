// unix:///absolute/path and unix://@abstract-name (Linux abstract namespace).
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>

#include "transport/transport.hpp"

namespace brine::transport {
namespace {

std::vector<SocketAddress> resolve(std::string_view rest, bool /*passive*/);

void check(std::string_view rest) {
  (void)resolve(rest, false);
}

std::vector<SocketAddress> resolve(std::string_view rest, bool /*passive*/) {
  auto bad = [&](const std::string& why) {
    return std::invalid_argument("unix URI 'unix://" + std::string(rest) + "': " + why);
  };
  const bool abstract = !rest.empty() && rest.front() == '@';
  if (!abstract && (rest.empty() || rest.front() != '/')) {
    throw bad("expected an absolute path (unix:///path) or an abstract name (unix://@name)");
  }
  if (abstract && rest.size() < 2) throw bad("empty abstract name");
  sockaddr_un sun{};
  if (rest.size() > sizeof(sun.sun_path) - 1) {
    throw bad("longer than " + std::to_string(sizeof(sun.sun_path) - 1) + " bytes");
  }
  sun.sun_family = AF_UNIX;
  std::memcpy(sun.sun_path, rest.data(), rest.size());
  if (abstract) sun.sun_path[0] = '\0';
  SocketAddress a;
  std::memcpy(&a.storage, &sun, sizeof sun);
  // Abstract names are exactly as long as given; paths end at their NUL.
  a.length = socklen_t(offsetof(sockaddr_un, sun_path) + rest.size() + (abstract ? 0 : 1));
  a.family = AF_UNIX;
  a.protocol = 0;
  return {a};
}

std::string bound_uri(std::string_view rest, const SocketAddress&) {
  return "unix://" + std::string(rest);
}

void configure(int) {}

const char* path_of(const SocketAddress& a) {
  const auto* sun = reinterpret_cast<const sockaddr_un*>(&a.storage);
  return sun->sun_path[0] == '\0' ? nullptr : sun->sun_path;
}

// A socket file left by a dead server is removed; one with a live server is left alone (bind
// then fails with EADDRINUSE).
void before_listen(const SocketAddress& a) {
  const char* path = path_of(a);
  if (path == nullptr) return;
  struct stat st {};
  if (::lstat(path, &st) != 0 || !S_ISSOCK(st.st_mode)) return;
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  const bool live = ::connect(fd, a.get(), a.length) == 0;
  const int err = errno;
  ::close(fd);
  if (!live && err == ECONNREFUSED) ::unlink(path);
}

void after_close(const SocketAddress& a) {
  if (const char* path = path_of(a)) ::unlink(path);
}

// Connecting to a unix socket file needs write permission on it. Abstract names have no file
// (and no permissions: anyone in the network namespace may connect).
int restrict_file(const SocketAddress& a, unsigned mode) {
  const char* path = path_of(a);
  if (path == nullptr) return 0;
  return ::chmod(path, mode_t(mode)) == 0 ? 0 : errno;
}

std::string no_host(std::string_view) {
  return {};
}

}  // namespace

extern const StreamTransport kUnixTransport;
const StreamTransport kUnixTransport{"unix",    check,         resolve,     bound_uri,
                                     configure, before_listen, after_close, restrict_file,
                                     no_host,   false};

}  // namespace brine::transport
