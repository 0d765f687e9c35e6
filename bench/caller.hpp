// What brine_bench measures: a Caller makes one round trip at a time over its own connection.
// brine's, the raw sockets' and the peers' (bench/peers: gRPC, Cap'n Proto) callers implement it.
#pragma once

#include <cstddef>

namespace brine_bench {

class Caller {
 public:
  virtual ~Caller() = default;
  // One round trip of `bytes` of payload each way; throws if the answer is not the echo.
  // A Caller is made, used and destroyed on one thread (a Cap'n Proto caller's event loop belongs
  // to the thread that made it); it is not safe to use from two threads.
  virtual void call(std::size_t bytes) = 0;
};

}  // namespace brine_bench
