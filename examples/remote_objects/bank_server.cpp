// bank_server [--config FILE] [--listen URI ...]
//
// Serves a Bank as "bank". Prints "listening <uri>" per endpoint, then a line whenever an
// account opens or closes. Settings come from the [server] part of the configuration and
// BRINE_* environment variables (brine/config.hpp).
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "bank.hpp"
#include "flags.hpp"

namespace {

// Lines from many worker threads, whole.
void say(const std::string& line) {
  static std::mutex mu;
  std::lock_guard lk(mu);
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

class AccountImpl final : public bank::Account {
 public:
  AccountImpl(std::string owner, std::shared_ptr<std::atomic<std::int64_t>> open)
      : owner_(std::move(owner)), open_(std::move(open)) {
    say("opened an account for " + owner_ + " (" + std::to_string(++*open_) + " open)");
  }
  ~AccountImpl() override {
    say("closed the account of " + owner_ + " (" + std::to_string(--*open_) + " open)");
  }

  std::int64_t deposit(std::int64_t cents) override {
    if (cents <= 0) throw std::invalid_argument("deposit a positive amount");
    std::lock_guard lk(mu_);
    std::int64_t after = 0;
    if (__builtin_add_overflow(balance_, cents, &after)) {
      throw std::overflow_error("a deposit of " + std::to_string(cents) + " would overflow " +
                                std::to_string(balance_));
    }
    balance_ = after;
    history_.push_back("deposit " + std::to_string(cents));
    return balance_;
  }
  std::int64_t withdraw(std::int64_t cents) override {
    if (cents <= 0) throw std::invalid_argument("withdraw a positive amount");
    std::lock_guard lk(mu_);
    if (cents > balance_) {
      throw bank::InsufficientFunds("cannot withdraw " + std::to_string(cents) + " from " +
                                    std::to_string(balance_));
    }
    balance_ -= cents;
    history_.push_back("withdraw " + std::to_string(cents));
    return balance_;
  }
  std::int64_t balance() const override {
    std::lock_guard lk(mu_);
    return balance_;
  }
  std::vector<std::string> history() const override {
    std::lock_guard lk(mu_);
    return history_;
  }

 private:
  std::string owner_;
  std::shared_ptr<std::atomic<std::int64_t>> open_;
  mutable std::mutex mu_;
  std::int64_t balance_ = 0;
  std::vector<std::string> history_;
};

class BankImpl final : public bank::Bank {
 public:
  brine::Ref<bank::Account> open(const std::string& owner) override {
    if (owner.empty()) throw std::invalid_argument("an account needs an owner");
    return brine::make_ref<bank::Account, AccountImpl>(owner, open_);
  }
  std::int64_t open_accounts() override { return *open_; }

 private:
  std::shared_ptr<std::atomic<std::int64_t>> open_ = std::make_shared<std::atomic<std::int64_t>>(0);
};

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  std::vector<std::string> uris;
  examples::Flags flags("bank_server",
                        "Serves a Bank as \"bank\" until SIGINT or SIGTERM; prints \"listening "
                        "<uri>\"\nper endpoint, then a line whenever an account opens or closes.");
  flags
      .text("--config", "FILE", "configuration file: its [server] part (brine/config.hpp)",
            &config_path)
      .texts("--listen", "URI", "an endpoint (default tcp://127.0.0.1:7100)", &uris);
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
    if (config.listen.empty()) config.listen.push_back("tcp://127.0.0.1:7100");
    brine::Server server(config.options);
    server.expose<bank::Bank>("bank", std::make_shared<BankImpl>());
    const auto bound = brine::open_endpoints(server, config);
    server.start();
    for (const auto& uri : bound) say("listening " + uri);
    int sig = 0;
    sigwait(&stop, &sig);
    server.stop();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bank_server: %s\n", e.what());
    return 1;
  }
  return 0;
}
