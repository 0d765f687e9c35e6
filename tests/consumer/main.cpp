// Serves and calls, in-process over an abstract unix socket, one method and one remote object,
// with the codec from a configuration text: the installed headers, library and dependencies.
#include <brine/brine.hpp>
#include <brine/codecs/cereal.hpp>
#include <brine/codecs/json.hpp>
#include <brine/testing.hpp>
#include <cstdio>
#include <memory>
#include <string>

struct Greeting {
  std::string text;
  template <class A>
  void serialize(A& ar) {
    ar(CEREAL_NVP(text));
  }
};

struct Greeter {
  virtual ~Greeter() = default;
  virtual std::string greet(const std::string& who, int times) = 0;
};
BRINE_INTERFACE(Greeter, greet);

struct Polite final : Greeter {
  std::string greet(const std::string& who, int times) override {
    std::string out;
    for (int i = 0; i < times; ++i) out += "hello, " + who + "! ";
    return out;
  }
};

int main() {
  const brine::Config config = brine::parse_config(R"(
codec = "json"
[server]
listen = "unix://@brine-consumer-test"
workers = 1
)");
  brine::Server server(config.server.options);
  server.handle("greet", [](const Greeting& g) { return Greeting{"hello, " + g.text}; });
  server.expose<Greeter>("greeter", std::make_shared<Polite>());
  const std::string uri = brine::open_endpoints(server, config.server).at(0);
  server.start();
  brine::Client client(uri, config.client.options);
  const auto reply = client.call<Greeting>("greet", Greeting{"consumer"});
  const std::string twice = client.remote<Greeter>("greeter").greet("consumer", 2);
  // The test kit, installed as brine::testing: the same object in an in-process server.
  brine::testing::LocalServer local(
      [](brine::Server& s) { s.expose<Greeter>("greeter", std::make_shared<Polite>()); });
  brine::Client local_client(local.endpoint());
  const std::string local_once = local_client.remote<Greeter>("greeter").greet("kit", 1);
  std::printf("%s / %s/ %s(brine %s)\n", reply.text.c_str(), twice.c_str(), local_once.c_str(),
              BRINE_VERSION_STRING);
  return reply.text == "hello, consumer" && twice == "hello, consumer! hello, consumer! " &&
                 local_once == "hello, kit! "
             ? 0
             : 1;
}
