#include "tls_files.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <stdexcept>

namespace brine_test {
namespace {

std::string dir() {
  return "/tmp/brine-tls-" + std::to_string(::getpid());
}

void run(const std::string& command) {
  const std::string quiet = "cd '" + dir() + "' && " + command + " >/dev/null 2>&1";
  if (std::system(quiet.c_str()) != 0) {
    throw std::runtime_error("openssl failed: " + command);
  }
}

const char* kEc = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";

void make_ca(const std::string& name) {
  run(std::string("openssl req -x509 ") + kEc + " -keyout " + name + ".key -out " + name +
      ".crt -days 2 -subj /CN=" + name);
}

// A certificate for `san` signed by ca.crt, valid for `days` (negative: already expired).
void make_cert(const std::string& name, const std::string& san, int days) {
  run(std::string("openssl req ") + kEc + " -keyout " + name + ".key -out " + name +
      ".csr -subj /CN=" + name);
  std::ofstream(dir() + "/" + name + ".ext") << "subjectAltName=" << san << "\n";
  run("openssl x509 -req -in " + name + ".csr -CA ca.crt -CAkey ca.key -CAcreateserial -out " +
      name + ".crt -days " + std::to_string(days) + " -extfile " + name + ".ext");
}

void remove_dir() {
  std::error_code ignored;
  std::filesystem::remove_all(dir(), ignored);
}

}  // namespace

const TlsFiles& tls_paths() {
  static const TlsFiles files = [] {
    const std::string d = dir() + "/";
    return TlsFiles{d + "ca.crt",         d + "server.crt",     d + "server.key",
                    d + "other-ca.crt",   d + "expired.crt",    d + "expired.key",
                    d + "other-name.crt", d + "other-name.key", d + "client.crt",
                    d + "client.key"};
  }();
  return files;
}

const TlsFiles& tls_files() {
  static std::once_flag once;
  std::call_once(once, [] {
    ::mkdir(dir().c_str(), 0700);
    std::atexit(remove_dir);
    make_ca("ca");
    make_ca("other-ca");
    make_cert("server", "DNS:localhost,IP:127.0.0.1,IP:::1", 2);
    make_cert("expired", "DNS:localhost,IP:127.0.0.1,IP:::1", -1);
    make_cert("other-name", "DNS:other.example", 2);
    make_cert("client", "DNS:brine-test-client", 2);
  });
  return tls_paths();
}

}  // namespace brine_test
