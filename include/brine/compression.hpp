// Compression of large payloads (docs/wire-format.md, "Compression"), chosen in configuration.
//
// Every frame that carries an encoding field says which algorithms its sender accepts in the
// answer, so both sides agree per call: a client compresses a request only with an algorithm the
// server has said it accepts (in an earlier reply on the connection), and a server compresses a
// reply only with one its request accepts. Decompression is bounded by the receiver's
// max_frame_size: a small compressed payload cannot expand beyond it.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace brine {

struct CompressionOptions {
  // Algorithms, most preferred first: "zstd", "lz4". A client sends and accepts these; a server
  // accepts these in requests and answers with the first of them the request accepts. Unknown
  // names make the Client or Server constructor throw std::invalid_argument.
  std::vector<std::string> algorithms{};
  // Payloads smaller than this are sent as they are (below a few KiB compression saves little
  // and costs a call's worth of CPU). A payload that does not shrink is sent as it is too.
  std::size_t threshold = 4096;
  // zstd's level, 1 (fastest) to 19; 0 means 1. lz4 has one speed and ignores it.
  int level = 0;
  // Every algorithm, zstd first: what a server takes and answers with by default.
  static CompressionOptions accept_all() {
    CompressionOptions o;
    o.algorithms = {"zstd", "lz4"};
    return o;
  }
};

}  // namespace brine
