// bank_client [--config FILE] [--connect URI] [--codec NAME] [--owner NAME]
//
// Opens an account, deposits, withdraws, overdraws (and shows the server's exception), prints
// the history, and leaves: the server then closes the account.
#include <cstdio>
#include <string>

#include "bank.hpp"

int main(int argc, char** argv) {
  std::string config_path;
  std::string uri;
  std::string codec;
  std::string owner = "ann";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string arg = argv[i];
    const std::string value = argv[i + 1];
    if (arg == "--config") {
      config_path = value;
    } else if (arg == "--connect") {
      uri = value;
    } else if (arg == "--codec") {
      codec = value;
    } else if (arg == "--owner") {
      owner = value;
    } else {
      std::fprintf(stderr,
                   "usage: bank_client [--config FILE] [--connect URI] [--codec NAME] "
                   "[--owner NAME]\n");
      return 2;
    }
  }
  try {
    brine::ClientConfig config = config_path.empty() ? brine::config_from_environment().client
                                                     : brine::load_config(config_path).client;
    if (!uri.empty()) config.connect = uri;
    if (config.connect.empty()) config.connect = "tcp://127.0.0.1:7100";
    if (!codec.empty()) config.options.codec = codec;
    brine::Client client(config.connect, config.options);

    brine::Remote<bank::Bank> bank = client.remote<bank::Bank>("bank");
    brine::Remote<bank::Account> account = bank.open(owner);
    std::printf("%s has account %s\n", owner.c_str(), account.object_name().c_str());
    std::printf("deposit 100.00 -> balance %lld\n", static_cast<long long>(account.deposit(10000)));
    std::printf("withdraw 30.00 -> balance %lld\n", static_cast<long long>(account.withdraw(3000)));
    try {
      account.withdraw(1000000);
    } catch (const brine::RpcError& e) {
      std::printf("withdraw 10000.00 failed: %s (%s)\n", e.message().c_str(),
                  e.remote_type().c_str());
    }
    for (const auto& line : account.history()) std::printf("history: %s\n", line.c_str());
    std::printf("open accounts: %lld\n", static_cast<long long>(bank.open_accounts()));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bank_client: %s\n", e.what());
    return 1;
  }
  return 0;
}
