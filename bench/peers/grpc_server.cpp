// peer_grpc_server: gRPC's side of brine_bench. A synchronous server (grpc::ServerBuilder, gRPC's
// own thread pool) echoing Blob, on 127.0.0.1 only, port chosen by the system. Prints
// "listening tcp://127.0.0.1:PORT", then "ready", and serves until killed.
#include <grpcpp/grpcpp.h>
#include <sys/prctl.h>

#include <csignal>
#include <cstdio>
#include <memory>

#include "peer_echo.grpc.pb.h"

namespace {

constexpr int kMaxMessage = 64 << 20;  // brine_bench's bulk rows send 16 MiB

class EchoService final : public brine_bench::peer::Echo::Service {
  grpc::Status Echo(grpc::ServerContext*, const brine_bench::peer::Blob* request,
                    brine_bench::peer::Blob* reply) override {
    reply->set_data(request->data());
    return grpc::Status::OK;
  }
};

}  // namespace

int main() {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the bench
  EchoService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(kMaxMessage);
  builder.SetMaxSendMessageSize(kMaxMessage);
  const std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::fprintf(stderr, "peer_grpc_server: cannot listen on 127.0.0.1\n");
    return 1;
  }
  std::printf("listening tcp://127.0.0.1:%d\nready\n", port);
  std::fflush(stdout);
  server->Wait();
  return 0;
}
