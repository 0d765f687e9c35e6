// The cereal codec: cereal's portable binary layout, with an input archive that distrusts its
// input.
//
// Wire layout (identical to cereal::PortableBinaryOutputArchive with default options on a
// little-endian host, so either side may use stock cereal): one byte 0x01 (little-endian flag),
// then every arithmetic value little-endian, every container/string size as a u64.
// The decoder also accepts 0x00 (big-endian data), as cereal's own input archive does.
//
// Hostile input: every size claimed by the data is checked against the bytes left before any
// container is resized, and the sum of all claims may not exceed the payload size (each element
// of a well-formed archive takes at least one byte). So a 100-byte payload claiming 2^32 elements
// fails with INVALID_ARGUMENT without allocating. Nesting deeper than DecodeLimits::max_depth,
// bools other than 0/1, truncated data and trailing bytes are errors too.
//
// Not accepted on the wire: pointers, smart pointers and polymorphic types. They do not compile:
// the archives delete the shared_ptr/unique_ptr/weak_ptr overloads, and raw pointers are
// rejected by cereal itself.
//
// Types: anything with cereal serialize()/save()/load() functions. The common standard types
// (string, vector, array, map, set, unordered_*, deque, list, optional, variant, tuple, pair,
// chrono, complex, bitset) are included below.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <tuple>

#include <cereal/cereal.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/bitset.hpp>
#include <cereal/types/chrono.hpp>
#include <cereal/types/complex.hpp>
#include <cereal/types/deque.hpp>
#include <cereal/types/list.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/unordered_set.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>

#include "brine/buffer.hpp"
#include "brine/codec.hpp"

namespace brine::cereal_codec {

// Writes into a brine::Buffer (no iostream in between).
class OutputArchive
    : public ::cereal::OutputArchive<OutputArchive, ::cereal::AllowEmptyClassElision> {
 public:
  explicit OutputArchive(Buffer& out)
      : ::cereal::OutputArchive<OutputArchive, ::cereal::AllowEmptyClassElision>(this), out_(out) {
    const std::uint8_t little_endian = 1;
    out_.append(&little_endian, 1);
  }

  template <std::size_t ElemSize>
  void save_binary(const void* data, std::size_t size) {
    if constexpr (std::endian::native == std::endian::little || ElemSize == 1) {
      out_.append(data, size);
    } else {
      std::byte* dst = out_.extend(size);
      const auto* src = static_cast<const std::byte*>(data);
      for (std::size_t i = 0; i < size; i += ElemSize)
        for (std::size_t j = 0; j < ElemSize; ++j) dst[i + j] = src[i + ElemSize - 1 - j];
    }
  }

 private:
  Buffer& out_;
};

// Reads from a borrowed span; throws RpcError(INVALID_ARGUMENT) on anything malformed.
class InputArchive : public ::cereal::InputArchive<InputArchive, ::cereal::AllowEmptyClassElision> {
 public:
  InputArchive(std::span<const std::byte> in, const DecodeLimits& limits)
      : ::cereal::InputArchive<InputArchive, ::cereal::AllowEmptyClassElision>(this),
        in_(in),
        budget_(in.size()),
        memory_budget_(limits.max_decoded_bytes),
        max_depth_(limits.max_depth) {
    std::uint8_t flag = 0;
    load_binary<1>(&flag, 1);
    if (flag > 1) fail("bad byte-order flag");
    swap_ = (flag == 1) != (std::endian::native == std::endian::little);
  }

  template <std::size_t ElemSize>
  void load_binary(void* data, std::size_t size) {
    if (size > in_.size() - pos_) fail("payload truncated");
    // Right after a claim of n elements, n * ElemSize bytes at once are those elements stored
    // contiguously (a string, a vector of numbers): they cost their bytes. Anything else means
    // the elements come one by one, as objects or nodes.
    if (pending_claim_ != 0 && size == pending_claim_ * ElemSize) {
      pending_claim_ = 0;
      charge(size);
    } else {
      settle();
    }
    if (size == 0) return;  // data may be null (an empty vector)
    std::memcpy(data, in_.data() + pos_, size);
    pos_ += size;
    if constexpr (ElemSize > 1) {
      if (swap_) {
        auto* p = static_cast<std::byte*>(data);
        for (std::size_t i = 0; i < size; i += ElemSize)
          for (std::size_t j = 0; j < ElemSize / 2; ++j)
            std::swap(p[i + j], p[i + ElemSize - 1 - j]);
      }
    }
  }

  // Called for every size the data claims, before the container is resized. Each claimed element
  // must have a byte left to come from (all claims together too). Its memory is charged at the
  // next step of the decoding, which shows what the elements are (see load_binary): kNodeEstimate
  // bytes each (a node of a set or map, a small object) unless they are contiguous bytes.
  void check_claim(std::uint64_t claimed) {
    settle();
    if (claimed > in_.size() - pos_ || claimed > budget_) {
      fail("claimed size " + std::to_string(claimed) + " exceeds the " +
           std::to_string(in_.size() - pos_) + " bytes left");
    }
    budget_ -= claimed;
    pending_claim_ = claimed;
  }

  // Charges the elements of a pending claim as separate objects.
  void settle() {
    if (pending_claim_ == 0) return;
    const std::uint64_t n = pending_claim_;
    pending_claim_ = 0;
    charge(n * kNodeEstimate);
  }

  void enter() {
    settle();
    if (++depth_ > max_depth_) fail("nesting deeper than " + std::to_string(max_depth_));
  }
  void leave() noexcept { --depth_; }

  std::size_t remaining() const noexcept { return in_.size() - pos_; }

  [[noreturn]] static void fail(const std::string& why) {
    throw RpcError(StatusCode::invalid_argument, "cereal payload: " + why);
  }

 private:
  static constexpr std::uint64_t kNodeEstimate = 48;

  std::span<const std::byte> in_;
  std::size_t pos_ = 0;
  std::uint64_t budget_;
  void charge(std::uint64_t bytes) {
    if (bytes > memory_budget_) {
      fail("decoding would take more than max_decoded_bytes (" + std::to_string(memory_limit_) +
           " bytes)");
    }
    memory_budget_ -= bytes;
  }

  std::uint64_t memory_budget_;
  std::uint64_t memory_limit_ = memory_budget_;
  std::uint64_t pending_claim_ = 0;
  std::uint32_t depth_ = 0;
  std::uint32_t max_depth_;
  bool swap_ = false;
};

// --- arithmetic values -------------------------------------------------------------------------
template <class T>
requires std::is_arithmetic_v<T>
void CEREAL_SAVE_FUNCTION_NAME(OutputArchive& ar, const T& t) {
  static_assert(!std::is_floating_point_v<T> || std::numeric_limits<T>::is_iec559);
  if constexpr (std::is_same_v<T, bool>) {
    const std::uint8_t b = t ? 1 : 0;
    ar.template save_binary<1>(&b, 1);
  } else {
    ar.template save_binary<sizeof(T)>(std::addressof(t), sizeof(t));
  }
}

template <class T>
requires std::is_arithmetic_v<T>
void CEREAL_LOAD_FUNCTION_NAME(InputArchive& ar, T& t) {
  static_assert(!std::is_floating_point_v<T> || std::numeric_limits<T>::is_iec559);
  if constexpr (std::is_same_v<T, bool>) {
    std::uint8_t b = 0;
    ar.template load_binary<1>(&b, 1);
    if (b > 1) InputArchive::fail("bool byte is neither 0 nor 1");
    t = b == 1;
  } else {
    ar.template load_binary<sizeof(T)>(std::addressof(t), sizeof(t));
  }
}

// --- contiguous arithmetic blocks (vector<int>, string, ...) -----------------------------------
template <class T>
void CEREAL_SAVE_FUNCTION_NAME(OutputArchive& ar, const ::cereal::BinaryData<T>& bd) {
  using TT = std::remove_pointer_t<T>;
  ar.template save_binary<sizeof(TT)>(bd.data, static_cast<std::size_t>(bd.size));
}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(InputArchive& ar, ::cereal::BinaryData<T>& bd) {
  using TT = std::remove_pointer_t<T>;
  ar.template load_binary<sizeof(TT)>(bd.data, static_cast<std::size_t>(bd.size));
}

// --- names are not written; sizes are checked ---------------------------------------------------
template <class T>
void CEREAL_SAVE_FUNCTION_NAME(OutputArchive& ar, const ::cereal::NameValuePair<T>& t) {
  ar(t.value);
}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(InputArchive& ar, ::cereal::NameValuePair<T>& t) {
  ar(t.value);
}
template <class T>
void CEREAL_SAVE_FUNCTION_NAME(OutputArchive& ar, const ::cereal::SizeTag<T>& t) {
  const std::uint64_t size = t.size;
  ar(size);
}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(InputArchive& ar, ::cereal::SizeTag<T>& t) {
  std::uint64_t size = 0;
  ar(size);
  ar.check_claim(size);
  t.size = static_cast<std::remove_reference_t<T>>(size);
}

// --- nesting depth ------------------------------------------------------------------------------
template <class T>
void prologue(InputArchive& ar, const T&) {
  ar.enter();
}
template <class T>
void epilogue(InputArchive& ar, const T&) {
  ar.leave();
}
template <class T>
void prologue(InputArchive&, const ::cereal::NameValuePair<T>&) {}
template <class T>
void epilogue(InputArchive&, const ::cereal::NameValuePair<T>&) {}
template <class T>
void prologue(InputArchive&, const ::cereal::SizeTag<T>&) {}
template <class T>
void epilogue(InputArchive&, const ::cereal::SizeTag<T>&) {}
// A contiguous block is a leaf, not a level (and must reach load_binary right after its claim).
template <class T>
void prologue(InputArchive&, const ::cereal::BinaryData<T>&) {}
template <class T>
void epilogue(InputArchive&, const ::cereal::BinaryData<T>&) {}

// --- no pointers on the wire --------------------------------------------------------------------
template <class T>
void CEREAL_SAVE_FUNCTION_NAME(OutputArchive&, const std::shared_ptr<T>&) = delete;
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(InputArchive&, std::shared_ptr<T>&) = delete;
template <class T>
void CEREAL_SAVE_FUNCTION_NAME(OutputArchive&, const std::weak_ptr<T>&) = delete;
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(InputArchive&, std::weak_ptr<T>&) = delete;
template <class T, class D>
void CEREAL_SAVE_FUNCTION_NAME(OutputArchive&, const std::unique_ptr<T, D>&) = delete;
template <class T, class D>
void CEREAL_LOAD_FUNCTION_NAME(InputArchive&, std::unique_ptr<T, D>&) = delete;

// True for types both archives can carry.
template <class T>
concept Carried = ::cereal::traits::is_output_serializable<T, OutputArchive>::value &&
    ::cereal::traits::is_input_serializable<T, InputArchive>::value &&
    std::is_default_constructible_v<T> && !std::is_pointer_v<T>;

}  // namespace brine::cereal_codec

CEREAL_SETUP_ARCHIVE_TRAITS(brine::cereal_codec::InputArchive, brine::cereal_codec::OutputArchive)

namespace brine {

namespace cereal_codec {
template <class... Ts>
void encode_all(Buffer& out, const Ts&... values) {
  OutputArchive ar(out);
  if constexpr (sizeof...(Ts) > 0) ar(values...);
}

template <class... Ts>
void decode_all(std::span<const std::byte> in, const DecodeLimits& limits, Ts&... values) {
  try {
    InputArchive ar(in, limits);
    if constexpr (sizeof...(Ts) > 0) ar(values...);
    ar.settle();
    if (ar.remaining() != 0) {
      InputArchive::fail(std::to_string(ar.remaining()) + " trailing bytes");
    }
  } catch (const ::cereal::Exception& e) {
    throw RpcError(StatusCode::invalid_argument, std::string("cereal payload: ") + e.what());
  }
}
}  // namespace cereal_codec

template <class T>
requires cereal_codec::Carried<T>
struct CodecTraits<CodecId::cereal, T> {
  static void encode(const T& value, Buffer& out) { cereal_codec::encode_all(out, value); }
  static T decode(std::span<const std::byte> in, const DecodeLimits& limits) {
    T value{};
    cereal_codec::decode_all(in, limits, value);
    return value;
  }
};

namespace detail {
// An object passed as an argument (Remote<T>) is its name, a string, in an argument list.
template <class Archive>
void serialize(Archive& archive, ObjectName& object) {
  archive(object.name);
}
}  // namespace detail

// Argument lists: one archive, the values one after another (so a list of one value is
// byte-identical to that value alone).
template <class... Ts>
requires(
    cereal_codec::Carried<Ts>&&...) struct CodecTraits<CodecId::cereal, detail::ArgPack<Ts...>> {
  static void encode(const detail::ArgPack<Ts...>& pack, Buffer& out) {
    std::apply([&](const Ts&... v) { cereal_codec::encode_all(out, v...); }, pack.values);
  }
  static detail::ArgPack<Ts...> decode(std::span<const std::byte> in, const DecodeLimits& limits) {
    detail::ArgPack<Ts...> pack;
    std::apply([&](Ts&... v) { cereal_codec::decode_all(in, limits, v...); }, pack.values);
    return pack;
  }
};

// A remote reference: the object's name as a string.
template <>
struct CodecTraits<CodecId::cereal, detail::ObjectName> {
  static void encode(const detail::ObjectName& ref, Buffer& out) {
    cereal_codec::encode_all(out, ref.name);
  }
  static detail::ObjectName decode(std::span<const std::byte> in, const DecodeLimits& limits) {
    detail::ObjectName ref;
    cereal_codec::decode_all(in, limits, ref.name);
    return ref;
  }
};

}  // namespace brine
