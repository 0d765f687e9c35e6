// bank_client [--config FILE] [--connect URI] [--codec NAME] [--owner NAME]
//
// Opens an account, deposits, withdraws, overdraws (and shows the server's exception), prints
// the history, and leaves: the server then closes the account.
#include <cstdio>
#include <string>

#include "bank.hpp"
#include "flags.hpp"

int main(int argc, char** argv) {
  std::string config_path;
  std::string uri;
  std::string codec;
  std::string owner = "ann";
  examples::Flags flags("bank_client",
                        "Opens an account, deposits, withdraws, overdraws, prints the history.");
  flags
      .text("--config", "FILE", "configuration file: its [client] part (brine/config.hpp)",
            &config_path)
      .text("--connect", "URI", "the bank server (default tcp://127.0.0.1:7100)", &uri)
      .text("--codec", "NAME", "cereal or json", &codec)
      .text("--owner", "NAME", "the account's owner (default ann)", &owner);
  flags.parse(argc, argv);
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
