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
#include <exception>
#include <string>
#include <vector>

#include "calculator.hpp"
#include "flags.hpp"

int main(int argc, char** argv) {
  std::string config_path;
  std::vector<std::string> uris;
  std::vector<std::string> brokers;
  std::vector<std::string> codecs;
  long workers = -1;
  examples::Flags flags("calculator_server",
                        "Serves the calculator (add, divide, sum, pid, wait) until SIGINT or "
                        "SIGTERM;\nprints \"listening <uri>\" per endpoint once it accepts calls.");
  flags
      .text("--config", "FILE", "configuration file: its [server] part (brine/config.hpp)",
            &config_path)
      .texts("--listen", "URI", "an endpoint to listen on (port 0: any free port)", &uris)
      .texts("--connect", "URI", "a brine-broker's backend to work for", &brokers)
      .texts("--codec", "NAME", "a codec to serve (cereal, protobuf, json)", &codecs)
      .count("--workers", "handler threads; 0 runs handlers on the I/O threads", 0, 1024, &workers);
  flags.parse(argc, argv);

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
      flags.fail("no endpoint: give --listen or --connect, or server.listen in the configuration");
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
