// Every single-bit and adjacent-two-bit corruption of a few valid frames is either decoded or
// rejected cleanly: by the stream parser, by the message (ZeroMQ) check, and by the codec that
// the (possibly corrupted) codec byte names. Nothing crashes or throws anything but RpcError
// (and the sanitizer runs check the memory accesses).
#include <gtest/gtest.h>

#include <brine/detail/frame.hpp>
#include <functional>
#include <string>
#include <vector>

#include "families.hpp"

namespace {

using brine::Buffer;
using brine::CodecId;
using brine::RpcError;
using namespace brine::detail;

constexpr std::size_t kLimit = 1 << 20;  // small, so that corrupted lengths are rejected

struct Sample {
  std::string name;
  std::vector<std::byte> frame;
  // Decodes a payload as the sample's type in the frame's codec; throws RpcError on bad input.
  std::function<void(CodecId, std::span<const std::byte>)> decode;
};

template <class T>
Sample sample(std::string name, FrameKind kind, CodecId codec, std::string_view method,
              const T& value) {
  Buffer b;
  begin_frame(b, kind, std::uint8_t(codec), method);
  set_call_id(b, 0x0102030405060708ULL);
  brine::Serialization<T>::encode(codec, value, b);
  EXPECT_TRUE(finish_frame(b, kLimit));
  return {std::move(name),
          {b.data(), b.data() + b.size()},
          [](CodecId c, std::span<const std::byte> p) {
            (void)brine::Serialization<T>::decode(c, p, {});
          }};
}

std::vector<Sample> samples() {
  calc::pb::AddRequest pb;
  pb.set_a(2);
  pb.set_b(3);
  Buffer error;
  make_error_frame(error, 9,
                   {brine::StatusCode::internal, "division by zero", "std::domain_error"});
  using Args = brine::detail::ArgPack<double, std::string>;
  return {
      sample("cereal_request", FrameKind::request, CodecId::cereal, "add", calc::AddRequest{2, 3}),
      sample("protobuf_request", FrameKind::request, CodecId::protobuf, "add", pb),
      sample("json_object_call", FrameKind::request, CodecId::json, "calc.add", Args{{2.5, "x"}}),
      sample("cereal_reply", FrameKind::reply, CodecId::cereal, "", calc::Number{5}),
      {"error_frame",
       {error.data(), error.data() + error.size()},
       [](CodecId, std::span<const std::byte> p) { (void)parse_error_payload(p); }},
  };
}

struct Outcomes {
  int decoded = 0;  // a frame came out and its payload decoded
  int refused = 0;  // the frame, or its payload, was rejected with a status
  int waiting = 0;  // the stream parser waits for more bytes (a length grew)
};

// Decodes what a receiver would: error payloads for error frames, else the sample's type.
void decode_frame(const Sample& s, const FrameView& f, Outcomes& out) {
  try {
    if (f.kind == FrameKind::error) {
      (void)parse_error_payload(f.payload);
    } else {
      s.decode(CodecId(f.codec), f.payload);
    }
    ++out.decoded;
  } catch (const RpcError&) {
    ++out.refused;
  } catch (const std::exception& e) {
    ADD_FAILURE() << s.name << ": not an RpcError: " << e.what();
  }
}

void try_both_ways(const Sample& s, const std::vector<std::byte>& data, Outcomes& out) {
  FrameParser parser(kLimit);
  auto space = parser.prepare(data.size());
  std::memcpy(space.data(), data.data(), data.size());
  parser.commit(data.size());
  FrameView f{};
  switch (parser.next(&f)) {
    case FrameParser::Next::frame:
      decode_frame(s, f, out);
      break;
    case FrameParser::Next::need_more:
      ++out.waiting;
      break;
    case FrameParser::Next::error:
      ++out.refused;
      break;
  }
  if (frame_from_message(data, kLimit, &f).ok()) {
    decode_frame(s, f, out);
  } else {
    ++out.refused;
  }
}

class BitFlips : public testing::TestWithParam<int> {};

TEST_P(BitFlips, EveryCorruptionIsDecodedOrRefused) {
  const Sample s = samples()[std::size_t(GetParam())];
  SCOPED_TRACE(s.name);
  Outcomes out;
  const std::size_t bits = s.frame.size() * 8;
  for (std::size_t width : {1, 2}) {
    for (std::size_t bit = 0; bit + width <= bits; ++bit) {
      std::vector<std::byte> data = s.frame;
      for (std::size_t b = bit; b < bit + width; ++b) data[b / 8] ^= std::byte(0x80u >> (b % 8));
      try_both_ways(s, data, out);
    }
  }
  // Not vacuous: flips in the payload and call id decode, flips in the header are refused, and
  // flips that grow the length leave the stream parser waiting.
  EXPECT_GT(out.decoded, 0);
  EXPECT_GT(out.refused, 0);
  EXPECT_GT(out.waiting, 0);
}

std::string sample_name(const testing::TestParamInfo<int>& info) {
  return samples()[std::size_t(info.param)].name;
}

INSTANTIATE_TEST_SUITE_P(Frames, BitFlips, testing::Range(0, 5), sample_name);

}  // namespace
