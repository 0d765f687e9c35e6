// brine::testing: servers for cross-process tests on one host (target brine::testing).
//
//   #include <brine/testing.hpp>
//   auto server = brine::testing::ServerProcess::spawn(
//       {"./calculator_server", "--listen", "tcp://127.0.0.1:0"});
//   brine::Client client(server.endpoint());          // the real port, told by the server
//   server.pause();                                    // SIGSTOP: a peer that stopped answering
//   server.resume();
//   server.kill();                                     // SIGKILL: a crash
//   server.restart();                                  // the same command on the same endpoint
//
// Readiness is told by the server, never guessed: a child gets a pipe in BRINE_READY_FD, on which
// brine::Server::start() writes "listening <uri>" per endpoint and then "ready" (any program can
// write the same lines). A program that only prints "listening <uri>" lines on its standard
// output is waited for with ProcessOptions::endpoints. Whatever the child writes to its standard
// output and error is collected (output()). No child outlives its ServerProcess: the destructor
// kills the child's whole process group, and a child dies with the process that started it.
// Works with GoogleTest or without it; nothing here sleeps to synchronise.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "brine/server.hpp"

namespace brine::testing {

// How a child process ended.
struct ExitStatus {
  int code = -1;   // the exit code, or -1 if a signal ended it
  int signal = 0;  // the signal that ended it, or 0
  bool exited_normally() const { return signal == 0 && code == 0; }
  std::string describe() const;  // "exit code 3", "signal 9 (Killed)"
};

// What ServerProcess and LocalServer have in common: a test written against it runs against a
// server in another process or in this one.
class TestServer {
 public:
  virtual ~TestServer() = default;
  // The endpoints it listens on, with real ports, in the order they were asked for.
  virtual const std::vector<std::string>& endpoints() const = 0;
  const std::string& endpoint() const;  // the first; std::logic_error if there is none
  // Graceful stop (brine::Server::stop(): running calls finish); returns once it has ended.
  virtual void stop() = 0;
  // Ends it at once, as a crash would: connections drop, running calls are lost.
  virtual void kill() = 0;
  // Starts it again on the same endpoints (same ports, same paths); stops it first if it runs.
  virtual void restart() = 0;
  virtual bool running() = 0;
};

struct ProcessOptions {
  // From the start until the server says it is ready; past it the child is killed and the
  // start throws std::runtime_error with what the child printed.
  std::chrono::milliseconds ready_timeout{10000};
  // stop(): SIGTERM, then SIGKILL if the child has not ended after this long.
  std::chrono::milliseconds stop_timeout{5000};
  // 0: ready when the child says "ready" on BRINE_READY_FD (every brine::Server does). N > 0:
  // ready after N "listening <uri>" lines on its standard output (or "ready" on the pipe).
  std::size_t endpoints = 0;
  // Added to the child's environment ("NAME=value").
  std::vector<std::string> environment;
  // Also copy the child's output to this process's standard error as it arrives.
  bool echo_output = false;
};

// A server in a child process.
class ServerProcess final : public TestServer {
 public:
  // Runs a program (argv[0] is its path) and waits until it is ready. Throws
  // std::runtime_error if it cannot start, exits or is not ready in time (with its output).
  static ServerProcess spawn(std::vector<std::string> argv, ProcessOptions options = {});
  // Forks this process; the child makes a brine::Server with `server_options`, lets `setup`
  // add handlers and objects, listens on `uris` (port 0 and private paths are fine), starts it
  // and serves until stop(). Fork before this process starts ZeroMQ or other threads it needs
  // in the child (a fork copies only the calling thread), or use spawn().
  static ServerProcess fork(std::vector<std::string> uris, std::function<void(Server&)> setup,
                            ServerOptions server_options = {}, ProcessOptions options = {});

  ServerProcess(ServerProcess&&) noexcept;
  ServerProcess& operator=(ServerProcess&&) noexcept;
  ~ServerProcess() override;  // kills the child's process group if it still runs

  const std::vector<std::string>& endpoints() const override;
  void stop() override;
  void kill() override;
  // spawn(): the same command, with every argument that asked for port 0 given the port the
  // server reported for it (in order); fork(): the same setup on the reported endpoints, forked
  // again from this process, so fork()'s caveat applies anew (ThreadSanitizer refuses a fork
  // from a process that has threads by then; prefer spawn() for servers a test restarts).
  void restart() override;
  bool running() override;

  // SIGSTOP and SIGCONT to the child's process group: connections stay open and nothing is
  // answered, like a hung or half-open peer. pause() returns once the child has stopped.
  void pause();
  void resume();
  // Sends a signal to the child's process group.
  void signal(int signo);
  // Waits for the child to end by itself; false if it still runs after `timeout`.
  bool wait(std::chrono::milliseconds timeout);
  // How it ended (after stop(), kill() or a successful wait()); std::logic_error while it runs.
  ExitStatus exit_status() const;
  pid_t pid() const;
  // Everything it wrote to its standard output and error so far (from every start).
  std::string output() const;

  struct State;

 private:
  explicit ServerProcess(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// A server in this process on the in-process transport (mem://), for unit tests: the same
// interface, no process, no sockets. kill() drops it without draining.
class LocalServer final : public TestServer {
 public:
  explicit LocalServer(std::function<void(Server&)> setup, ServerOptions options = {},
                       std::vector<std::string> uris = {});  // default: one mem:// name
  ~LocalServer() override;
  LocalServer(const LocalServer&) = delete;
  LocalServer& operator=(const LocalServer&) = delete;

  const std::vector<std::string>& endpoints() const override { return endpoints_; }
  void stop() override;
  void kill() override;
  void restart() override;
  bool running() override { return server_ != nullptr; }
  // The running server (std::logic_error if it is not running).
  Server& server();

 private:
  void start(const std::vector<std::string>& uris);

  std::function<void(Server&)> setup_;
  ServerOptions options_;
  std::vector<std::string> endpoints_;
  std::unique_ptr<Server> server_;
};

// What a FaultProxy does to the bytes it carries. Every field applies from set() on, to the
// connections already open and to new ones.
struct Faults {
  // Each chunk of bytes, each way, is held this long, plus up to `jitter` more at random (bytes
  // keep their order).
  std::chrono::milliseconds latency{0};
  std::chrono::milliseconds jitter{0};
  // Bytes per second, each way, on each connection; 0: no cap.
  std::size_t bytes_per_second = 0;
  // A connection is closed (both sides, after what passed before) once this many bytes have
  // passed it, both ways together; 0: never.
  std::size_t cut_after_bytes = 0;
  // A connection is closed just before its N-th brine frame (counted from 1, both ways
  // together, by their length prefixes) would pass; 0: never.
  std::size_t cut_at_frame = 0;
  // Nothing passes and nothing is read, either way: connections stay open and silent, as with a
  // peer whose host vanished (half-open). New connections are accepted and held the same way.
  // (Datagrams: everything is dropped.)
  bool black_hole = false;
  // Datagram endpoints (udp://, unixgram://) only, each a share from 0 to 1 of the datagrams
  // each way: dropped; sent twice; held back so that the next one overtakes it (by latency plus
  // 10 ms). latency and jitter apply to each datagram, and jitter reorders them too. The cuts
  // and the bandwidth cap apply to streams only.
  double loss = 0;
  double duplicate = 0;
  double reorder = 0;
};

// A proxy for a stream endpoint (tcp://, tls://, unix://) or a datagram endpoint (udp://,
// unixgram://) on loopback, which injects faults: clients connect to endpoint() instead of the
// server's. TLS passes through untouched. A datagram client is a "connection": each client
// address gets its own socket towards the server, and reset() replaces them (as a NAT that
// forgot its mappings would).
//   brine::testing::FaultProxy proxy(server.endpoint());
//   brine::Client client(proxy.endpoint());
//   proxy.set({.black_hole = true});   // from now on nothing passes
class FaultProxy {
 public:
  explicit FaultProxy(std::string target, Faults faults = {});
  ~FaultProxy();
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  // Where clients connect: the target's scheme, a loopback address or private Unix path.
  const std::string& endpoint() const;
  void set(const Faults& faults);
  Faults faults() const;
  // Resets every open connection now (TCP RST; a Unix socket is closed).
  void reset();
  // Connections open now, and accepted since the start.
  std::size_t connections() const;
  std::size_t accepted() const;

  struct State;

 private:
  std::unique_ptr<State> state_;
};

// The processes this process has started and not yet reaped (its children), for tests that
// check that nothing was left running.
std::vector<pid_t> child_processes();

}  // namespace brine::testing
