// files_server [--config FILE] [--listen URI ...] [--max-mib N]
//
// Serves a FileStore as "files", in memory (at most --max-mib MiB in all, 1024 by default).
// Prints "listening <uri>" per endpoint, then a line per file stored. Stops on SIGINT/SIGTERM.
#include <csignal>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "files.hpp"
#include "flags.hpp"

namespace {

class MemoryStore final : public files::FileStore {
 public:
  explicit MemoryStore(std::size_t max_bytes) : max_bytes_(max_bytes) {}

  files::FileInfo put(std::string name, brine::Reader<files::Chunk>& chunks) override {
    if (name.empty() || name.size() > 255) {
      throw brine::RpcError(brine::StatusCode::invalid_argument, "a name of 1 to 255 bytes");
    }
    std::string data;
    while (auto chunk = chunks.read()) {
      if (used() + data.size() + chunk->bytes.size() > max_bytes_) {
        throw brine::RpcError(
            brine::StatusCode::resource_exhausted,
            "the store holds at most " + std::to_string(max_bytes_ >> 20) + " MiB");
      }
      data += chunk->bytes;
    }
    if (!chunks.status().ok()) throw brine::RpcError(chunks.status());  // the caller left
    files::FileInfo info{name, data.size(), files::fnv1a(files::kFnvStart, data)};
    {
      std::lock_guard lk(mu_);
      files_[name] = std::move(data);
    }
    std::printf("stored %s: %llu bytes\n", name.c_str(),
                static_cast<unsigned long long>(info.size));
    std::fflush(stdout);
    return info;
  }

  void get(std::string name, brine::Writer<files::Chunk>& chunks) override {
    std::string data;
    {
      std::lock_guard lk(mu_);
      const auto it = files_.find(name);
      if (it == files_.end()) {
        throw brine::RpcError(brine::StatusCode::not_found, "no file named '" + name + "'");
      }
      data = it->second;
    }
    for (std::size_t at = 0; at < data.size(); at += files::kChunkSize) {
      // Waits while the caller's window is full; false once it has gone.
      if (!chunks.write({data.substr(at, files::kChunkSize)})) return;
    }
  }

  std::vector<files::FileInfo> list() override {
    std::lock_guard lk(mu_);
    std::vector<files::FileInfo> out;
    for (const auto& [name, data] : files_) {
      out.push_back({name, data.size(), files::fnv1a(files::kFnvStart, data)});
    }
    return out;
  }

 private:
  std::size_t used() {
    std::lock_guard lk(mu_);
    std::size_t n = 0;
    for (const auto& [name, data] : files_) n += data.size();
    return n;
  }

  const std::size_t max_bytes_;
  std::mutex mu_;
  std::map<std::string, std::string> files_;
};

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  std::vector<std::string> uris;
  long max_mib = 1024;
  examples::Flags flags("files_server",
                        "Serves a FileStore as \"files\" (in memory) until SIGINT or SIGTERM; "
                        "prints\n\"listening <uri>\" per endpoint, then a line per file stored.");
  flags
      .text("--config", "FILE", "configuration file: its [server] part (brine/config.hpp)",
            &config_path)
      .texts("--listen", "URI", "an endpoint (default tcp://127.0.0.1:7200)", &uris)
      .count("--max-mib", "the most the store holds, in MiB (default 1024)", 1, 1 << 20, &max_mib);
  flags.parse(argc, argv);
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  try {
    brine::ServerConfig config = config_path.empty() ? brine::config_from_environment().server
                                                     : brine::load_config(config_path).server;
    config.listen.insert(config.listen.end(), uris.begin(), uris.end());
    if (config.listen.empty()) config.listen.push_back("tcp://127.0.0.1:7200");
    brine::Server server(config.options);
    server.expose<files::FileStore>("files",
                                    std::make_shared<MemoryStore>(std::size_t(max_mib) << 20));
    const auto bound = brine::open_endpoints(server, config);
    server.start();
    for (const auto& uri : bound) std::printf("listening %s\n", uri.c_str());
    std::fflush(stdout);
    int sig = 0;
    sigwait(&stop, &sig);
    server.stop();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "files_server: %s\n", e.what());
    return 1;
  }
  return 0;
}
