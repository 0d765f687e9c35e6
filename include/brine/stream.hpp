// Streams: typed items flowing one way or both ways within one call, with flow control.
//
// Reader<T> and Writer<T> are the two ends one side holds; the same types serve a server's
// stream handler and a client's stream (brine::Stream, brine::Upload, brine::Bidi in
// brine/client.hpp). Each direction of a stream has a window (docs/wire-format.md, "Streams"):
// a writer that has filled it waits (write) or suspends (co_await async_write) until the reader
// has taken items, so a slow reader never makes the other side buffer without bound.
//
//   // server: one request, many items
//   server.handle("tail", [](const TailRequest& r, brine::Writer<Line>& out) {
//     for (auto& line : lines(r)) if (!out.write(line)) return;   // false: the caller left
//   });
//   // client
//   brine::Stream<Line> s = client.stream<Line>("tail", TailRequest{...});
//   while (std::optional<Line> line = s.read()) print(*line);
//   s.status();   // OK, or why the stream ended
//
// One reader and one writer at a time per stream (a Reader and a Writer may be used from two
// threads at once).
#pragma once

#include <chrono>
#include <coroutine>
#include <cstdint>
#include <optional>
#include <span>
#include <utility>

#include "brine/buffer.hpp"
#include "brine/codec.hpp"
#include "brine/detail/frame.hpp"
#include "brine/status.hpp"

namespace brine {

namespace detail {

// One stream call seen from one side (src/stream/stream_core.cpp): the items that arrived and
// wait to be read, the window each way, and the end. Thread-safe.
class StreamCore {
 public:
  enum class Io : std::uint8_t {
    done,         // written / read
    would_block,  // no room (write) or no item (read) yet, and not waiting for it
    ended,        // the stream is over that way: status() says why (OK: a clean end)
    too_large,    // the item's frame exceeds max_frame_size
  };
  using Deadline = std::chrono::steady_clock::time_point;

  virtual ~StreamCore() = default;
  virtual CodecId codec() const noexcept = 0;
  virtual std::uint64_t call_id() const noexcept = 0;
  virtual const DecodeLimits& limits() const noexcept = 0;
  virtual std::size_t max_frame_size() const noexcept = 0;
  // The deadline of the whole stream (the largest time_point when it has none).
  virtual Deadline deadline() const noexcept = 0;

  // Sends an item frame begun by begin_item(): when the window has room, at once; else waits
  // for room until the stream's deadline (wait), or returns would_block.
  virtual Io write(Buffer& frame, bool wait) = 0;
  // The next item's payload into `payload`: waits for one until the deadline (wait) or returns
  // would_block; `ended` once the other side ended its items and all were read.
  virtual Io read(Buffer& payload, bool wait) = 0;
  // For co_await: does the write/read at once when it can (returns false: do not suspend);
  // else keeps `h` and resumes it when it is done or the stream ended, with *io set.
  virtual bool park_write(std::coroutine_handle<> h, Buffer& frame, Io& io) = 0;
  virtual bool park_read(std::coroutine_handle<> h, Buffer& payload, Io& io) = 0;
  // Why the stream ended (OK while it runs, and after a clean end).
  virtual Status status() const = 0;
  // True once the stream is over (finished, failed, cancelled or its connection lost).
  virtual bool finished() const noexcept = 0;

  void begin_item(Buffer& frame) const {
    begin_frame(frame, FrameKind::item, std::uint8_t(codec()), {});
    set_call_id(frame, call_id());
  }
};

// Decodes an item payload; a payload that does not decode ends nothing by itself: the caller
// decides (the reader fails its stream).
template <class T>
std::optional<T> decode_item(const StreamCore& core, std::span<const std::byte> payload,
                             Status& error) noexcept {
  try {
    return Serialization<T>::decode(core.codec(), payload, core.limits());
  } catch (const RpcError& e) {
    error = e.status();
  } catch (const std::exception& e) {
    error = {StatusCode::invalid_argument, std::string("stream item does not decode: ") + e.what()};
  }
  return std::nullopt;
}

// Fails the stream (both ways) with `why`: a reader got an item that does not decode.
void fail_stream(StreamCore& core, const Status& why) noexcept;

}  // namespace detail

// The reading end of a stream: items of type T, in order.
template <class T>
class Reader {
 public:
  explicit Reader(detail::StreamCore& core) noexcept : core_(&core) {}

  // The next item; waits for one (at most until the stream's deadline). nullopt once the stream
  // has no more: status() says whether it ended cleanly (OK) or why not.
  std::optional<T> read() {
    Buffer payload;
    return finish(core_->read(payload, true), payload);
  }
  // The next item if one is here now; nullopt otherwise (check finished() to tell the end).
  std::optional<T> try_read() {
    Buffer payload;
    return finish(core_->read(payload, false), payload);
  }

  // co_await reader.async_read(): the same as read() without holding a thread while it waits.
  // The coroutine resumes on the thread that delivered the item: on a server, a worker (the I/O
  // thread when workers == 0); on a client, the client's I/O thread.
  struct ReadAwaiter {
    Reader* reader;
    Buffer payload{};
    detail::StreamCore::Io io = detail::StreamCore::Io::ended;
    bool await_ready() noexcept {
      io = reader->core_->read(payload, false);
      return io != detail::StreamCore::Io::would_block;
    }
    bool await_suspend(std::coroutine_handle<> h) {
      return reader->core_->park_read(h, payload, io);
    }
    std::optional<T> await_resume() { return reader->finish(io, payload); }
  };
  ReadAwaiter async_read() noexcept { return ReadAwaiter{this}; }

  // Why the stream ended (OK while it runs and after a clean end).
  Status status() const { return core_->status(); }
  bool finished() const noexcept { return core_->finished(); }

 private:
  std::optional<T> finish(detail::StreamCore::Io io, const Buffer& payload) {
    if (io != detail::StreamCore::Io::done) return std::nullopt;
    Status error;
    std::optional<T> item = detail::decode_item<T>(*core_, payload.bytes(), error);
    if (!item) detail::fail_stream(*core_, error);
    return item;
  }

  detail::StreamCore* core_;
};

// The writing end of a stream.
template <class T>
class Writer {
 public:
  explicit Writer(detail::StreamCore& core) noexcept : core_(&core) {}

  // Sends `item`; waits while the window is full (the reader is behind), at most until the
  // stream's deadline. False when the stream is over (the other side left, failed or cancelled,
  // or the deadline passed): status() says why; stop writing then. Throws RpcError
  // (RESOURCE_EXHAUSTED) for an item larger than max_frame_size, and what encoding throws.
  bool write(const T& item) {
    Buffer frame = encode(item);
    return check(core_->write(frame, true));
  }
  // Sends `item` only if the window has room now; false if not (finished() tells the end).
  bool try_write(const T& item) {
    Buffer frame = encode(item);
    return check(core_->write(frame, false));
  }

  // co_await writer.async_write(item): write() without holding a thread while the window is
  // full (resumes where async_read does).
  struct WriteAwaiter {
    Writer* writer;
    Buffer frame;
    detail::StreamCore::Io io = detail::StreamCore::Io::ended;
    bool await_ready() {
      io = writer->core_->write(frame, false);
      return io != detail::StreamCore::Io::would_block;
    }
    bool await_suspend(std::coroutine_handle<> h) {
      return writer->core_->park_write(h, frame, io);
    }
    bool await_resume() { return writer->check(io); }
  };
  WriteAwaiter async_write(const T& item) { return WriteAwaiter{this, encode(item)}; }

  Status status() const { return core_->status(); }
  bool finished() const noexcept { return core_->finished(); }

 private:
  Buffer encode(const T& item) {
    Buffer frame;
    core_->begin_item(frame);
    Serialization<T>::encode(core_->codec(), item, frame);
    return frame;
  }
  bool check(detail::StreamCore::Io io) const {
    if (io == detail::StreamCore::Io::too_large) {
      throw RpcError(StatusCode::resource_exhausted, "stream item exceeds the frame limit of " +
                                                         std::to_string(core_->max_frame_size()) +
                                                         " bytes");
    }
    return io == detail::StreamCore::Io::done;
  }

  detail::StreamCore* core_;
};

}  // namespace brine
