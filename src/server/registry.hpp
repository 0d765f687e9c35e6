// The server's registry (internal): handlers by method and codec, exposed objects by name, and
// how a frame's method name finds what it calls.
//
// Registration happens before start() (the server checks that); afterwards the registry is only
// read, from every thread, without locks.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "brine/server.hpp"
#include "server/session.hpp"

namespace brine::detail {

// What a frame calls: a handler, or a method of an object (which `self` keeps alive).
struct Target {
  std::shared_ptr<void> self;
  HandlerBase* handler = nullptr;
};

// One method as describe and the metrics list it.
struct MethodEntry {
  // "add" (a handler), "calc.add" (an exposed object's), "@Account.deposit" (the objects of
  // interface Account that factories return).
  std::string name;
  std::string object;          // "calc"; "@" for factory-made objects; empty for a handler
  std::string_view interface;  // the object's interface; empty for a handler
  std::string_view member;     // the method's own name
  // Its handlers and the codecs each serves here (a handler's method may have one per type
  // family; an object's method has one).
  std::vector<std::pair<const HandlerBase*, CodecSet>> handlers;
};

class Registry {
 public:
  // Throws std::logic_error: no codec can carry the types, a codec is taken, a bad name.
  void add_handler(std::string_view method, std::shared_ptr<HandlerBase> handler,
                   HandlerOptions options);
  void add_object(std::string_view name, std::shared_ptr<void> object, const InterfaceTable& table);
  // The object `name` names on this side: one kept in `session` ("@17"), or an exposed one.
  std::optional<ExposedObject> object(std::string_view name, const Session* session) const {
    if (!name.empty() && name.front() == '@') {
      return session != nullptr ? session->find(name) : std::nullopt;
    }
    const auto it = objects_.find(name);
    if (it == objects_.end()) return std::nullopt;
    return it->second;
  }

  // The codecs served (names; empty: every codec). Throws std::invalid_argument for an unknown
  // name.
  void serve(const std::vector<std::string>& codecs);
  CodecSet served() const noexcept { return served_; }
  // Every method (of handlers, exposed objects, and the objects their factories return) must be
  // served in at least one codec. Throws std::invalid_argument with one line naming the first
  // that is not: its declaration and the codecs its types can use.
  void check_served() const;
  // A handler that holds a thread for a stream's life cannot run without workers: throws
  // std::invalid_argument naming the first such method when `workers` is 0.
  void check_threads(std::size_t workers) const;
  std::vector<std::string> idempotent_methods() const { return idempotent_; }
  bool idempotent(std::string_view method) const;
  // Every method, by name: handlers, exposed objects' methods, and those of the interfaces
  // their factories return (reached through factories, once per interface).
  std::vector<MethodEntry> methods() const;
  // Built-in methods ("~describe", ...: brine's own, served in json whatever `codecs` says)
  // begin with '~'; a user's method may not.
  static bool is_builtin(std::string_view method) noexcept {
    return !method.empty() && method.front() == '~';
  }

  // Finds what `method` calls in `codec`: a handler, a method of an exposed object, or of an
  // object in `session` ("@N.method"; session is null where references cannot exist). OK with
  // the target set; NOT_FOUND; or UNIMPLEMENTED when the method is not served in `codec`, whose
  // type field lists the codecs it is served in (detail::codecs_refusal).
  Status resolve(std::string_view method, CodecId codec, Session* session, Target& target) const;
  // The codecs in which `method` (a typed handler's name: objects have one handler for every
  // codec) is served by a handler that `accepts`, besides `codec`.
  template <class Accepts>
  CodecSet other_codecs_accepting(std::string_view method, CodecId codec, Accepts&& accepts) const {
    CodecSet set = 0;
    const auto it = handlers_.find(method);
    if (it == handlers_.end()) return 0;
    for (std::size_t c = 0; c < it->second.size(); ++c) {
      const HandlerBase* h = it->second[c].get();
      if (h == nullptr || CodecId(c) == codec || (served_ & codec_bit(CodecId(c))) == 0) continue;
      if (accepts(*h)) set |= codec_bit(CodecId(c));
    }
    return set;
  }
  // Whether `method` is "<object>.~release".
  static bool is_release(std::string_view method) noexcept;
  // Frees the reference <object> of `session` that "<object>.~release" names (a name the
  // session does not hold, or one that is not a reference, changes nothing).
  // The object "<name>.~release" names, taken out of `session` (null if it holds none).
  static std::shared_ptr<void> release(std::string_view method, Session* session);

 private:
  Status resolve_object(std::string_view method, CodecId codec, Session* session,
                        Target& target) const;
  void check_interface(const std::string& object, const InterfaceTable& table,
                       std::vector<const InterfaceTable*>& seen) const;
  // The codecs `handler` serves here: those its types can use, of those served.
  CodecSet served_by(const HandlerBase& handler) const noexcept;
  // UNIMPLEMENTED for `method` (`handler`, whose types can use `usable`) asked in `codec`.
  Status refuse_codec(std::string_view method, const HandlerBase& handler, CodecSet usable,
                      CodecId codec) const;

  std::unordered_map<std::string, std::array<std::shared_ptr<HandlerBase>, kCodecSlots>, NameHash,
                     std::equal_to<>>
      handlers_;
  std::unordered_map<std::string, ExposedObject, NameHash, std::equal_to<>> objects_;
  std::vector<std::string> idempotent_;
  CodecSet served_ = kAllCodecs;
};

}  // namespace brine::detail
