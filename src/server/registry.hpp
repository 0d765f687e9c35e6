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

class Registry {
 public:
  // Throws std::logic_error: no codec can carry the types, a codec is taken, a bad name.
  void add_handler(std::string_view method, std::shared_ptr<HandlerBase> handler,
                   HandlerOptions options);
  void add_object(std::string_view name, std::shared_ptr<void> object, const InterfaceTable& table);

  // With codecs configured, every method (of handlers, exposed objects, and the objects their
  // factories return) must serve each of them. Throws std::invalid_argument naming the method.
  void check_codecs(const std::vector<std::string>& codecs) const;
  std::vector<std::string> idempotent_methods() const { return idempotent_; }

  // Finds what `method` calls in `codec`: a handler, a method of an exposed object, or of an
  // object in `session` ("@N.method"; session is null where references cannot exist). OK with
  Status resolve(std::string_view method, CodecId codec, Session* session, Target& target) const;
  // Whether `method` is "<object>.~release".
  static bool is_release(std::string_view method) noexcept;
  // Frees the reference <object> of `session` that "<object>.~release" names (a name the
  // session does not hold, or one that is not a reference, changes nothing).
  static void release(std::string_view method, Session* session);

 private:
  Status resolve_object(std::string_view method, CodecId codec, Session* session,
                        Target& target) const;
  void check_interface(const std::string& object, const InterfaceTable& table, CodecId c,
                       std::vector<const InterfaceTable*>& seen) const;

  std::unordered_map<std::string, std::array<std::shared_ptr<HandlerBase>, kCodecSlots>, NameHash,
                     std::equal_to<>>
      handlers_;
  std::unordered_map<std::string, ExposedObject, NameHash, std::equal_to<>> objects_;
  std::vector<std::string> idempotent_;
};

}  // namespace brine::detail
