// Serves and calls one method in-process over an abstract unix socket.
#include <brine/brine.hpp>
#include <brine/codecs/cereal.hpp>
#include <cstdio>
#include <string>

struct Greeting {
  std::string text;
  template <class A>
  void serialize(A& ar) {
    ar(text);
  }
};

int main() {
  brine::Server server;
  server.handle("greet", [](const Greeting& g) { return Greeting{"hello, " + g.text}; });
  const std::string uri = server.listen("unix://@brine-consumer-test");
  server.start();
  brine::Client client(uri);
  const auto reply = client.call<Greeting>("greet", Greeting{"consumer"});
  std::printf("%s (brine %s)\n", reply.text.c_str(), BRINE_VERSION_STRING);
  return reply.text == "hello, consumer" ? 0 : 1;
}
