// FlowStream: the flow-control state of one stream call on one side (internal), shared by the
// server (server/server_call.cpp) and the client (client/client_stream.cpp), which say how a
// frame is sent and where a parked coroutine resumes.
//
// Each direction has a window (docs/wire-format.md, "Streams"): the sender may have sent item
// frames of at most `window` bytes (their length fields) beyond what the receiver credited;
// both start at kInitialStreamWindow, and a receiver with a larger window grants the rest at
// once. The receiver credits what its reader has taken, in steps of at least half its window,
// so it holds at most its window plus one frame of items, whatever the sender does.
#pragma once

#include <condition_variable>
#include <coroutine>
#include <cstdint>
#include <deque>
#include <mutex>

#include "brine/stream.hpp"
#include "wire/compression.hpp"

namespace brine::detail {

class FlowStream : public StreamCore {
 public:
  FlowStream(std::uint64_t call_id, CodecId codec, const DecodeLimits& limits,
             std::size_t max_frame_size, std::uint32_t window, Deadline deadline) noexcept;

  // StreamCore
  CodecId codec() const noexcept override { return codec_; }
  std::uint64_t call_id() const noexcept override { return call_id_; }
  const DecodeLimits& limits() const noexcept override { return limits_; }
  std::size_t max_frame_size() const noexcept override { return max_frame_size_; }
  Deadline deadline() const noexcept override { return deadline_; }
  Io write(Buffer& frame, bool wait) override;
  Io read(Buffer& payload, bool wait) override;
  bool park_write(std::coroutine_handle<> h, Buffer& frame, Io& io) override;
  bool park_read(std::coroutine_handle<> h, Buffer& payload, Io& io) override;
  Status status() const override;
  bool finished() const noexcept override;

  // Items written from now on carry an encoding field: compressed with `with` (identity: never)
  // by `policy` when large, and saying `accepts`. For a stream whose peer has shown it knows the
  // field. Before any write.
  void compress_items(wire::Encoding with, const wire::Compression& policy,
                      wire::EncodingSet accepts) {
    item_encoding_ = with;
    item_policy_ = policy;
    item_accepts_ = accepts;
    items_sealed_ = true;
  }

  // --- from the connection's reading thread ---
  // An item frame arrived (decompressed here if it is compressed with one of `accepted`, to at
  // most max_frame_size bytes). False: the sender broke the flow-control rule, or sent an item
  // that does not decompress (protocol errors).
  [[nodiscard]] bool deliver_item(const FrameView& f, wire::EncodingSet accepted);
  // Window granted to our writer. False: the grant overflows (a protocol error).
  [[nodiscard]] bool deliver_credit(std::uint32_t bytes);
  // The other side sends no more items (items already here are still read).
  void deliver_end();

  // The stream is over with `why`: writes fail at once; reads return what is queued, then end.
  // Wakes every waiter. False if it had ended already (the first end counts).
  bool end(const Status& why);
  // Our side sends no more items (a half-close): later writes return `ended`.
  void close_write();
  // Grants the window above kInitialStreamWindow (if any) at once. Before any read.
  void grant_initial();

 protected:
  // Sends a frame (an item, or a credit) on the connection; false when it is gone.
  virtual bool send_frame(Buffer&& frame) = 0;
  // Resumes a parked coroutine: where depends on the side (a worker, the I/O thread).
  virtual void resume(std::coroutine_handle<> h) = 0;

 private:
  using Lock = std::unique_lock<std::mutex>;
  // The bytes an item counts against the window: its header and its payload as the reader gets
  // it (decompressed), whatever the frame carried, so that what a receiver holds stays within
  // its window however well items compress (docs/wire-format.md, "Compression").
  static std::uint64_t cost(std::span<const std::byte> frame) noexcept;
  bool can_write() const noexcept { return sent_ < allowed_out_; }
  bool write_closed() const noexcept { return ended_ || write_closed_; }
  // Takes an item into `payload` and counts it consumed; returns a credit frame to send (empty
  // when no credit is due). Under the lock, items_ not empty.
  Buffer take(Buffer& payload);
  // Sends `frame` (already counted) and a credit, outside the lock.
  Io send_item(Buffer& frame);

  const std::uint64_t call_id_;
  const CodecId codec_;
  const DecodeLimits& limits_;
  const std::size_t max_frame_size_;
  const std::uint32_t window_;
  const Deadline deadline_;
  wire::Encoding item_encoding_ = wire::Encoding::identity;
  wire::Compression item_policy_;
  bool items_sealed_ = false;  // items carry an encoding field
  wire::EncodingSet item_accepts_ = 0;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Buffer> items_;      // payloads not yet read
  std::uint64_t received_ = 0;    // item bytes received
  std::uint64_t allowed_in_ = 0;  // item bytes the peer may send (initial + granted)
  std::uint64_t unacked_ = 0;     // bytes read and not yet credited
  bool read_closed_ = false;      // the peer sends no more items
  std::uint64_t sent_ = 0;        // item bytes sent
  std::uint64_t allowed_out_ = 0;
  bool write_closed_ = false;
  bool ended_ = false;
  Status status_;
  std::coroutine_handle<> parked_writer_{};
  Buffer* parked_frame_ = nullptr;
  Io* parked_write_io_ = nullptr;
  std::coroutine_handle<> parked_reader_{};
  Buffer* parked_payload_ = nullptr;
  Io* parked_read_io_ = nullptr;
};

}  // namespace brine::detail
