#include "server/registry.hpp"

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "brine/detail/frame.hpp"

namespace brine::detail {

void Registry::add_handler(std::string_view method, std::shared_ptr<HandlerBase> handler,
                           HandlerOptions options) {
  std::vector<CodecId> codecs = std::move(options.codecs);
  if (codecs.empty()) {
    for (CodecId c : known_codecs()) {
      if (handler->supports(c)) codecs.push_back(c);
    }
  }
  if (codecs.empty()) {
    throw std::logic_error("method '" + std::string(method) + "' (" + handler->signature() +
                           "): no codec can carry both its request and response types");
  }
  // Check every codec before taking any: a refused registration changes nothing.
  const auto existing = handlers_.find(method);
  for (CodecId c : codecs) {
    if (std::size_t(c) >= kCodecSlots || !handler->supports(c)) {
      throw std::logic_error("method '" + std::string(method) + "' (" + handler->signature() +
                             ") cannot use codec '" + std::string(codec_name(c)) + "'");
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

void Registry::check_codecs(const std::vector<std::string>& codecs) const {
  for (const std::string& codec_text : codecs) {
    const CodecId c = *codec_from_name(codec_text);
    for (const auto& [name, slots] : handlers_) {
      if (slots[std::size_t(c)]) continue;
      std::string types;
      for (const auto& h : slots) {
        if (h) types += (types.empty() ? "" : "; ") + h->signature();
      }
      throw std::invalid_argument("method '" + name + "' cannot use the configured codec '" +
                                  codec_text + "': its handlers take " + types);
    }
    std::vector<const InterfaceTable*> seen;
    for (const auto& [name, object] : objects_) check_interface(name, *object.table, c, seen);
  }
}

void Registry::check_interface(const std::string& object, const InterfaceTable& table, CodecId c,
                               std::vector<const InterfaceTable*>& seen) const {
  if (std::find(seen.begin(), seen.end(), &table) != seen.end()) return;
  seen.push_back(&table);
  for (const auto& [method, h] : table.methods) {
    if (!h->supports(c)) {
      throw std::invalid_argument("method '" + object + "." + std::string(method) + "' (" +
                                  h->signature() + ") cannot use the configured codec '" +
                                  std::string(codec_name(c)) + "'");
    }
    if (const InterfaceTable* next = h->result_interface()) {
      check_interface(object + "." + std::string(method) + "()", *next, c, seen);
    }
  }
}

Status Registry::resolve(std::string_view method, CodecId codec, Session* session,
                         Target& target) const {
  // A typed handler is one hash lookup; only when that misses is the name split into an object
  // and a method, so typed calls pay nothing for objects.
  if (const auto it = handlers_.find(method); it != handlers_.end()) {
    target.handler =
        std::size_t(codec) < kCodecSlots ? it->second[std::size_t(codec)].get() : nullptr;
    if (target.handler == nullptr) {
      return {StatusCode::unimplemented, "method '" + std::string(method) +
                                             "' does not accept codec '" +
                                             codec_display(std::uint8_t(codec)) + "'"};
    }
    return {};
  }
  return resolve_object(method, codec, session, target);
}

bool Registry::is_release(std::string_view method) noexcept {
  const auto dot = method.rfind('.');
  return dot != std::string_view::npos && method.substr(dot + 1) == kReleaseMethod;
}

void Registry::release(std::string_view method, Session* session) {
  const std::string_view name = method.substr(0, method.rfind('.'));
  if (session != nullptr && !name.empty() && name.front() == '@') session->release(name);
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
  if (!handler->supports(codec)) {
    return {StatusCode::unimplemented, "method '" + std::string(method) + "' (" +
                                           handler->signature() + ") cannot use codec '" +
                                           std::string(codec_name(codec)) + "'"};
  }
  target = {std::move(object.self), handler};
  return {};
}

}  // namespace brine::detail
