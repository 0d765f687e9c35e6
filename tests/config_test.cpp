// Configuration: TOML keys, environment overrides, and errors that name file, line and key.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include <brine/config.hpp>

#include "calculator.hpp"

namespace {

using brine::ConfigError;
using brine::parse_config;
using namespace std::chrono_literals;

// Sets an environment variable for one test's scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) { ::setenv(name, value, 1); }
  ~ScopedEnv() { ::unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
};

// The message of the ConfigError that `f` throws ("" if none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Config, EveryKeyReachesItsOption) {
  const auto c = parse_config(R"(
codec = "json"
max_frame_size = 65536
max_depth = 20
max_decoded_bytes = 1048576
heartbeat_interval_ms = 250
heartbeat_timeout_ms = 900
busy_poll_us = 40
json_strict = true
[server]
listen = ["tcp://127.0.0.1:0", "unix://@brine-config-test"]
broker = "zmq+tcp://127.0.0.1:5556"
codecs = ["cereal", "protobuf"]
workers = 0
io_threads = 2
unix_mode = 0o660
max_frame_size = 2048
max_connections = 77
max_objects_per_connection = 33
first_frame_timeout_ms = 1100
frame_timeout_ms = 1200
idle_timeout_ms = 1300
max_outbound_bytes = 65536
drain_timeout_ms = 1400
stream_window = 131072
tls_certificate = "s.crt"
tls_private_key = "s.key"
tls_client_ca = "c-ca.crt"
[client]
connect = "unix:///tmp/x.sock"
codecs = ["cereal", "json"]
timeout_ms = 1500
reconnect_backoff_initial_ms = 20
reconnect_backoff_max_ms = 800
stream_window = 1048576
tls_ca = "ca.crt"
tls_certificate = "c.crt"
tls_private_key = "c.key"
tls_server_name = "calc.example"
)");
  EXPECT_EQ(c.server.options.max_connections, 77u);
  EXPECT_EQ(c.server.options.max_objects_per_connection, 33u);
  EXPECT_EQ(c.server.options.first_frame_timeout, 1100ms);
  EXPECT_EQ(c.server.options.frame_timeout, 1200ms);
  EXPECT_EQ(c.server.options.idle_timeout, 1300ms);
  EXPECT_EQ(c.server.options.max_outbound_bytes, 65536u);
  EXPECT_EQ(c.server.options.drain_timeout, 1400ms);
  EXPECT_EQ(c.server.options.stream_window, 131072u);
  EXPECT_EQ(c.client.options.stream_window, 1048576u);
  EXPECT_EQ(c.client.options.reconnect_backoff_initial, 20ms);
  EXPECT_EQ(c.client.options.reconnect_backoff_max, 800ms);
  EXPECT_EQ(c.server.options.tls.certificate_file, "s.crt");
  EXPECT_EQ(c.server.options.tls.private_key_file, "s.key");
  EXPECT_EQ(c.server.options.tls.client_ca_file, "c-ca.crt");
  EXPECT_EQ(c.client.options.tls.ca_file, "ca.crt");
  EXPECT_EQ(c.client.options.tls.certificate_file, "c.crt");
  EXPECT_EQ(c.client.options.tls.private_key_file, "c.key");
  EXPECT_EQ(c.client.options.tls.server_name, "calc.example");
  EXPECT_EQ(c.server.listen,
            (std::vector<std::string>{"tcp://127.0.0.1:0", "unix://@brine-config-test"}));
  EXPECT_EQ(c.server.brokers, (std::vector<std::string>{"zmq+tcp://127.0.0.1:5556"}));
  EXPECT_EQ(c.server.options.codecs, (std::vector<std::string>{"cereal", "protobuf"}));
  EXPECT_EQ(c.server.options.workers, 0u);
  EXPECT_EQ(c.server.options.io_threads, 2u);
  EXPECT_EQ(c.server.options.unix_socket_mode, 0660u);
  EXPECT_EQ(c.server.options.max_frame_size, 2048u);  // the section's own key wins
  EXPECT_EQ(c.server.options.decode_limits.max_depth, 20u);
  EXPECT_EQ(c.server.options.decode_limits.max_decoded_bytes, 1048576u);
  EXPECT_EQ(c.client.options.decode_limits.max_decoded_bytes, 1048576u);
  EXPECT_EQ(c.server.options.heartbeat_interval, 250ms);
  EXPECT_EQ(c.server.options.heartbeat_timeout, 900ms);
  EXPECT_EQ(c.client.connect, "unix:///tmp/x.sock");
  EXPECT_EQ(c.client.options.codec, "json");
  EXPECT_EQ(c.client.options.codecs, (std::vector<std::string>{"cereal", "json"}));
  EXPECT_EQ(c.client.options.timeout, 1500ms);
  EXPECT_EQ(c.client.options.max_frame_size, 65536u);
  EXPECT_EQ(c.client.options.heartbeat_timeout, 900ms);
  EXPECT_EQ(c.server.options.busy_poll, std::chrono::microseconds(40));
  EXPECT_EQ(c.client.options.busy_poll, std::chrono::microseconds(40));
  EXPECT_TRUE(c.server.options.decode_limits.json_strict);
  EXPECT_TRUE(c.client.options.decode_limits.json_strict);
  EXPECT_NE(error_of([] {
              parse_config("json_strict = 1\n", "j.toml");
            }).find("j.toml:1: key 'json_strict': expected true or false, got an integer"),
            std::string::npos);
}

TEST(Config, CallContextKeysReachTheirOptions) {
  const auto c = parse_config(R"(
max_metadata_entries = 8
log_calls = true
[server]
tokens = ["alpha", "beta"]
open_methods = ["health"]
max_metadata_bytes = 512
[client]
token = "alpha"
log_calls = false
)");
  EXPECT_EQ(c.server.options.tokens, (std::vector<std::string>{"alpha", "beta"}));
  EXPECT_EQ(c.server.options.open_methods, (std::vector<std::string>{"health"}));
  EXPECT_EQ(c.server.options.metadata_limits.max_entries, 8u);
  EXPECT_EQ(c.server.options.metadata_limits.max_bytes, 512u);
  EXPECT_TRUE(c.server.options.log_calls);
  EXPECT_EQ(c.client.options.token, "alpha");
  EXPECT_EQ(c.client.options.metadata_limits.max_entries, 8u);
  EXPECT_EQ(c.client.options.metadata_limits.max_bytes, 16u * 1024);
  EXPECT_FALSE(c.client.options.log_calls);
  EXPECT_THROW((void)parse_config("[server]\ntokens = [\"\"]\n"), brine::ConfigError);
}

TEST(Config, ToolKeysReachTheServer) {
  const auto c = parse_config("[server]\nmetrics = false\ndescribe = false\n");
  EXPECT_FALSE(c.server.options.metrics);
  EXPECT_FALSE(c.server.options.describe);
  const auto d = parse_config("");
  EXPECT_TRUE(d.server.options.metrics);
  EXPECT_TRUE(d.server.options.describe);
  EXPECT_THROW((void)parse_config("[client]\nmetrics = false\n"), brine::ConfigError);
  EXPECT_THROW((void)parse_config("[server]\ndescribe = 1\n"), brine::ConfigError);
}

TEST(Config, CompressionIsASettingOnEachSide) {
  const auto c = parse_config(
      "compression = \"zstd\"\ncompression_threshold = 65536\n"
      "[server]\ncompression = [\"lz4\", \"zstd\"]\ncompression_level = 3\n");
  EXPECT_EQ(c.client.options.compression.algorithms, std::vector<std::string>{"zstd"});
  EXPECT_EQ(c.client.options.compression.threshold, 65536u);
  EXPECT_EQ(c.server.options.compression.algorithms, (std::vector<std::string>{"lz4", "zstd"}));
  EXPECT_EQ(c.server.options.compression.threshold, 65536u);  // the top level's
  EXPECT_EQ(c.server.options.compression.level, 3);
  EXPECT_EQ(c.client.options.compression.level, 0);
  const auto d = parse_config("");
  EXPECT_TRUE(d.client.options.compression.algorithms.empty());  // off unless asked
  EXPECT_EQ(d.server.options.compression.algorithms, (std::vector<std::string>{"zstd", "lz4"}));
  const auto off = parse_config("[server]\ncompression = []\n");
  EXPECT_TRUE(off.server.options.compression.algorithms.empty());
  EXPECT_THROW((void)parse_config("compression = \"gzip\"\n"), brine::ConfigError);
  // Only there: an empty list of tokens would turn authentication off without a word.
  EXPECT_THROW((void)parse_config("[server]\ntokens = []\n"), brine::ConfigError);
  EXPECT_THROW((void)parse_config("[server]\nlisten = []\n"), brine::ConfigError);
  EXPECT_THROW((void)parse_config("compression_level = 20\n"), brine::ConfigError);
  EXPECT_THROW((void)parse_config("[client]\ncompression_threshold = -1\n"), brine::ConfigError);
}

TEST(Config, EmptyFileGivesTheDefaults) {
  const auto c = parse_config("");
  const brine::ServerOptions server_defaults;
  const brine::ClientOptions client_defaults;
  EXPECT_TRUE(c.server.listen.empty());
  EXPECT_TRUE(c.server.options.codecs.empty());  // every codec
  EXPECT_EQ(c.server.options.workers, server_defaults.workers);
  EXPECT_EQ(c.client.options.codec, client_defaults.codec);
  EXPECT_EQ(c.client.options.timeout, client_defaults.timeout);
}

// Issue 13: a top-level codec = "cereal" made a mixed server refuse to start. It is the clients'
// preference now; what a server serves is [server] codecs, and [server] codec points there.
TEST(Config, TheClientsPreferenceIsNotTheServersAllowlist) {
  const auto c = parse_config("codec = \"cereal\"\n");
  EXPECT_EQ(c.client.options.codec, "cereal");
  EXPECT_TRUE(c.server.options.codecs.empty());
  const std::string e = error_of([] { parse_config("[server]\ncodec = \"json\"\n", "s.toml"); });
  EXPECT_NE(e.find("s.toml:2"), std::string::npos) << e;
  EXPECT_NE(e.find("codecs = [\"json\"]"), std::string::npos) << e;
  // A mixed server (protobuf messages and cereal structs) under that file starts and serves both.
  brine::Server server(c.server.options);
  server.handle(calc::kAdd, [](const calc::AddRequest& r) { return calc::Number{r.a + r.b}; });
  server.handle(calc::pb::kAdd,
                [](const calc::pb::AddRequest& r) {
                  calc::pb::Number n;
                  n.set_value(r.a() + r.b());
                  return n;
                },
                {.codecs = {brine::CodecId::protobuf}});  // (the structs serve json)
  EXPECT_NO_THROW(server.start());
}

TEST(Config, AnUnknownCodecIsRefusedWhereItWasSet) {
  const std::string e =
      error_of([] { parse_config("[client]\ncodecs = [\"cereal\", \"jsno\"]\n", "c.toml"); });
  EXPECT_NE(e.find("c.toml:2"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown codec 'jsno' (did you mean 'json'?)"), std::string::npos) << e;
  const std::string f =
      error_of([] { parse_config("[server]\ncodecs = [\"protobuff\"]\n", "s.toml"); });
  EXPECT_NE(f.find("did you mean 'protobuf'?"), std::string::npos) << f;
}

TEST(Config, ServerCodecsListOverridesTheSharedCodec) {
  const auto c = parse_config("codec = \"protobuf\"\n[server]\ncodecs = [\"cereal\", \"json\"]\n");
  EXPECT_EQ(c.server.options.codecs, (std::vector<std::string>{"cereal", "json"}));
  EXPECT_EQ(c.client.options.codec, "protobuf");
}

TEST(Config, EnvironmentOverridesSingleKeys) {
  ScopedEnv codec("BRINE_CODEC", "json");
  ScopedEnv workers("BRINE_SERVER_WORKERS", "8");
  ScopedEnv listen("BRINE_SERVER_LISTEN", R"(["tcp://[::1]:0", "unix://@b"])");
  ScopedEnv connect("BRINE_CLIENT_CONNECT", "tcp://127.0.0.1:7000");
  const auto c = parse_config("codec = \"cereal\"\n[server]\nworkers = 2\n");
  EXPECT_EQ(c.client.options.codec, "json");
  EXPECT_TRUE(c.server.options.codecs.empty());  // a preference is the clients'; servers serve all
  EXPECT_EQ(c.server.options.workers, 8u);
  EXPECT_EQ(c.server.listen, (std::vector<std::string>{"tcp://[::1]:0", "unix://@b"}));
  EXPECT_EQ(c.client.connect, "tcp://127.0.0.1:7000");
  // Without any file too.
  EXPECT_EQ(brine::config_from_environment().client.options.codec, "json");
}

TEST(Config, SyntaxErrorNamesFileLineAndColumn) {
  const std::string e =
      error_of([] { parse_config("codec = \"cereal\"\nworkers = \n", "a.toml"); });
  EXPECT_EQ(e.rfind("a.toml:2:", 0), 0u) << e;
}

TEST(Config, UnknownKeyNamesFileLineAndKey) {
  const std::string e =
      error_of([] { parse_config("codec = \"cereal\"\n[server]\nwrokers = 3\n", "b.toml"); });
  EXPECT_EQ(e.rfind("b.toml:3: unknown key 'server.wrokers'", 0), 0u) << e;
  EXPECT_NE(e.find("(did you mean 'workers'?)"), std::string::npos) << e;
  EXPECT_NE(e.find("known here: codec, "), std::string::npos) << e;  // says what is known
  EXPECT_NE(error_of([] { parse_config("[client]\nlisten = \"tcp://a:1\"\n"); }), "");
  EXPECT_NE(error_of([] { parse_config("[cleint]\nconnect = \"tcp://a:1\"\n"); }), "");
  EXPECT_EQ(error_of([] { parse_config("server = 5\n", "e.toml"); }),
            "e.toml:1: key 'server': expected a table ([server]), got an integer");
}

TEST(Config, WrongTypeOrRangeNamesTheKey) {
  std::string e = error_of([] { parse_config("[server]\n\nworkers = \"four\"\n", "c.toml"); });
  EXPECT_EQ(e, "c.toml:3: key 'server.workers': expected an integer, got a string");
  e = error_of([] { parse_config("max_frame_size = 10\n", "c.toml"); });
  EXPECT_EQ(e.rfind("c.toml:1: key 'max_frame_size': 10 is out of range", 0), 0u) << e;
  e = error_of([] { parse_config("[server]\nlisten = [1, 2]\n", "c.toml"); });
  EXPECT_EQ(e.rfind("c.toml:2: key 'server.listen': expected a string or an array", 0), 0u) << e;
}

TEST(Config, BadValuesNameTheKey) {
  std::string e = error_of([] { parse_config("codec = \"pickle\"\n", "d.toml"); });
  EXPECT_EQ(e.rfind("d.toml:1: key 'codec': unknown codec 'pickle'", 0), 0u) << e;
  e = error_of([] { parse_config("[client]\nconnect = \"http://x\"\n", "d.toml"); });
  EXPECT_EQ(e.rfind("d.toml:2: key 'client.connect':", 0), 0u) << e;
  e = error_of([] { parse_config("[server]\nbroker = \"tcp://127.0.0.1:1\"\n", "d.toml"); });
  EXPECT_EQ(e.rfind("d.toml:2: key 'server.broker':", 0), 0u) << e;
  e = error_of([] { parse_config("heartbeat_interval_ms = 500\nheartbeat_timeout_ms = 400\n"); });
  EXPECT_NE(e.find("heartbeat_timeout_ms"), std::string::npos) << e;
}

TEST(Config, BadEnvironmentValueNamesTheVariable) {
  ScopedEnv workers("BRINE_SERVER_WORKERS", "many");
  const std::string e = error_of([] { parse_config(""); });
  EXPECT_EQ(e,
            "environment variable BRINE_SERVER_WORKERS: key 'server.workers': expected an "
            "integer, got a string");
}

// Issue 13: BRINE_SERVER_WROKERS=8 was accepted silently, although a typo'd key in a file is
// refused with its line.
TEST(Config, AnUnknownBrineVariableIsRefusedWithASuggestion) {
  {
    ScopedEnv typo("BRINE_SERVER_WROKERS", "8");
    EXPECT_EQ(error_of([] { parse_config(""); }),
              "environment variable BRINE_SERVER_WROKERS: names no configuration key (did you "
              "mean BRINE_SERVER_WORKERS?)");
    EXPECT_NE(error_of([] { brine::config_from_environment(); }), "");
  }
  {
    ScopedEnv far("BRINE_NOTHING_LIKE_IT", "1");
    EXPECT_EQ(error_of([] { parse_config(""); }),
              "environment variable BRINE_NOTHING_LIKE_IT: names no configuration key");
  }
  // The build scripts' own variable is not configuration.
  ScopedEnv tool("BRINE_BUILD_DIR", "build-asan");
  EXPECT_EQ(error_of([] { parse_config(""); }), "");
}

// Issue 13: these were refused without the file, line or variable that set them.
TEST(Config, OrderedLimitsNameWhereEachWasSet) {
  EXPECT_EQ(error_of([] {
              parse_config("heartbeat_interval_ms = 500\n[client]\nheartbeat_timeout_ms = 400\n",
                           "h.toml");
            }),
            "h.toml:3: key 'heartbeat_timeout_ms': 400 must be longer than heartbeat_interval_ms "
            "(500, from h.toml:1) for the client");
  EXPECT_EQ(error_of([] { parse_config("[client]\nreconnect_backoff_max_ms = 50\n", "b.toml"); }),
            "b.toml:2: key 'reconnect_backoff_max_ms': 50 must be at least "
            "reconnect_backoff_initial_ms (100, from the default) for the client");
  ScopedEnv env("BRINE_SERVER_HEARTBEAT_TIMEOUT_MS", "1000");
  EXPECT_EQ(error_of([] { parse_config(""); }),
            "environment variable BRINE_SERVER_HEARTBEAT_TIMEOUT_MS: key 'heartbeat_timeout_ms': "
            "1000 must be longer than heartbeat_interval_ms (1000, from the default) for the "
            "server");
}

TEST(Config, ADirectoryIsNotAConfigurationFile) {
  EXPECT_EQ(error_of([] { brine::load_config("/tmp"); }),
            "/tmp: is a directory, not a configuration file");
}

TEST(Config, LoadsAFileAndNamesAMissingOne) {
  const std::string path = "/tmp/brine-config-test-" + std::to_string(::getpid()) + ".toml";
  {
    std::ofstream f(path);
    f << "[client]\nconnect = \"unix://@x\"\ntimeout_ms = \"slow\"\n";
  }
  const std::string e = error_of([&] { brine::load_config(path); });
  EXPECT_EQ(e.rfind(path + ":3: key 'client.timeout_ms'", 0), 0u) << e;
  ::unlink(path.c_str());
  const std::string missing = error_of([&] { brine::load_config(path); });
  EXPECT_EQ(missing.rfind(path, 0), 0u) << missing;
}

}  // namespace
