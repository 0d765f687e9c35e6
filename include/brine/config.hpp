// Configuration: servers and clients built from a TOML file, single keys overridden by
// environment variables. Changing codec, transport or limits needs no rebuild.
//
//   # brine.toml
//   codec = "json"                   # clients: prefer this codec where the types allow
//   max_frame_size = 16777216        # also: max_depth, max_decoded_bytes,
//                                    #       heartbeat_interval_ms, heartbeat_timeout_ms,
//                                    #       busy_poll_us (low-latency mode; 0 = off),
//                                    #       json_strict (true: RFC 8259 only, no NaN),
//                                    #       max_metadata_entries (64), max_metadata_bytes
//                                    #       (16384), log_calls (one line per call, stderr)
//   [server]
//   listen = ["tcp://127.0.0.1:7000", "unix:///tmp/calc.sock"]   # a string or a list
//   broker = "zmq+tcp://127.0.0.1:5556"   # broker backends to work for (string or list)
//   codecs = ["cereal", "protobuf"]       # serve only these (where the types allow; default all)
//   workers = 4
//   io_threads = 1
//   unix_mode = 0o600                     # socket file permissions (unix://, zmq+ipc://)
//   max_inflight_per_connection = 4096    # see ServerOptions
//   max_queued_calls = 65536
//   max_connections = 10000
//   max_objects_per_connection = 10000    # remote references one connection may hold
//   first_frame_timeout_ms = 10000        # timeouts for slow and silent peers
//   frame_timeout_ms = 30000
//   idle_timeout_ms = 60000
//   max_outbound_bytes = 4194304          # replies queued per connection before reading stops
//   drain_timeout_ms = 5000               # stop(): running calls may finish this long
//   call_memory_ms = 60000                # udp://, unixgram://: call ids kept (at most once)
//   tls_certificate = "server.crt"        # for tls:// endpoints (PEM files)
//   tls_private_key = "server.key"
//   tls_client_ca = "clients-ca.crt"      # require client certificates (mutual TLS)
//   tokens = ["s3cret"]                   # calls need "authorization: Bearer <one of them>"
//   open_methods = ["health"]             # ... except these
//   callback_timeout_ms = 5000            # calls to objects clients pass as arguments
//   metrics = true                        # count calls (Server::metrics, GET /metrics)
//   describe = true                       # answer "~describe" (brine describe, GET /v1)
//   [client]
//   connect = "tcp://127.0.0.1:7000"
//   codecs = ["protobuf", "cereal", "json"]   # the order of preference (this is the default)
//   timeout_ms = 5000
//   reconnect_backoff_initial_ms = 100
//   reconnect_backoff_max_ms = 10000
//   retransmit_interval_ms = 50           # udp://, unixgram://: first resend of a request
//   tls_ca = "ca.crt"                     # for tls:// (default: the system's CAs)
//   tls_certificate = "client.crt"        # and tls_private_key: this client's certificate
//   tls_server_name = "calc.example"      # default: the URI's host
//   token = "s3cret"                      # sent as "authorization: Bearer s3cret"
//   callback_workers = 2                  # threads running calls to objects passed as arguments
//
// The top-level keys apply to both sides; the same key inside [server] or [client] applies to
// that side only and wins. `codec` is a client's preference only: a server serves every codec its
// types allow unless [server] codecs lists fewer ([server] codec is refused, pointing there).
// Unknown keys are errors (a typo must not pass silently).
//
// Environment: BRINE_<KEY PATH> overrides one key, the path upper-cased with '.' as '_':
// BRINE_CODEC=json, BRINE_SERVER_WORKERS=8, BRINE_CLIENT_CONNECT=unix:///tmp/calc.sock,
// BRINE_SERVER_LISTEN='["tcp://127.0.0.1:0", "unix://@calc"]'. A value is read as a TOML value
// when it is one, else as a string.
//
// Errors: ConfigError, whose message names the file, the line and the key (or the environment
// variable) and says what was expected.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "brine/client.hpp"
#include "brine/server.hpp"

namespace brine {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ServerConfig {
  ServerOptions options;
  std::vector<std::string> listen;   // URIs to listen on
  std::vector<std::string> brokers;  // broker backends to work for (Server::connect)
};

struct ClientConfig {
  std::string connect;  // the server's (or broker frontend's) URI
  ClientOptions options;
};

struct Config {
  ServerConfig server;
  ClientConfig client;
};

// Reads `path`, then applies the BRINE_* environment variables. Throws ConfigError.
Config load_config(const std::string& path);
// The same for TOML text; `origin` names it in messages. Environment variables apply too.
Config parse_config(std::string_view toml, std::string_view origin = "<config>");
// Only the environment variables, over the defaults (no file).
Config config_from_environment();

// Listens on every configured URI and works for every configured broker; returns the URIs with
// their real ports, listen ones first. Throws like Server::listen() and Server::connect().
std::vector<std::string> open_endpoints(Server& server, const ServerConfig& config);

}  // namespace brine
