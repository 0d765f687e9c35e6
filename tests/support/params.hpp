// The (transport, codec) grid that the parametrized suites run over.
#pragma once

#include <initializer_list>
#include <ostream>
#include <string>
#include <vector>

#include "transports.hpp"

namespace brine_test {

struct Param {
  std::string transport;  // a name listen_uri() knows: tcp4, tcp6, unix, abstract, zmq_...
  std::string codec;
  friend void PrintTo(const Param& p, std::ostream* os) { *os << p.transport << "/" << p.codec; }
};

// Every given transport (transports.hpp) with every codec.
inline std::vector<Param> grid(const std::vector<std::string>& transports) {
  std::vector<Param> out;
  for (const std::string& t : transports) {
    for (const char* c : {"cereal", "protobuf", "json"}) out.push_back({t, c});
  }
  return out;
}

// Test name suffix: "tcp4_cereal".
struct ParamName {
  template <class Info>
  std::string operator()(const Info& info) const {
    return info.param.transport + "_" + info.param.codec;
  }
};

}  // namespace brine_test
