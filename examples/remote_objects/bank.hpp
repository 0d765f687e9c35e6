// A bank served as remote objects: one Bank, and an Account per session that Bank::open makes
// for the caller. The server frees an account when its client drops the reference or
// disconnects.
#pragma once

#include <brine/brine.hpp>
#include <brine/codecs/cereal.hpp>
#include <brine/codecs/json.hpp>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace bank {

// Thrown by Account::withdraw; the caller receives it as brine::RpcError with this type name.
class InsufficientFunds : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Account {
  virtual ~Account() = default;
  // Both return the new balance, in cents.
  virtual std::int64_t deposit(std::int64_t cents) = 0;
  virtual std::int64_t withdraw(std::int64_t cents) = 0;
  virtual std::int64_t balance() const = 0;
  virtual std::vector<std::string> history() const = 0;
};
BRINE_INTERFACE(Account, deposit, withdraw, balance, history);

struct Bank {
  virtual ~Bank() = default;
  // A new account for `owner`, alive as long as the caller holds it.
  virtual brine::Ref<Account> open(const std::string& owner) = 0;
  virtual std::int64_t open_accounts() = 0;
};
BRINE_INTERFACE(Bank, open, open_accounts);

}  // namespace bank
