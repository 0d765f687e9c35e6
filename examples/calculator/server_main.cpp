// calculator_server [--config FILE] [--listen URI ...] [--connect URI ...] [--codec NAME ...]
//                   [--workers N]
//
// Settings come from the [server] part of the configuration file and BRINE_* environment
// variables (brine/config.hpp); --listen and --connect add endpoints, --codec and --workers
// replace the configured ones.
//
// Prints "listening <uri>" (with the real port) per --listen endpoint once it accepts calls, and
// "connected <uri>" per --connect (a brine-broker's backend: the server works for the broker),
// then serves until SIGINT or SIGTERM.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "calculator.hpp"

namespace {

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "calculator_server: %s\n"
               "usage: calculator_server [--config FILE] [--listen URI ...] "
               "[--connect BROKER_BACKEND_URI ...] [--codec NAME ...] [--workers N]\n",
               why);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  std::vector<std::string> uris;
  std::vector<std::string> brokers;
  std::vector<std::string> codecs;
  long workers = -1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) usage(("missing value after " + arg).c_str());
    const std::string value = argv[++i];
    if (arg == "--config") {
      config_path = value;
    } else if (arg == "--listen") {
      uris.push_back(value);
    } else if (arg == "--connect") {
      brokers.push_back(value);
    } else if (arg == "--codec") {
      codecs.push_back(value);
    } else if (arg == "--workers") {
      workers = std::strtol(value.c_str(), nullptr, 10);
    } else {
      usage(("unknown option " + arg).c_str());
    }
  }

  // Block the stop signals in every thread; the main thread waits for them below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  try {
    brine::ServerConfig config = config_path.empty() ? brine::config_from_environment().server
                                                     : brine::load_config(config_path).server;
    config.listen.insert(config.listen.end(), uris.begin(), uris.end());
    config.brokers.insert(config.brokers.end(), brokers.begin(), brokers.end());
    if (!codecs.empty()) config.options.codecs = codecs;
    if (workers >= 0) config.options.workers = std::size_t(workers);
    if (config.listen.empty() && config.brokers.empty()) {
      usage("no endpoint: give --listen or --connect, or server.listen in the configuration");
    }
    brine::Server server(config.options);
    calc::register_calculator(server);
    const std::vector<std::string> bound = brine::open_endpoints(server, config);
    server.start();
    for (std::size_t i = 0; i < bound.size(); ++i) {
      std::printf(i < config.listen.size() ? "listening %s\n" : "connected %s\n", bound[i].c_str());
    }
    std::fflush(stdout);
    int sig = 0;
    sigwait(&stop_signals, &sig);
    server.stop();
    std::fprintf(stderr, "calculator_server: stopped by signal %d\n", sig);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "calculator_server: %s\n", e.what());
    return 1;
  }
  return 0;
}
