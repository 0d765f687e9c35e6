// files_client --connect URI put PATH [NAME] | get NAME PATH | list
//
// put: sends the file at PATH (stored as NAME, by default its file name) in 64 KiB chunks,
// showing the progress as the server takes them; get: receives NAME into PATH, showing the
// progress, and checks it against the server's checksum; list: the files stored. Settings come
// from the [client] part of --config FILE and BRINE_* variables, as in the other examples.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "files.hpp"
#include "flags.hpp"

namespace {

// "put a.bin: 12.0 / 32.0 MiB (37%)": redrawn in place on a terminal; elsewhere (a log, the
// demo) a line at every quarter.
class Progress {
 public:
  Progress(std::string what, std::uint64_t total)
      : what_(std::move(what)), total_(total), tty_(::isatty(STDOUT_FILENO) != 0) {}
  void at(std::uint64_t done) {
    const int percent = total_ == 0 ? 100 : int(done * 100 / total_);
    if (tty_) {
      std::printf("\r%s: %.1f / %.1f MiB (%d%%)", what_.c_str(), double(done) / (1 << 20),
                  double(total_) / (1 << 20), percent);
    } else if (percent >= next_) {
      std::printf("%s: %.1f / %.1f MiB (%d%%)\n", what_.c_str(), double(done) / (1 << 20),
                  double(total_) / (1 << 20), percent);
      next_ = percent / 25 * 25 + 25;
    }
    std::fflush(stdout);
  }
  void end() {
    if (tty_) std::printf("\n");
  }

 private:
  std::string what_;
  std::uint64_t total_;
  bool tty_;
  int next_ = 0;
};

int put(brine::Remote<files::FileStore>& store, const std::string& path, std::string name) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "files_client: cannot read %s\n", path.c_str());
    return 1;
  }
  if (name.empty()) name = std::filesystem::path(path).filename().string();
  const auto size = std::uint64_t(std::filesystem::file_size(path));
  const auto start = std::chrono::steady_clock::now();
  brine::Upload<files::Chunk, files::FileInfo> upload = store.put(name);
  Progress progress("put " + name, size);
  std::uint64_t sent = 0;
  std::uint64_t checksum = files::kFnvStart;
  files::Chunk chunk;
  chunk.bytes.resize(files::kChunkSize);
  while (in) {
    in.read(chunk.bytes.data(), std::streamsize(files::kChunkSize));
    chunk.bytes.resize(std::size_t(in.gcount()));
    if (chunk.bytes.empty()) break;
    checksum = files::fnv1a(checksum, chunk.bytes);
    if (!upload.write(chunk)) break;  // the stream ended: finish() says why
    sent += chunk.bytes.size();
    progress.at(sent);
    chunk.bytes.resize(files::kChunkSize);
  }
  progress.end();
  const files::FileInfo info = upload.finish();  // throws RpcError if the server refused
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("stored %s: %llu bytes in %.2f s (%.0f MB/s), checksum %s\n", info.name.c_str(),
              static_cast<unsigned long long>(info.size), seconds,
              double(info.size) / seconds / 1e6, info.checksum == checksum ? "matches" : "DIFFERS");
  return info.checksum == checksum && info.size == size ? 0 : 1;
}

int get(brine::Remote<files::FileStore>& store, const std::string& name, const std::string& path) {
  std::uint64_t total = 0;
  std::uint64_t expected = 0;
  for (const files::FileInfo& f : store.list()) {
    if (f.name == name) {
      total = f.size;
      expected = f.checksum;
    }
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) {
    std::fprintf(stderr, "files_client: cannot write %s\n", path.c_str());
    return 1;
  }
  brine::Stream<files::Chunk> chunks = store.get(name);
  Progress progress("get " + name, total);
  std::uint64_t received = 0;
  std::uint64_t checksum = files::kFnvStart;
  while (auto chunk = chunks.read()) {
    out.write(chunk->bytes.data(), std::streamsize(chunk->bytes.size()));
    checksum = files::fnv1a(checksum, chunk->bytes);
    received += chunk->bytes.size();
    progress.at(received);
  }
  progress.end();
  if (!chunks.status().ok()) throw brine::RpcError(chunks.status());
  std::printf("received %s: %llu bytes into %s, checksum %s\n", name.c_str(),
              static_cast<unsigned long long>(received), path.c_str(),
              checksum == expected ? "matches" : "DIFFERS");
  return checksum == expected && received == total ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  std::string uri;
  examples::Flags flags("files_client",
                        "put PATH [NAME] | get NAME PATH | list: files to and from a files_server, "
                        "in chunks,\nwith progress.");
  flags
      .text("--config", "FILE", "configuration file: its [client] part (brine/config.hpp)",
            &config_path)
      .text("--connect", "URI", "the files_server", &uri);
  std::vector<std::string> words;
  std::vector<char*> rest{argv[0]};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--", 0) == 0 || a == "-h") {
      rest.push_back(argv[i]);
      if (a != "--help" && a != "-h" && i + 1 < argc) rest.push_back(argv[++i]);
    } else {
      words.push_back(a);
    }
  }
  flags.parse(int(rest.size()), rest.data());
  const bool ok_words =
      (!words.empty() &&
       ((words[0] == "put" && (words.size() == 2 || words.size() == 3)) ||
        (words[0] == "get" && words.size() == 3) || (words[0] == "list" && words.size() == 1)));
  if (!ok_words) flags.fail("give put PATH [NAME], get NAME PATH, or list");
  try {
    brine::ClientConfig config = config_path.empty() ? brine::config_from_environment().client
                                                     : brine::load_config(config_path).client;
    if (!uri.empty()) config.connect = uri;
    if (config.connect.empty()) flags.fail("no server: give --connect URI or client.connect");
    config.options.timeout = std::max(config.options.timeout, std::chrono::milliseconds(600000));
    brine::Client client(config.connect, config.options);
    auto store = client.remote<files::FileStore>("files");
    if (words[0] == "put") return put(store, words[1], words.size() == 3 ? words[2] : "");
    if (words[0] == "get") return get(store, words[1], words[2]);
    for (const files::FileInfo& f : store.list()) {
      std::printf("%s\t%llu bytes\n", f.name.c_str(), static_cast<unsigned long long>(f.size));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "files_client: %s\n", e.what());
    return 1;
  }
  return 0;
}
