#include "callback/callback_host.hpp"

#include "callback/reverse_channel.hpp"

namespace brine::detail {
namespace {

// Its connections end with the client's: no timeout of their own closes them.
constexpr std::chrono::milliseconds kNever = std::chrono::hours(24 * 365);

ServerOptions host_options(const ClientOptions& c) {
  ServerOptions o;
  o.workers = c.callback_workers;
  o.max_frame_size = c.max_frame_size;
  o.decode_limits = c.decode_limits;
  o.metadata_limits = c.metadata_limits;
  o.first_frame_timeout = kNever;
  o.frame_timeout = kNever;
  o.idle_timeout = kNever;
  o.heartbeat_timeout = kNever;
  o.log_calls = c.log_calls;
  // Never on the reading thread: that is the caller's own, blocked in its call (callback_workers
  // exist to keep callbacks off it).
  o.inline_fast_handlers = false;
  // What the client accepts and sends in compressed answers to the server's calls back.
  o.compression = c.compression;
  return o;
}

}  // namespace

CallbackHost::CallbackHost(const ClientOptions& client, std::weak_ptr<ClientCore> c)
    : options(host_options(client)),
      dispatcher(options, registry, counters, metrics),
      core(std::move(c)) {
  if (options.workers == 0) {
    throw std::invalid_argument("callback_workers must be at least 1");
  }
  dispatcher.start();
}

CallbackHost::~CallbackHost() {
  for (const auto& conn : set.all()) conn->close_now({StatusCode::cancelled, "client closed"});
  (void)set.wait_empty(std::chrono::seconds(2));
  dispatcher.stop();
}

std::shared_ptr<ServerConnection> CallbackHost::serve(
    const std::shared_ptr<transport::Channel>& carrier, event::EventLoop& loop,
    std::shared_ptr<ReverseChannel>& channel) {
  channel = std::make_shared<ReverseChannel>(carrier, loop);
  auto conn = std::make_shared<ServerConnection>(channel, options, dispatcher, counters, set, loop);
  conn->set_peer_core(core);
  set.add(conn);
  conn->start();
  return conn;
}

}  // namespace brine::detail
