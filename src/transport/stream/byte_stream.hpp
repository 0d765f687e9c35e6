// ByteStream: a connected, non-blocking byte stream under a stream channel (internal).
//
// A plain socket is one (SocketStream, below); TLS over a socket is another (src/transport/tls),
// and tests wrap one to provoke short reads and writes. The stream channel (stream_channel.hpp)
// turns any of them into a channel of frames.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <span>
#include <string>

#include "event/fd.hpp"

namespace brine::transport {

struct IoResult {
  enum Kind : unsigned char {
    done,         // `bytes` (> 0) moved
    would_block,  // nothing moved; wait for the descriptor (see wants_write)
    closed,       // the peer closed the stream (reads)
    failed,       // the stream is broken; `error` says why
  };
  Kind kind = done;
  std::size_t bytes = 0;
  // done (reads): nothing more can be read now without waiting (a short read of a socket).
  bool drained = false;
  // would_block: the stream needs the descriptor writable to go on (else readable). TLS may need
  // to write while reading and to read while writing.
  bool wants_write = false;
  std::string error;

  static IoResult moved(std::size_t n, bool drained = false) {
    return {done, n, drained, false, {}};
  }
  static IoResult blocked(bool wants_write) { return {would_block, 0, false, wants_write, {}}; }
  static IoResult eof() { return {closed, 0, false, false, {}}; }
  static IoResult broken(std::string why) { return {failed, 0, false, false, std::move(why)}; }
};

class ByteStream {
 public:
  virtual ~ByteStream() = default;
  // The descriptor to wait on.
  virtual int fd() const noexcept = 0;
  virtual IoResult read(std::span<std::byte> into) = 0;
  // Writes from the buffers in order (a gather write); may write only part.
  virtual IoResult write(std::span<const iovec> parts) = 0;
  // True when read() and write() may be called from any thread (one reader and one writer at a
  // time, concurrently): a plain socket. False when all I/O must happen on one thread (TLS).
  virtual bool any_thread() const noexcept = 0;
  // Ends the stream: whoever waits on the descriptor wakes, further I/O fails. The descriptor
  // stays open (and its number reserved) until the stream is destroyed.
  virtual void shutdown() noexcept = 0;
};

// A connected non-blocking socket.
class SocketStream final : public ByteStream {
 public:
  explicit SocketStream(event::Fd fd) noexcept : fd_(std::move(fd)) {}
  int fd() const noexcept override { return fd_.get(); }
  IoResult read(std::span<std::byte> into) override;
  IoResult write(std::span<const iovec> parts) override;
  bool any_thread() const noexcept override { return true; }
  void shutdown() noexcept override;

 private:
  event::Fd fd_;
};

}  // namespace brine::transport
