#include "transports.hpp"

#include <stdexcept>

namespace brine_test {

const std::vector<TestTransport>& all_transports() {
  static const std::vector<TestTransport> list = {
      {"tcp4", "tcp://127.0.0.1:0"},
      {"tcp6", "tcp://[::1]:0"},
      {"tls4", "tls://127.0.0.1:0", false, false, true},
      {"tls6", "tls://[::1]:0", false, false, true},
      {"unix", "unix:///tmp/brine-test-%u.sock"},
      {"abstract", "unix://@brine-test-%u"},
      {"zmq_tcp", "zmq+tcp://127.0.0.1:0", true},
      {"zmq_ipc", "zmq+ipc:///tmp/brine-test-%u.ipc", true},
      {"zmq_inproc", "zmq+inproc://brine-test-%u", true, true, false, false},
      {"mem", "mem://brine-test-%u", false, true, false, true, true},
      {.name = "udp4", .uri = "udp://127.0.0.1:0", .datagram = true},
      {.name = "udp6", .uri = "udp://[::1]:0", .datagram = true},
      {.name = "unixgram", .uri = "unixgram:///tmp/brine-test-%u.dgram", .datagram = true},
  };
  return list;
}

const TestTransport& test_transport(const std::string& name) {
  for (const TestTransport& t : all_transports()) {
    if (t.name == name) return t;
  }
  throw std::invalid_argument("unknown test transport " + name);
}

std::vector<std::string> transports(bool (*keep)(const TestTransport&)) {
  std::vector<std::string> out;
  for (const TestTransport& t : all_transports()) {
    if (keep == nullptr || keep(t)) out.push_back(t.name);
  }
  return out;
}

}  // namespace brine_test
