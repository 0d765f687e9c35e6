// calculator_server --listen URI [--listen URI ...] [--connect URI ...] [--codec NAME ...]
//                   [--workers N]
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
               "usage: calculator_server [--listen URI ...] [--connect BROKER_BACKEND_URI ...] "
               "[--codec NAME ...] [--workers N]\n",
               why);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> uris;
  std::vector<std::string> brokers;
  brine::ServerOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) usage(("missing value after " + arg).c_str());
    const std::string value = argv[++i];
    if (arg == "--listen") {
      uris.push_back(value);
    } else if (arg == "--connect") {
      brokers.push_back(value);
    } else if (arg == "--codec") {
      options.codecs.push_back(value);
    } else if (arg == "--workers") {
      options.workers = std::strtoul(value.c_str(), nullptr, 10);
    } else {
      usage(("unknown option " + arg).c_str());
    }
  }
  if (uris.empty() && brokers.empty()) usage("a --listen or --connect URI is needed");

  // Block the stop signals in every thread; the main thread waits for them below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  try {
    brine::Server server(options);
    calc::register_calculator(server);
    std::vector<std::string> bound;
    for (const auto& uri : uris) bound.push_back(server.listen(uri));
    for (const auto& uri : brokers) server.connect(uri);
    server.start();
    for (const auto& uri : bound) std::printf("listening %s\n", uri.c_str());
    for (const auto& uri : brokers) std::printf("connected %s\n", uri.c_str());
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
