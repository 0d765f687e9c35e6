// brine::testing::ServerProcess: a server in a child process, ready when it says so.
//
// The child gets three descriptors: /dev/null as standard input, one pipe as standard output and
// error (collected by a reader thread), and the readiness pipe as descriptor 3, named in
// BRINE_READY_FD together with the child's pid (so that a grandchild, which inherits the variable
// but not the pipe, ignores it). The child leads its own process group, so that a signal reaches
// whatever it started, and dies with its parent (PR_SET_PDEATHSIG). Waiting for its end polls a
// pidfd: every wait has a timeout and none sleeps.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dirent.h>
#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "brine/testing.hpp"
#include "event/fd.hpp"

extern char** environ;

namespace brine::testing {
namespace {

using Clock = std::chrono::steady_clock;
using brine::event::Fd;
using std::chrono::milliseconds;

constexpr int kReadyFd = 3;
constexpr std::string_view kListening = "listening ";

[[noreturn]] void fail_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

std::pair<Fd, Fd> make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) fail_errno("pipe2");
  return {Fd(fds[0]), Fd(fds[1])};
}

// Writes `value` in decimal at `out` (async-signal-safe); returns the end.
char* put_decimal(char* out, long value) {
  char digits[24];
  int n = 0;
  do {
    digits[n++] = char('0' + value % 10);
    value /= 10;
  } while (value > 0);
  while (n > 0) *out++ = digits[--n];
  return out;
}

// The child's side of the descriptors, between fork and exec or the server: only
// async-signal-safe calls. Returns false if it could not be arranged.
bool arrange_child(pid_t parent, int out_w, int ready_w) {
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) return false;  // the parent is gone already
  const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null < 0) return false;
  const int ready = ::fcntl(ready_w, F_DUPFD_CLOEXEC, 10);
  if (ready < 0 || ::dup2(null, STDIN_FILENO) < 0 || ::dup2(out_w, STDOUT_FILENO) < 0 ||
      ::dup2(out_w, STDERR_FILENO) < 0 || ::dup2(ready, kReadyFd) < 0) {
    return false;
  }
  ::syscall(SYS_close_range, kReadyFd + 1, ~0U, 0);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  return true;
}

// "host" of scheme://host:port, and the scheme.
std::pair<std::string, std::string> scheme_and_host(std::string_view uri) {
  const auto sep = uri.find("://");
  if (sep == std::string_view::npos) return {};
  const auto colon = uri.rfind(':');
  if (colon == std::string_view::npos || colon < sep + 3) return {};
  return {std::string(uri.substr(0, sep)), std::string(uri.substr(sep + 3, colon - sep - 3))};
}

bool has_port(std::string_view uri) {
  const auto colon = uri.rfind(':');
  return colon != std::string_view::npos && colon + 1 < uri.size() &&
         uri.find("://") != std::string_view::npos && uri.find("://") < colon &&
         std::all_of(uri.begin() + std::ptrdiff_t(colon) + 1, uri.end(),
                     [](char c) { return c >= '0' && c <= '9'; });
}

// Where the URI asking for port 0 starts in `arg` (its scheme), or npos.
std::size_t port_zero_uri(std::string_view arg) {
  if (!arg.ends_with(":0")) return std::string_view::npos;
  const auto sep = arg.find("://");
  if (sep == std::string_view::npos || sep == 0) return std::string_view::npos;
  std::size_t start = sep;
  while (start > 0) {
    const char c = arg[start - 1];
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.')) break;
    --start;
  }
  return start;
}

}  // namespace

std::string ExitStatus::describe() const {
  if (signal != 0) {
    const char* name = ::strsignal(signal);
    return "signal " + std::to_string(signal) + (name ? std::string(" (") + name + ")" : "");
  }
  return "exit code " + std::to_string(code);
}

const std::string& TestServer::endpoint() const {
  const auto& all = endpoints();
  if (all.empty()) throw std::logic_error("brine::testing: the server has no endpoint");
  return all.front();
}

struct ServerProcess::State {
  // How to start it.
  std::vector<std::string> argv;  // spawn()
  std::vector<std::string> uris;  // fork()
  std::function<void(Server&)> setup;
  ServerOptions server_options;
  ProcessOptions options;

  // The child.
  pid_t pid = -1;
  Fd pidfd;
  bool reaped = true;
  ExitStatus status;
  std::vector<std::string> endpoints;

  // Filled by the reader thread.
  mutable std::mutex mu;
  std::condition_variable cv;
  std::string output;
  std::string out_line, ready_line;
  std::vector<std::string> printed, announced;
  bool ready = false, out_open = false, ready_open = false;
  std::thread reader;
  Fd stop_r, stop_w;

  ~State() {
    if (!reaped) {
      signal_group(SIGKILL);
      (void)reap(milliseconds(5000));
    }
    finish_reader();
  }

  void signal_group(int signo) const {
    if (pid > 0) ::kill(-pid, signo);
  }

  // Waits up to `timeout` for the child to end; true once it has been reaped.
  bool reap(milliseconds timeout) {
    if (reaped) return true;
    pollfd p{pidfd.get(), POLLIN, 0};
    int n;
    do {
      n = ::poll(&p, 1, int(timeout.count()));
    } while (n < 0 && errno == EINTR);
    if (n <= 0) return false;
    int st = 0;
    if (::waitpid(pid, &st, WNOHANG) != pid) return false;
    reaped = true;
    status = WIFSIGNALED(st) ? ExitStatus{-1, WTERMSIG(st)} : ExitStatus{WEXITSTATUS(st), 0};
    pidfd.reset();
    signal_group(SIGKILL);  // what it started and left behind goes with it
    // Its last words: the reader reaches the end of its output (bounded, in case something
    // outside its group still holds the pipe).
    std::unique_lock lk(mu);
    cv.wait_for(lk, std::chrono::seconds(2), [&] { return !out_open; });
    return true;
  }

  void on_line(std::string line, bool announced_pipe) {
    if (announced_pipe) {
      if (line == "ready") {
        ready = true;
      } else if (line.starts_with(kListening)) {
        announced.push_back(line.substr(kListening.size()));
      }
    } else if (line.starts_with(kListening)) {
      printed.push_back(line.substr(kListening.size()));
      if (options.endpoints > 0 && printed.size() >= options.endpoints) ready = true;
    }
  }

  void take(const char* data, std::size_t n, bool announced_pipe) {
    std::string& pending = announced_pipe ? ready_line : out_line;
    if (!announced_pipe) {
      output.append(data, n);
      if (options.echo_output) (void)!::write(STDERR_FILENO, data, n);
    }
    pending.append(data, n);
    for (auto nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n')) {
      on_line(pending.substr(0, nl), announced_pipe);
      pending.erase(0, nl + 1);
    }
  }

  void read_loop(Fd out, Fd ready_pipe) {
    char buf[4096];
    for (;;) {
      pollfd p[3] = {
          {out.get(), POLLIN, 0}, {ready_pipe.get(), POLLIN, 0}, {stop_r.get(), POLLIN, 0}};
      const int n = ::poll(p, 3, -1);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) break;
      const bool stopping = (p[2].revents & POLLIN) != 0;
      for (int i = 0; i < 2; ++i) {
        Fd& fd = i == 0 ? out : ready_pipe;
        if (fd.get() < 0 || (p[i].revents == 0 && !stopping)) continue;
        for (;;) {  // what is there now (the descriptors are non-blocking)
          const ssize_t got = ::read(fd.get(), buf, sizeof buf);
          if (got > 0) {
            std::lock_guard lk(mu);
            take(buf, std::size_t(got), i == 1);
            continue;
          }
          if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
            fd.reset();
            std::lock_guard lk(mu);
            (i == 0 ? out_open : ready_open) = false;
          }
          if (got < 0 && errno == EINTR) continue;
          break;
        }
      }
      cv.notify_all();
      if (stopping || (out.get() < 0 && ready_pipe.get() < 0)) break;
    }
    std::lock_guard lk(mu);
    out_open = ready_open = false;
    cv.notify_all();
  }

  void finish_reader() {
    if (!reader.joinable()) return;
    const char one = 1;
    (void)!::write(stop_w.get(), &one, 1);
    reader.join();
  }

  void launch() {
    finish_reader();
    auto [out_r, out_w] = make_pipe();
    auto [ready_r, ready_w] = make_pipe();
    auto [sr, sw] = make_pipe();
    stop_r = std::move(sr);
    stop_w = std::move(sw);
    ::fcntl(out_r.get(), F_SETFL, O_NONBLOCK);
    ::fcntl(ready_r.get(), F_SETFL, O_NONBLOCK);

    // Everything the child needs, made before the fork (after it, a multithreaded parent's
    // child may only make async-signal-safe calls until exec).
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    std::vector<std::string> env_text(options.environment);
    std::vector<char*> env;
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::strncmp(*e, "BRINE_READY_FD=", 15) != 0) env.push_back(*e);
    }
    for (auto& e : env_text) env.push_back(e.data());
    char ready_var[64] = "BRINE_READY_FD=3:";
    env.push_back(ready_var);
    env.push_back(nullptr);

    const pid_t parent = ::getpid();
    const pid_t child = ::fork();
    if (child < 0) fail_errno("fork");
    if (child == 0) {
      if (!arrange_child(parent, out_w.get(), ready_w.get())) ::_exit(127);
      *put_decimal(ready_var + std::strlen(ready_var), long(::getpid())) = '\0';
      if (setup) run_forked_server(ready_var + 15);
      ::execve(args[0], args.data(), env.data());
      const char msg[] = "brine::testing: cannot execute the server program\n";
      (void)!::write(STDERR_FILENO, msg, sizeof msg - 1);
      ::_exit(127);
    }
    // The child leads its group from its first instruction on (setpgid on both sides).
    ::setpgid(child, child);
    pid = child;
    reaped = false;
    status = {};
    pidfd = Fd(int(::syscall(SYS_pidfd_open, child, 0)));
    if (pidfd.get() < 0) {
      const int err = errno;
      signal_group(SIGKILL);
      ::waitpid(child, nullptr, 0);
      reaped = true;
      errno = err;
      fail_errno("pidfd_open (Linux 5.3 or newer is needed)");
    }
    {
      std::lock_guard lk(mu);
      ready = false;
      out_open = ready_open = true;
      out_line.clear();
      ready_line.clear();
      printed.clear();
      announced.clear();
    }
    out_w.reset();
    ready_w.reset();
    reader = std::thread([this, out = std::move(out_r), rp = std::move(ready_r)]() mutable {
      read_loop(std::move(out), std::move(rp));
    });
    wait_ready();
  }

  // In the forked child: the server, until SIGTERM or SIGINT.
  [[noreturn]] void run_forked_server(const char* ready_value) {
    try {
      sigset_t stop_signals;
      sigemptyset(&stop_signals);
      sigaddset(&stop_signals, SIGTERM);
      sigaddset(&stop_signals, SIGINT);
      ::pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);  // every thread of the server too
      ::setenv("BRINE_READY_FD", ready_value, 1);
      Server server(server_options);
      setup(server);
      for (const auto& u : uris) (void)server.listen(u);
      server.start();
      int got = 0;
      ::sigwait(&stop_signals, &got);
      server.stop();
      std::fflush(nullptr);
      ::_exit(0);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "brine::testing: the forked server failed: %s\n", e.what());
    } catch (...) {
      std::fprintf(stderr, "brine::testing: the forked server failed\n");
    }
    std::fflush(nullptr);
    ::_exit(70);
  }

  std::string name() const { return setup ? "forked server" : "server process " + argv.at(0); }

  void wait_ready() {
    std::unique_lock lk(mu);
    const auto deadline = Clock::now() + options.ready_timeout;
    cv.wait_until(lk, deadline, [&] { return ready || (!out_open && !ready_open); });
    if (ready) {
      endpoints = announced.empty() ? printed : announced;
      if (options.endpoints > 0 && endpoints.size() > options.endpoints)
        endpoints.resize(options.endpoints);
      return;
    }
    const bool ended = !out_open && !ready_open;
    lk.unlock();
    std::string why;
    if (ended && reap(milliseconds(2000))) {
      why = "ended with " + status.describe() + " before it was ready";
    } else {
      why = ended ? "closed its output and was not ready"
                  : "was not ready within " + std::to_string(options.ready_timeout.count()) +
                        " ms (ProcessOptions::ready_timeout)";
      signal_group(SIGKILL);
      (void)reap(milliseconds(5000));
    }
    finish_reader();
    lk.lock();
    throw std::runtime_error("brine::testing: " + name() + " " + why + "; its output:\n" + output);
  }

  // restart(): port 0 becomes the port the server reported, argument by argument.
  void pin_ports() {
    if (setup) {
      uris = endpoints;
      return;
    }
    std::vector<bool> used(endpoints.size(), false);
    for (auto& arg : argv) {
      const auto start = port_zero_uri(arg);
      if (start == std::string::npos) continue;
      const auto [scheme, host] = scheme_and_host(std::string_view(arg).substr(start));
      std::size_t pick = endpoints.size();
      for (int pass = 0; pass < 2 && pick == endpoints.size(); ++pass) {
        for (std::size_t i = 0; i < endpoints.size(); ++i) {
          if (used[i] || !has_port(endpoints[i])) continue;
          const auto [s, h] = scheme_and_host(endpoints[i]);
          if (h == host && (pass == 1 || s == scheme)) {
            pick = i;
            break;
          }
        }
      }
      if (pick == endpoints.size()) {
        throw std::logic_error("brine::testing: restart(): no reported endpoint matches '" + arg +
                               "'");
      }
      used[pick] = true;
      arg = arg.substr(0, start) + endpoints[pick];
    }
  }
};

ServerProcess::ServerProcess(std::unique_ptr<State> state) : state_(std::move(state)) {}
ServerProcess::ServerProcess(ServerProcess&&) noexcept = default;
ServerProcess& ServerProcess::operator=(ServerProcess&&) noexcept = default;
ServerProcess::~ServerProcess() = default;

ServerProcess ServerProcess::spawn(std::vector<std::string> argv, ProcessOptions options) {
  if (argv.empty()) throw std::invalid_argument("brine::testing: spawn() needs a program");
  auto state = std::make_unique<State>();
  state->argv = std::move(argv);
  state->options = std::move(options);
  state->launch();
  return ServerProcess(std::move(state));
}

ServerProcess ServerProcess::fork(std::vector<std::string> uris, std::function<void(Server&)> setup,
                                  ServerOptions server_options, ProcessOptions options) {
  if (uris.empty()) throw std::invalid_argument("brine::testing: fork() needs an endpoint");
  if (!setup) throw std::invalid_argument("brine::testing: fork() needs a setup function");
  auto state = std::make_unique<State>();
  state->uris = std::move(uris);
  state->setup = std::move(setup);
  state->server_options = std::move(server_options);
  state->options = std::move(options);
  state->launch();
  return ServerProcess(std::move(state));
}

const std::vector<std::string>& ServerProcess::endpoints() const {
  return state_->endpoints;
}

void ServerProcess::stop() {
  if (state_->reaped) return;
  state_->signal_group(SIGCONT);  // a paused child could not act on SIGTERM
  ::kill(state_->pid, SIGTERM);
  if (!state_->reap(state_->options.stop_timeout)) kill();
}

void ServerProcess::kill() {
  if (state_->reaped) return;
  state_->signal_group(SIGKILL);
  if (!state_->reap(milliseconds(5000))) {
    throw std::runtime_error("brine::testing: " + state_->name() + " survived SIGKILL for 5 s");
  }
}

void ServerProcess::restart() {
  stop();
  state_->pin_ports();
  state_->launch();
}

bool ServerProcess::running() {
  return !state_->reap(milliseconds(0));
}

void ServerProcess::pause() {
  if (state_->reaped) return;
  state_->signal_group(SIGSTOP);
  // A signal is delivered later: return once the child has stopped (or ended). SIGSTOP cannot be
  // caught or blocked, so this wait is short.
  siginfo_t info{};
  while (::waitid(P_PID, id_t(state_->pid), &info, WSTOPPED | WEXITED | WNOWAIT) != 0 &&
         errno == EINTR) {
  }
}

void ServerProcess::resume() {
  if (!state_->reaped) state_->signal_group(SIGCONT);
}

void ServerProcess::signal(int signo) {
  if (!state_->reaped) state_->signal_group(signo);
}

bool ServerProcess::wait(std::chrono::milliseconds timeout) {
  return state_->reap(timeout);
}

ExitStatus ServerProcess::exit_status() const {
  if (!state_->reaped) throw std::logic_error("brine::testing: the server process still runs");
  return state_->status;
}

pid_t ServerProcess::pid() const {
  return state_->pid;
}

std::string ServerProcess::output() const {
  std::lock_guard lk(state_->mu);
  return state_->output;
}

std::vector<pid_t> child_processes() {
  std::set<pid_t> found;
  DIR* tasks = ::opendir("/proc/self/task");
  if (tasks == nullptr) return {};
  while (const dirent* d = ::readdir(tasks)) {
    if (d->d_name[0] == '.') continue;
    std::ifstream in(std::string("/proc/self/task/") + d->d_name + "/children");
    pid_t p;
    while (in >> p) found.insert(p);
  }
  ::closedir(tasks);
  return {found.begin(), found.end()};
}

}  // namespace brine::testing
