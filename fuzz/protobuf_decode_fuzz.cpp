// libFuzzer target: the protobuf codec's decoder on hostile payloads.
#include <brine/codecs/protobuf.hpp>
#include <cstdint>

#include "test_messages.pb.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data), size);
  try {
    (void)brine::Serialization<brine_test::Everything>::decode(brine::CodecId::protobuf, in, {});
    (void)brine::Serialization<brine_test::Tree>::decode(brine::CodecId::protobuf, in, {});
  } catch (const brine::RpcError& e) {
    if (e.code() != brine::StatusCode::invalid_argument) __builtin_trap();
  }
  return 0;
}
