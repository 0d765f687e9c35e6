// The peers brine_bench compares brine with: gRPC and Cap'n Proto, each an echo of one byte
// string over loopback TCP, served by its own process (peer_grpc_server, peer_capnp_server).
// brine_bench includes only this header, never gRPC's or Cap'n Proto's; a factory is defined
// when its peer is built (BRINE_BENCH_GRPC, BRINE_BENCH_CAPNP, set by bench/peers/CMakeLists.txt).
#pragma once

#include <memory>
#include <string>

#include "caller.hpp"

namespace brine_bench {

// A caller on one new connection to `uri` ("tcp://127.0.0.1:PORT", as the peer's server prints
// it). Each call sends `bytes` bytes and checks that the echo has as many; payloads up to 64 MiB.
// Throws std::runtime_error when the server cannot be reached.

// gRPC: a synchronous stub on its own channel (own TCP connection), unary Echo(Blob) -> Blob.
std::unique_ptr<Caller> make_grpc_caller(const std::string& uri);

// Cap'n Proto: an EzRpcClient (its own kj event loop, on the calling thread) calling
// Echo.echo(data) -> (data). The caller must be used and destroyed on the thread that made it.
std::unique_ptr<Caller> make_capnp_caller(const std::string& uri);

}  // namespace brine_bench
