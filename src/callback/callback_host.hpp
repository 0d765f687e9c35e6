// CallbackHost: what a client runs to serve the objects it passes as arguments (internal).
//
// A client that passes one of its objects to a server (a Remote<T> argument made from a local
// object) serves it to that server over the same connection: each ClientConnection that carries
// such an object gets a ServerConnection on a ReverseChannel (callback/reverse_channel.hpp), whose
// Session keeps the objects, served by this host's dispatcher on worker threads of its own (so a
// callback runs while the client's thread waits in a call, and may call the server again).
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "brine/client.hpp"
#include "brine/server.hpp"
#include "server/connection.hpp"
#include "server/dispatcher.hpp"
#include "server/registry.hpp"

namespace brine::detail {

class ClientCore;

struct CallbackHost {
  // `client`: the core the host's calls to the server go through (an object the server passes
  // to a callback is called there).
  CallbackHost(const ClientOptions& client, std::weak_ptr<ClientCore> core);
  ~CallbackHost();
  CallbackHost(const CallbackHost&) = delete;
  CallbackHost& operator=(const CallbackHost&) = delete;

  // The server policy for the objects passed over `carrier` (a client connection's channel),
  // started; frames for it are delivered to `channel`.
  std::shared_ptr<ServerConnection> serve(const std::shared_ptr<transport::Channel>& carrier,
                                          event::EventLoop& loop,
                                          std::shared_ptr<ReverseChannel>& channel);
  // A new object name: "@c1", "@c2"... (never reused by this client).
  std::string next_name() {
    return "@c" + std::to_string(next_.fetch_add(1, std::memory_order_relaxed));
  }

  ServerOptions options;
  Registry registry;  // empty: the objects live in each connection's Session
  Counters counters;
  Metrics metrics{false};  // a client counts nothing
  ConnectionSet set;
  Dispatcher dispatcher;
  std::weak_ptr<ClientCore> core;
  std::atomic<std::uint64_t> next_{1};
};

}  // namespace brine::detail
