// The interface the remote compile-time checks use.
#pragma once

#include <brine/brine.hpp>
#include <brine/codecs/cereal.hpp>
#include <string>

struct Calculator {
  virtual ~Calculator() = default;
  virtual int add(int a, int b) = 0;
  virtual std::string name() const = 0;
};
BRINE_INTERFACE(Calculator, add, name);
