// A file store whose transfers are streams: put() takes a file in chunks, get() gives it back in
// chunks, each side at its own pace (a slow disk or network on one side holds the other back
// by the stream's window, instead of piling the file up in memory).
#pragma once

#include <brine/brine.hpp>
#include <brine/codecs/cereal.hpp>
#include <brine/codecs/json.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace files {

// One piece of a file: 64 KiB, the last one shorter.
struct Chunk {
  std::string bytes;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(bytes));
  }
};

struct FileInfo {
  std::string name;
  std::uint64_t size = 0;
  std::uint64_t checksum = 0;  // FNV-1a of the contents
  template <class Archive>
  void serialize(Archive& ar) {
    ar(CEREAL_NVP(name), CEREAL_NVP(size), CEREAL_NVP(checksum));
  }
};

struct FileStore {
  virtual ~FileStore() = default;
  // Stores the chunks the caller sends under `name` (replacing a file of that name); returns
  // what was stored.
  virtual FileInfo put(std::string name, brine::Reader<Chunk>& chunks) = 0;
  // Sends the file `name` in chunks (NOT_FOUND if there is none).
  virtual void get(std::string name, brine::Writer<Chunk>& chunks) = 0;
  virtual std::vector<FileInfo> list() = 0;
};
BRINE_INTERFACE(FileStore, put, get, list);

inline constexpr std::size_t kChunkSize = 64 * 1024;

inline std::uint64_t fnv1a(std::uint64_t hash, std::string_view bytes) {
  for (unsigned char c : bytes) hash = (hash ^ c) * 0x100000001b3ull;
  return hash;
}
inline constexpr std::uint64_t kFnvStart = 0xcbf29ce484222325ull;

}  // namespace files
