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

#include "event/fd.hpp"
#include "transport/stream/socket.hpp"
#include "transport/stream/stream_scheme.hpp"
#include "transport/unix/unix.hpp"

namespace brine::transport {
namespace {

std::vector<SocketAddress> resolve(std::string_view rest) {
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

std::string bound_uri(std::string_view scheme, std::string_view rest, const SocketAddress&) {
  return std::string(scheme) + "://" + std::string(rest);
}

void configure(int) {}

const char* path_of(const SocketAddress& a) {
  const auto* sun = reinterpret_cast<const sockaddr_un*>(&a.storage);
  return sun->sun_path[0] == '\0' ? nullptr : sun->sun_path;
}

void before_bind(const SocketAddress& a) {
  remove_stale_socket_file(a, SOCK_STREAM);
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

std::string describe(const SocketAddress& a) {
  const auto* sun = reinterpret_cast<const sockaddr_un*>(&a.storage);
  const std::size_t n = a.length > offsetof(sockaddr_un, sun_path)
                            ? std::size_t(a.length) - offsetof(sockaddr_un, sun_path)
                            : 0;
  if (n == 0) return {};  // an unnamed (client) socket
  if (sun->sun_path[0] == '\0') return "@" + std::string(sun->sun_path + 1, n - 1);
  return std::string(sun->sun_path, ::strnlen(sun->sun_path, n));
}

void check(std::string_view uri) {
  (void)resolve(uri_rest(uri, "unix"));
}

std::unique_ptr<Dialer> dialer(std::string_view uri, const ClientSide& client) {
  return std::make_unique<SocketDialer>(kUnixFamily, "unix", uri_rest(uri, "unix"), client);
}

std::unique_ptr<Listener> listen(std::string_view uri, const ServerSide& server) {
  return std::make_unique<StreamListener>(kUnixFamily, "unix", uri, server,
                                          plain_channels(server.options.max_frame_size));
}

}  // namespace

void remove_stale_socket_file(const SocketAddress& a, int type) {
  const char* path = path_of(a);
  if (path == nullptr) return;
  struct stat st {};
  if (::lstat(path, &st) != 0 || !S_ISSOCK(st.st_mode)) return;
  const event::Fd probe(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
  if (!probe) return;
  const bool live = ::connect(probe.get(), a.get(), a.length) == 0;
  if (!live && errno == ECONNREFUSED) ::unlink(path);
}

const SocketFamily kUnixFamily{resolve,     bound_uri,     configure, before_bind,
                               after_close, restrict_file, describe};

extern const Scheme kSchemeUnix;
const Scheme kSchemeUnix{"unix", check, dialer, listen, nullptr};

}  // namespace brine::transport
