// The codec of each call (internal): the client's order of preference, narrowed by what the
// call's types can use and by what the server is known to serve each method in.
//
// What the server serves is learnt, not asked: a server that refuses a request for its codec
// names the codecs it serves that method in (detail::refused_codecs), and a call that was
// answered shows its codec is served. What was learnt is a hint: a refusal always replaces it,
// so a server restarted with other codecs costs one more round trip, never a wrong answer.
#pragma once

#include <atomic>
#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "brine/client.hpp"

namespace brine::detail {

class CodecChooser {
 public:
  // `preferred` (may be empty) first, then `order`. Throws std::invalid_argument for an unknown
  // name, or when no codec is named at all.
  CodecChooser(const std::string& preferred, const std::vector<std::string>& order);

  // The most preferred codec.
  CodecId first() const noexcept { return order_.front(); }

  // The codec for a call of `method` (the method's name without its object) whose types have
  // the contract `contract` and can use `usable`: the first of the order that `usable` has and
  // `tried` has not, among those the server is known to serve the method in if any are known.
  // Nullopt, and UNIMPLEMENTED in `none` naming what each side can use, when there is none.
  // Without `consult`, a client never refused takes the first usable codec of the order without
  // a look at what is known (no lock: the path of every call).
  std::optional<CodecPick> pick(std::string_view method, const Contract& contract, CodecSet usable,
                                CodecSet tried, Status& none, bool consult = false) const;
  // A call in `codec` was answered: the server serves `method` in it.
  void confirm(std::string_view method, const Contract& contract, CodecId codec);
  // If `status` is a refusal for the codec, remembers the codecs the server serves `method` in
  // and returns true.
  bool learn(std::string_view method, const Contract& contract, const Status& status);

 private:
  struct KeyView {
    std::string_view method;
    const Contract* contract;
  };
  struct Key {
    std::string method;
    const Contract* contract;
  };
  struct KeyHash {
    using is_transparent = void;
    std::size_t operator()(const KeyView& k) const noexcept;
    std::size_t operator()(const Key& k) const noexcept { return (*this)(view(k)); }
  };
  struct KeyEq {
    using is_transparent = void;
    template <class A, class B>
    bool operator()(const A& a, const B& b) const noexcept {
      return view(a).method == view(b).method && view(a).contract == view(b).contract;
    }
  };
  static KeyView view(const KeyView& k) noexcept { return k; }
  static KeyView view(const Key& k) noexcept { return {k.method, k.contract}; }

  // At most this many methods are remembered; past it, what was learnt is forgotten.
  static constexpr std::size_t kRemembered = 4096;

  void remember(KeyView key, CodecSet served);  // (mu_ held)

  std::vector<CodecId> order_;
  CodecSet order_set_ = 0;
  mutable std::mutex mu_;
  std::unordered_map<Key, CodecSet, KeyHash, KeyEq> served_;  // (mu_)
  std::atomic<bool> refused_{false};                          // learn() has recorded a refusal
};

}  // namespace brine::detail
