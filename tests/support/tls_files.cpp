#include "tls_files.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <stdexcept>

namespace brine_test {
namespace {

// The certificates are shared by this user's test processes of the same hour: making them
// (six EC keys and signatures with the openssl command) took 0.3 s, more than most tests that
// use them, and thousands of test processes each made their own. Within an hour they are fresh
// enough (valid two days; "expired" expired yesterday).
std::string shared_dir() {
  static const std::string d = [] {
    const std::time_t now = std::time(nullptr);
    char hour[16];
    std::strftime(hour, sizeof hour, "%Y%m%d%H", std::gmtime(&now));
    return "/tmp/brine-tls-" + std::to_string(::getuid()) + "-" + hour;
  }();
  return d;
}

// Where this process makes them before it publishes them (rename is atomic).
std::string work_dir() {
  return shared_dir() + ".tmp-" + std::to_string(::getpid());
}

void run(const std::string& command) {
  const std::string quiet = "cd '" + work_dir() + "' && " + command + " >/dev/null 2>&1";
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
  std::ofstream(work_dir() + "/" + name + ".ext") << "subjectAltName=" << san << "\n";
  run("openssl x509 -req -in " + name + ".csr -CA ca.crt -CAkey ca.key -CAcreateserial -out " +
      name + ".crt -days " + std::to_string(days) + " -extfile " + name + ".ext");
}

void remove_work_dir() {
  std::error_code ignored;
  std::filesystem::remove_all(work_dir(), ignored);
}

// Removes this user's certificate directories made more than three hours ago (older runs; a
// process of the previous hour may still be reading its own).
void remove_stale() {
  std::error_code ignored;
  const std::string prefix = "brine-tls-" + std::to_string(::getuid()) + "-";
  const auto old = std::filesystem::file_time_type::clock::now() - std::chrono::hours(3);
  for (const auto& e : std::filesystem::directory_iterator("/tmp", ignored)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) == 0 && e.last_write_time(ignored) < old) {
      std::filesystem::remove_all(e.path(), ignored);
    }
  }
}

}  // namespace

const TlsFiles& tls_paths() {
  static const TlsFiles files = [] {
    const std::string d = shared_dir() + "/";
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
    struct stat st {};
    if (::stat((shared_dir() + "/client.key").c_str(), &st) == 0) return;  // made already
    remove_stale();
    remove_work_dir();
    ::mkdir(work_dir().c_str(), 0700);
    try {
      make_ca("ca");
      make_ca("other-ca");
      make_cert("server", "DNS:localhost,IP:127.0.0.1,IP:::1", 2);
      make_cert("expired", "DNS:localhost,IP:127.0.0.1,IP:::1", -1);
      make_cert("other-name", "DNS:other.example", 2);
      make_cert("client", "DNS:brine-test-client", 2);
    } catch (...) {
      remove_work_dir();
      throw;
    }
    // Published whole or not at all: a process that lost the race uses the winner's.
    if (::rename(work_dir().c_str(), shared_dir().c_str()) != 0) remove_work_dir();
  });
  return tls_paths();
}

}  // namespace brine_test
