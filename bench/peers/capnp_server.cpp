// peer_capnp_server: Cap'n Proto's side of brine_bench. An EzRpcServer (one thread, one kj event
// loop) whose bootstrap capability is an Echo, on 127.0.0.1 only, port chosen by the system.
// Prints "listening tcp://127.0.0.1:PORT", then "ready", and serves until killed.
#include <capnp/ez-rpc.h>
#include <kj/async.h>
#include <sys/prctl.h>

#include <csignal>
#include <cstdio>
#include <exception>

#include "peer_echo.capnp.h"

namespace {

// brine_bench's bulk rows send 16 MiB; a message is refused beyond the traversal limit.
constexpr std::size_t kMaxMessage = std::size_t(64) << 20;

// Cap'n Proto's Server classes have no virtual destructor: the kj::Own that kj::heap makes deletes
// through the concrete type, never through the base.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class EchoImpl final : public brine_bench::peer::Echo::Server {
 protected:
  kj::Promise<void> echo(EchoContext context) override {
    context.getResults().setData(context.getParams().getData());
    return kj::READY_NOW;
  }
};
#pragma GCC diagnostic pop

}  // namespace

int main() {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the bench
  try {
    capnp::ReaderOptions options;
    options.traversalLimitInWords = kMaxMessage / sizeof(capnp::word);
    capnp::EzRpcServer server(kj::heap<EchoImpl>(), "127.0.0.1:0", 0, options);
    auto& wait_scope = server.getWaitScope();
    const unsigned port = server.getPort().wait(wait_scope);
    std::printf("listening tcp://127.0.0.1:%u\nready\n", port);
    std::fflush(stdout);
    kj::NEVER_DONE.wait(wait_scope);
  } catch (const std::exception& e) {  // kj's exceptions are std::exceptions too
    std::fprintf(stderr, "peer_capnp_server: %s\n", e.what());
    return 1;
  }
  return 0;
}
