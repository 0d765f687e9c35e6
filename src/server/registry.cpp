#include "server/registry.hpp"

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "brine/detail/frame.hpp"
#include "wire/contract.hpp"

namespace brine::detail {
namespace {

// "int add(int, int)": how messages show a method.
std::string declaration(std::string_view method, const HandlerBase& handler) {
  return wire::display_signature(method.substr(method.rfind('.') + 1), handler.contract().text);
}

CodecSet usable_codecs(const HandlerBase& handler) noexcept {
  CodecSet set = 0;
  for (CodecId c : known_codecs()) {
    if (handler.supports(c)) set |= codec_bit(c);
  }
  return set;
}

}  // namespace

void Registry::add_handler(std::string_view method, std::shared_ptr<HandlerBase> handler,
                           HandlerOptions options) {
  std::vector<CodecId> codecs = std::move(options.codecs);
  if (codecs.empty()) {
    for (CodecId c : known_codecs()) {
      if (handler->supports(c)) codecs.push_back(c);
    }
  }
  if (codecs.empty()) {
    throw std::logic_error("method '" + std::string(method) + "' (" +
                           declaration(method, *handler) +
                           "): no codec can carry both its request and response types");
  }
  // Check every codec before taking any: a refused registration changes nothing.
  const auto existing = handlers_.find(method);
  for (CodecId c : codecs) {
    if (std::size_t(c) >= kCodecSlots || !handler->supports(c)) {
      throw std::logic_error("method '" + std::string(method) + "' (" +
                             declaration(method, *handler) + ") cannot use codec '" +
                             std::string(codec_name(c)) + "'");
    }
    if (existing != handlers_.end() && existing->second[std::size_t(c)]) {
      throw std::logic_error("method '" + std::string(method) + "' already has a handler for " +
                             std::string(codec_name(c)) +
                             " (HandlerOptions::codecs says which codecs a handler serves)");
    }
  }
  auto& slots = handlers_[std::string(method)];
  for (CodecId c : codecs) slots[std::size_t(c)] = handler;
  if (options.idempotent) idempotent_.emplace_back(method);
}

bool Registry::idempotent(std::string_view method) const {
  return std::find(idempotent_.begin(), idempotent_.end(), method) != idempotent_.end();
}

std::vector<MethodEntry> Registry::methods() const {
  std::vector<MethodEntry> out;
  for (const auto& [name, slots] : handlers_) {
    MethodEntry e{name, {}, {}, name, {}};
    for (std::size_t c = 0; c < slots.size(); ++c) {
      const HandlerBase* h = slots[c].get();
      if (h == nullptr) continue;
      const CodecSet bit =
          is_builtin(name) ? codec_bit(CodecId(c)) : codec_bit(CodecId(c)) & served_;
      auto same = std::find_if(e.handlers.begin(), e.handlers.end(),
                               [&](const auto& p) { return p.first == h; });
      if (same != e.handlers.end()) {
        same->second |= bit;
      } else {
        e.handlers.emplace_back(h, bit);
      }
    }
    out.push_back(std::move(e));
  }
  std::vector<const InterfaceTable*> seen;
  const auto add_table = [&](const std::string& object, const InterfaceTable& table,
                             auto& self) -> void {
    for (const auto& [member, h] : table.methods) {
      out.push_back({object + "." + std::string(member),
                     object,
                     table.name,
                     member,
                     {{h.get(), served_by(*h)}}});
    }
    for (const auto& [member, h] : table.methods) {
      const InterfaceTable* next = h->result_interface();
      if (next == nullptr || std::find(seen.begin(), seen.end(), next) != seen.end()) continue;
      seen.push_back(next);
      self("@" + std::string(next->name), *next, self);
    }
  };
  for (const auto& [name, object] : objects_) add_table(name, *object.table, add_table);
  for (auto& e : out) {
    if (e.object.size() > 1 && e.object.front() == '@') e.object = "@";
  }
  std::sort(out.begin(), out.end(),
            [](const MethodEntry& a, const MethodEntry& b) { return a.name < b.name; });
  return out;
}

void Registry::add_object(std::string_view name, std::shared_ptr<void> object,
                          const InterfaceTable& table) {
  const bool well_formed = !name.empty() && std::all_of(name.begin(), name.end(), [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-';
  });
  if (!well_formed) {
    throw std::logic_error("object name '" + std::string(name) +
                           "': use letters, digits, '_' and '-'");
  }
  if (!objects_.emplace(std::string(name), ExposedObject{std::move(object), &table}).second) {
    throw std::logic_error("an object named '" + std::string(name) + "' is already exposed");
  }
}

void Registry::serve(const std::vector<std::string>& codecs) {
  if (codecs.empty()) {
    served_ = kAllCodecs;
    return;
  }
  CodecSet set = 0;
  for (const std::string& name : codecs) {
    const auto id = codec_from_name(name);
    if (!id) {
      throw std::invalid_argument("unknown codec '" + name +
                                  "' (known: " + codec_names(kAllCodecs) + ")");
    }
    set |= codec_bit(*id);
  }
  served_ = set;
}

CodecSet Registry::served_by(const HandlerBase& handler) const noexcept {
  return usable_codecs(handler) & served_;
}

void Registry::check_threads(std::size_t workers) const {
  if (workers > 0) return;
  const auto refuse = [](const std::string& name) {
    throw std::invalid_argument(
        "stream method '" + name +
        "' is a plain function, which holds a thread for the stream's life: it needs "
        "workers > 0 (or make it a coroutine returning brine::Task)");
  };
  for (const auto& [name, slots] : handlers_) {
    for (const auto& h : slots) {
      if (h && h->blocks()) refuse(name);
    }
  }
  // Objects' methods, and those of the objects their factories make.
  std::vector<const InterfaceTable*> seen;
  std::vector<std::pair<std::string, const InterfaceTable*>> todo;
  for (const auto& [name, object] : objects_) todo.emplace_back(name, object.table);
  while (!todo.empty()) {
    auto [object, table] = todo.back();
    todo.pop_back();
    if (std::find(seen.begin(), seen.end(), table) != seen.end()) continue;
    seen.push_back(table);
    for (const auto& [method, h] : table->methods) {
      if (h->blocks()) refuse(object + "." + std::string(method));
      if (const InterfaceTable* next = h->result_interface()) {
        todo.emplace_back(object + "." + std::string(method) + "()", next);
      }
    }
  }
}

void Registry::check_served() const {
  for (const auto& [name, slots] : handlers_) {
    if (is_builtin(name)) continue;
    CodecSet usable = 0;
    const HandlerBase* any = nullptr;
    for (std::size_t c = 0; c < slots.size(); ++c) {
      if (!slots[c]) continue;
      usable |= codec_bit(CodecId(c));
      any = slots[c].get();
    }
    if ((usable & served_) == 0) {
      throw std::invalid_argument("method '" + name + "' (" + declaration(name, *any) +
                                  ") can use none of the codecs this server serves (" +
                                  codec_names(served_) + "): its types can use " +
                                  codec_names(usable));
    }
  }
  std::vector<const InterfaceTable*> seen;
  for (const auto& [name, object] : objects_) check_interface(name, *object.table, seen);
}

void Registry::check_interface(const std::string& object, const InterfaceTable& table,
                               std::vector<const InterfaceTable*>& seen) const {
  if (std::find(seen.begin(), seen.end(), &table) != seen.end()) return;
  seen.push_back(&table);
  for (const auto& [method, h] : table.methods) {
    if (served_by(*h) == 0) {
      throw std::invalid_argument(
          "method '" + object + "." + std::string(method) + "' (" + declaration(method, *h) +
          ") can use none of the codecs this server serves (" + codec_names(served_) +
          "): its types can use " + codec_names(usable_codecs(*h)));
    }
    if (const InterfaceTable* next = h->result_interface()) {
      check_interface(object + "." + std::string(method) + "()", *next, seen);
    }
  }
}

Status Registry::refuse_codec(std::string_view method, const HandlerBase& handler, CodecSet usable,
                              CodecId codec) const {
  const CodecSet served = usable & served_;
  return {StatusCode::unimplemented,
          "method '" + std::string(method) + "' (" + declaration(method, handler) +
              ") is not served in codec '" + codec_display(std::uint8_t(codec)) +
              "' by this server; it is served in " + codec_names(served),
          codecs_refusal(served)};
}

Status Registry::resolve(std::string_view method, CodecId codec, Session* session,
                         Target& target) const {
  // A typed handler is one hash lookup; only when that misses is the name split into an object
  // and a method, so typed calls pay nothing for objects.
  if (const auto it = handlers_.find(method); it != handlers_.end()) {
    const auto& slots = it->second;
    const bool served = (served_ & codec_bit(codec)) != 0 || is_builtin(method);
    target.handler =
        std::size_t(codec) < kCodecSlots && served ? slots[std::size_t(codec)].get() : nullptr;
    if (target.handler == nullptr) {
      CodecSet usable = 0;
      const HandlerBase* any = nullptr;
      for (std::size_t c = 0; c < slots.size(); ++c) {
        if (!slots[c]) continue;
        usable |= codec_bit(CodecId(c));
        any = slots[c].get();
      }
      return refuse_codec(method, *any, usable, codec);
    }
    return {};
  }
  return resolve_object(method, codec, session, target);
}

bool Registry::is_release(std::string_view method) noexcept {
  const auto dot = method.rfind('.');
  return dot != std::string_view::npos && method.substr(dot + 1) == kReleaseMethod;
}

std::shared_ptr<void> Registry::release(std::string_view method, Session* session) {
  const std::string_view name = method.substr(0, method.rfind('.'));
  if (session == nullptr || name.empty() || name.front() != '@') return nullptr;
  return session->release(name);
}

Status Registry::resolve_object(std::string_view method, CodecId codec, Session* session,
                                Target& target) const {
  const auto dot = method.rfind('.');
  if (dot == std::string_view::npos) {
    return {StatusCode::not_found, "no method '" + std::string(method) + "'"};
  }
  const std::string_view name = method.substr(0, dot);
  const std::string_view member = method.substr(dot + 1);
  ExposedObject object;
  if (!name.empty() && name.front() == '@') {
    auto found = session != nullptr ? session->find(name) : std::nullopt;
    if (!found) {
      return {StatusCode::not_found,
              "no object '" + std::string(name) +
                  "' on this connection (a remote reference ends with the connection that made "
                  "it, or when released)"};
    }
    object = std::move(*found);
  } else if (const auto it = objects_.find(name); it != objects_.end()) {
    object = it->second;
  } else {
    return {StatusCode::not_found,
            "no method '" + std::string(method) + "' and no object '" + std::string(name) + "'"};
  }
  HandlerBase* handler = object.table->find(member);
  if (handler == nullptr) {
    return {StatusCode::not_found, "object '" + std::string(name) + "' (" +
                                       std::string(object.table->name) + ") has no method '" +
                                       std::string(member) + "'"};
  }
  if ((served_ & codec_bit(codec)) == 0 || std::size_t(codec) >= kCodecSlots ||
      !handler->supports(codec)) {
    return refuse_codec(method, *handler, usable_codecs(*handler), codec);
  }
  target = {std::move(object.self), handler};
  return {};
}

}  // namespace brine::detail
