// GrpcCaller: brine_bench's gRPC client (peers.hpp).
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <stdexcept>
#include <string>

#include "peer_echo.grpc.pb.h"
#include "peers.hpp"

namespace brine_bench {
namespace {

constexpr int kMaxMessage = 64 << 20;

class GrpcCaller final : public Caller {
 public:
  explicit GrpcCaller(const std::string& uri) {
    if (uri.rfind("tcp://", 0) != 0) throw std::runtime_error("grpc peer: not tcp: " + uri);
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(kMaxMessage);
    args.SetMaxSendMessageSize(kMaxMessage);
    // A connection of its own: channels with equal arguments otherwise share one through gRPC's
    // global subchannel pool, and the throughput rows want one connection per caller.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto channel = grpc::CreateCustomChannel("ipv4:" + uri.substr(6),
                                             grpc::InsecureChannelCredentials(), args);
    if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(20))) {
      throw std::runtime_error("grpc peer: cannot connect to " + uri);
    }
    stub_ = peer::Echo::NewStub(channel);
  }

  void call(std::size_t bytes) override {
    if (request_.data().size() != bytes) request_.set_data(std::string(bytes, 'x'));
    grpc::ClientContext context;  // one per call, as gRPC requires
    const grpc::Status status = stub_->Echo(&context, request_, &reply_);
    if (!status.ok()) throw std::runtime_error("grpc echo: " + status.error_message());
    if (reply_.data().size() != bytes) throw std::runtime_error("grpc echo: wrong size");
  }

 private:
  std::unique_ptr<peer::Echo::Stub> stub_;
  peer::Blob request_;
  peer::Blob reply_;
};

}  // namespace

std::unique_ptr<Caller> make_grpc_caller(const std::string& uri) {
  return std::make_unique<GrpcCaller>(uri);
}

}  // namespace brine_bench
