// CapnpCaller: brine_bench's Cap'n Proto client (peers.hpp).
#include <capnp/ez-rpc.h>
#include <kj/async.h>

#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "peer_echo.capnp.h"
#include "peers.hpp"

namespace brine_bench {
namespace {

constexpr std::size_t kMaxMessage = std::size_t(64) << 20;

capnp::ReaderOptions reader_options() {
  capnp::ReaderOptions o;
  o.traversalLimitInWords = kMaxMessage / sizeof(capnp::word);
  return o;
}

// EzRpcClient runs its kj event loop on the thread that made it (shared with any other
// EzRpcClient of that thread); every call waits on that loop, so the caller stays on that thread.
class CapnpCaller final : public Caller {
 public:
  explicit CapnpCaller(const std::string& uri)
      : client_(address_of(uri), 0, reader_options()), echo_(client_.getMain<peer::Echo>()) {}
  // kj's destructors may throw (noexcept(false)); a Caller's may not.
  ~CapnpCaller() noexcept override = default;

  void call(std::size_t bytes) override {
    if (std::this_thread::get_id() != owner_) {
      throw std::logic_error("capnp caller used on a thread other than the one that made it");
    }
    if (payload_.size() != bytes) payload_.assign(bytes, 'x');
    // Sized up front, so a large payload is copied once into the request's first segment.
    auto request = echo_.echoRequest(capnp::MessageSize{bytes / sizeof(capnp::word) + 8, 0});
    request.setData(kj::arrayPtr(payload_.data(), payload_.size()));
    const auto reply = request.send().wait(client_.getWaitScope());
    if (reply.getData().size() != bytes) throw std::runtime_error("capnp echo: wrong size");
  }

 private:
  static std::string address_of(const std::string& uri) {
    if (uri.rfind("tcp://", 0) != 0) throw std::runtime_error("capnp peer: not tcp: " + uri);
    return uri.substr(6);
  }

  capnp::EzRpcClient client_;
  peer::Echo::Client echo_;
  std::thread::id owner_ = std::this_thread::get_id();
  std::vector<kj::byte> payload_;
};

}  // namespace

std::unique_ptr<Caller> make_capnp_caller(const std::string& uri) {
  return std::make_unique<CapnpCaller>(uri);
}

}  // namespace brine_bench
