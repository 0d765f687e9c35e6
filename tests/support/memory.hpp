// What a process holds (memory, descriptors), from /proc, for the tests that bound it.
#pragma once

#include <dirent.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstddef>
#include <fstream>
#include <string>

namespace brine_test {

// Sanitizers keep freed memory in quarantine and shadow what is allocated: resident sizes say
// nothing under them, so memory bounds are checked in plain builds only.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
inline constexpr bool kMeasuresMemory = !kSanitized;

// A field of /proc/PID/status in KiB ("VmRSS:", "VmHWM:"); 0 if absent.
inline std::size_t status_kib(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (in >> key) {
    if (key == field) {
      std::size_t kib = 0;
      in >> kib;
      return kib;
    }
    in.ignore(1 << 16, '\n');
  }
  return 0;
}

// Resident set size in KiB.
inline std::size_t rss_kib(pid_t pid = ::getpid()) {
  return status_kib(pid, "VmRSS:");
}

// Descriptors the process holds open (entries of /proc/PID/fd).
inline std::size_t open_fds(pid_t pid = ::getpid()) {
  std::size_t n = 0;
  if (DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/fd").c_str())) {
    while (const dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') ++n;
    }
    ::closedir(d);
  }
  return n;
}

// The largest resident size since the last reset_peak_rss() (or the start), in KiB.
inline std::size_t peak_rss_kib(pid_t pid = ::getpid()) {
  return status_kib(pid, "VmHWM:");
}

// Makes the peak the current size (Linux: "5" written to /proc/PID/clear_refs).
inline void reset_peak_rss(pid_t pid = ::getpid()) {
  std::ofstream("/proc/" + std::to_string(pid) + "/clear_refs") << "5";
}

}  // namespace brine_test
