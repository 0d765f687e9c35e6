#include "client/codec_choice.hpp"

#include <functional>
#include <stdexcept>

namespace brine::detail {

CodecChooser::CodecChooser(const std::string& preferred, const std::vector<std::string>& order) {
  auto add = [&](const std::string& name) {
    const auto id = codec_from_name(name);
    if (!id) {
      throw std::invalid_argument("unknown codec '" + name +
                                  "' (known: " + codec_names(kAllCodecs) + ")");
    }
    if ((order_set_ & codec_bit(*id)) != 0) return;
    order_.push_back(*id);
    order_set_ |= codec_bit(*id);
  };
  if (!preferred.empty()) add(preferred);
  for (const std::string& name : order) add(name);
  if (order_.empty()) throw std::invalid_argument("codecs: name at least one codec");
}

std::size_t CodecChooser::KeyHash::operator()(const KeyView& k) const noexcept {
  return std::hash<std::string_view>()(k.method) ^ (std::hash<const void*>()(k.contract) << 1);
}

std::optional<CodecPick> CodecChooser::pick(std::string_view method, const Contract& contract,
                                            CodecSet usable, CodecSet tried, Status& none,
                                            bool consult) const {
  const CodecSet candidates = usable & order_set_ & ~tried;
  if (!consult && tried == 0 && !refused_.load(std::memory_order_acquire)) {
    for (CodecId c : order_) {
      if ((candidates & codec_bit(c)) != 0) return CodecPick{c, false, false};
    }
  }
  std::optional<CodecSet> served;
  {
    std::lock_guard lk(mu_);
    if (const auto it = served_.find(KeyView{method, &contract}); it != served_.end()) {
      served = it->second;
    }
  }
  if (served) {
    for (CodecId c : order_) {
      if ((candidates & *served & codec_bit(c)) != 0) return CodecPick{c, true, false};
    }
  }
  // Nothing known, or what is known may be old: ask in the first candidate. Not when this call
  // was refused already (then what is known was just learnt).
  if (tried == 0 || !served) {
    for (CodecId c : order_) {
      if ((candidates & codec_bit(c)) != 0) return CodecPick{c, false, true};
    }
  }
  const std::string name(method);
  if ((usable & order_set_) == 0) {
    none = {StatusCode::unimplemented, "no codec for '" + name + "': its types can use " +
                                           codec_names(usable) + ", which this client's codecs (" +
                                           codec_names(order_set_) + ") do not include"};
  } else {
    none = {StatusCode::unimplemented, "no codec for '" + name + "': the server serves it in " +
                                           codec_names(served.value_or(0)) +
                                           "; here its types can use " +
                                           codec_names(usable & order_set_)};
  }
  return std::nullopt;
}

void CodecChooser::remember(KeyView key, CodecSet served) {
  if (const auto it = served_.find(key); it != served_.end()) {
    it->second = served;
    return;
  }
  if (served_.size() >= kRemembered) served_.clear();
  served_.emplace(Key{std::string(key.method), key.contract}, served);
}

void CodecChooser::confirm(std::string_view method, const Contract& contract, CodecId codec) {
  std::lock_guard lk(mu_);
  const KeyView key{method, &contract};
  const auto it = served_.find(key);
  remember(key, (it != served_.end() ? it->second : 0) | codec_bit(codec));
}

bool CodecChooser::learn(std::string_view method, const Contract& contract, const Status& status) {
  const std::optional<CodecSet> served = refused_codecs(status);
  if (!served) return false;
  std::lock_guard lk(mu_);
  remember(KeyView{method, &contract}, *served);
  refused_.store(true, std::memory_order_release);
  return true;
}

}  // namespace brine::detail
