// The transports that the test grids run over: the one list. A new transport is one entry here
// (with its listening URI), and every grid then runs over it.
#pragma once

#include <string>
#include <vector>

namespace brine_test {

struct TestTransport {
  std::string name;  // the grid's name for it: "tcp4", "mem", ...
  // A listening URI on loopback (or in the process); "%u" is replaced by a name unique in this
  // test run.
  std::string uri;
  bool zmq = false;     // ZeroMQ: a peer's departure shows only as silence
  bool inproc = false;  // reachable from this process only (mem, zmq_inproc)
  bool tls = false;     // needs the test certificates
  // A server that went away is noticed before the call's deadline (zmq_inproc: ZeroMQ reports
  // nothing for inproc endpoints), and a new server on the same name is reached again.
  bool reports_loss = true;
  // Frames are delivered on the sending thread (mem): a server with workers = 0 runs its
  // handlers on the caller's thread.
  bool delivers_inline = false;
  // One frame per datagram (udp, unixgram): frames over the datagram limit are refused, and a
  // peer's departure shows only as silence.
  bool datagram = false;
};

const std::vector<TestTransport>& all_transports();
const TestTransport& test_transport(const std::string& name);

// The names of the transports that `keep` accepts (every one by default).
std::vector<std::string> transports(bool (*keep)(const TestTransport&) = nullptr);

// Filters for transports().
inline bool from_another_process(const TestTransport& t) {
  return !t.inproc;
}
inline bool from_another_process_in_the_clear(const TestTransport& t) {
  return !t.inproc && !t.tls;
}

}  // namespace brine_test
