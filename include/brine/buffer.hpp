// Buffer: a growable, contiguous byte buffer that owns its bytes.
//
// Frames are built in one Buffer (header first, then the codec appends the payload) so that a
// frame leaves in a single write. `extend` hands out uninitialised space, so codecs that know
// their size up front (protobuf) write in place without zero-filling first.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <span>

namespace brine {

class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(std::size_t capacity) { reserve(capacity); }
  Buffer(Buffer&& other) noexcept { swap(other); }
  Buffer& operator=(Buffer&& other) noexcept {
    Buffer tmp(std::move(other));
    swap(tmp);
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() = default;

  std::byte* data() noexcept { return data_.get(); }
  const std::byte* data() const noexcept { return data_.get(); }
  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return capacity_; }
  bool empty() const noexcept { return size_ == 0; }
  std::span<const std::byte> bytes() const noexcept { return {data_.get(), size_}; }

  void reserve(std::size_t capacity) {
    if (capacity <= capacity_) return;
    auto fresh = std::make_unique_for_overwrite<std::byte[]>(capacity);
    if (size_ != 0) std::memcpy(fresh.get(), data_.get(), size_);
    data_ = std::move(fresh);
    capacity_ = capacity;
  }

  // Grows the size by n and returns the first of the n new, uninitialised bytes.
  std::byte* extend(std::size_t n) {
    if (capacity_ - size_ < n) reserve(grown(size_ + n));
    std::byte* p = data_.get() + size_;
    size_ += n;
    return p;
  }

  void append(const void* src, std::size_t n) {
    if (n != 0) std::memcpy(extend(n), src, n);
  }

  void clear() noexcept { size_ = 0; }
  // Shrinks the size to n (n <= size()): the bytes beyond it are dropped, the memory kept.
  void resize(std::size_t n) noexcept {
    if (n < size_) size_ = n;
  }

  void swap(Buffer& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
    std::swap(capacity_, other.capacity_);
  }

 private:
  std::size_t grown(std::size_t needed) const noexcept {
    std::size_t c = capacity_ < 64 ? 64 : capacity_ * 2;
    return c < needed ? needed : c;
  }

  std::unique_ptr<std::byte[]> data_;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

}  // namespace brine
