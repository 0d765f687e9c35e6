// StreamChannel: frames over a ByteStream, on an EventLoop (internal).
//
// The one channel of every byte-stream scheme (tcp, unix, tls). Reading is done either by the
// loop (Reader::loop: servers, and TLS, whose I/O belongs to one thread) or on demand by the
// threads that wait for frames (Reader::caller, plain sockets of a client: the CallerReads
// capability, with the loop reading only while frames are awaited that no caller reads).
//
// Writing: a frame is written at once by the sending thread when nothing else is being written
// (streams that allow I/O from any thread), else queued and written by the loop when the socket
// takes it (EPOLLOUT). While the loop delivers a batch of frames read together, frames sent are
// held ("corked") and leave in one gather write after the batch.
//
// The channel ends when the stream closes or fails, on a malformed frame (the sink decides what
// the peer is told), or on close(). Its sink gets on_close() from the thread that reads: the loop,
// or the caller holding the reading role.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>

#include "event/fd.hpp"
#include "event/loop.hpp"
#include "transport/channel.hpp"
#include "transport/stream/byte_stream.hpp"

namespace brine::transport {

class StreamChannel final : public Channel,
                            public CallerReads,
                            public event::Watcher,
                            public std::enable_shared_from_this<StreamChannel> {
 public:
  enum class Reader { loop, caller };

  // Reader::caller needs a stream that allows I/O from any thread.
  StreamChannel(event::EventLoop& loop, std::unique_ptr<ByteStream> stream, PeerInfo peer,
                std::size_t max_frame_size, Reader reader);
  ~StreamChannel() override;

  // Channel
  void start(std::shared_ptr<ChannelSink> sink) override;
  SendStatus send(Buffer&& frame, Deadline deadline, WhenFull when_full) override;
  void close(const Status& why, Deadline linger_until) override;
  void pause_reading(bool paused) override;
  std::size_t queued_bytes() const override;
  ChannelProgress progress() const override;
  const PeerInfo& peer() const override { return peer_; }
  CallerReads* caller_reads() override { return reader_ == Reader::caller ? this : nullptr; }

  // CallerReads
  bool read_until(event::Completion& done, Deadline deadline,
                  std::chrono::microseconds spin) override;
  void refresh() override;
  void expect() override;
  void wake_reader() override;

  // event::Watcher
  void on_ready(std::uint32_t events) override;

 private:
  // --- reading (the loop thread, or the holder of the reading role) ---
  enum class Took { more, drained, blocked, ended };
  // One read into the parser, then every complete frame to the sink.
  Took read_once();
  void deliver_frames();
  void read_on_loop();
  void read_available();  // caller mode, role held
  void read_as_caller(event::Completion& done, Deadline deadline, std::chrono::microseconds spin);
  bool sleep_until_readable(Deadline deadline);
  bool take_reading() noexcept { return !reading_.exchange(true, std::memory_order_acquire); }
  void release_reading();

  // --- writing ---
  void enqueue_locked(Buffer&& frame, std::size_t already_written, bool at_front);
  // Writes queued frames until none is left or the stream blocks; under out_mu_.
  IoResult write_queue_locked();
  void consume_locked(std::size_t bytes);
  void request_flush_locked();
  void flush_on_loop();
  SendStatus write_as_waiting_caller(std::unique_lock<std::mutex>& lk, Buffer&& frame,
                                     std::size_t written, Deadline deadline);

  // --- the loop's registration (loop thread) ---
  void arm();
  void close_on_loop(Deadline linger_until);

  // --- ending ---
  // Records why the channel ends (the first reason wins) and stops deliveries.
  bool begin_close(const Status& why);
  // A write failed: reads what the peer sent before it went, then ends.
  void lost_while_sending(const std::string& error);
  // Ends the connection: shuts the stream, then on_close() (by the thread allowed to deliver).
  void end();
  void finish_close();
  std::shared_ptr<ChannelSink> sink_copy() const;

  event::EventLoop& loop_;
  const std::unique_ptr<ByteStream> stream_;
  const PeerInfo peer_;
  const Reader reader_;
  const bool any_thread_;

  // The reader's: the parser, and whether a bad frame stopped reading.
  detail::FrameParser parser_;
  bool broken_ = false;
  bool read_wants_write_ = false;         // TLS: a read needs the socket writable
  std::atomic<bool> peer_closed_{false};  // the loop reported the peer's close: read to the EOF
  std::atomic<Clock::rep> partial_since_{0};
  std::atomic<Clock::rep> last_frame_{0};
  std::atomic<bool> paused_{false};

  // The sink and the end. sink_ is set by start() and moved out by finish_close() (both under
  // state_mu_); deliveries read it without the lock, from the one thread allowed to deliver.
  mutable std::mutex state_mu_;
  std::shared_ptr<ChannelSink> sink_;
  Status close_why_;
  std::atomic<bool> closing_{false};  // no more deliveries; the end is under way
  std::atomic<bool> closed_{false};   // on_close() delivered (or being delivered)
  Deadline linger_until_{};           // (loop thread)
  event::EventLoop::TimerId linger_timer_ = 0;

  // Output. writer_: a caller waiting for room writes without holding out_mu_.
  mutable std::mutex out_mu_;
  std::condition_variable writable_cv_;
  std::deque<Buffer> queue_;
  std::size_t head_written_ = 0;  // bytes of queue_.front() already written
  std::size_t queued_ = 0;
  bool writer_ = false;
  bool corked_ = false;
  bool flush_posted_ = false;
  bool write_blocked_ = false;  // the loop waits for EPOLLOUT
  bool write_broken_ = false;   // a write failed: nothing more is written
  Clock::time_point last_progress_{};

  // The loop's registration and the events it was armed with (loop thread).
  event::EventLoop::Registration registration_;
  std::uint32_t armed_ = 0;
  bool in_on_ready_ = false;  // arm() waits for the end of on_ready(), which arms once

  // Caller mode: the reading role (the parser belongs to its holder), whether the loop watches
  // the socket for a reader, and the eventfd that wakes a caller sleeping in poll().
  std::atomic<bool> reading_{false};
  std::atomic<bool> watching_{false};
  event::Fd wake_fd_;
};

}  // namespace brine::transport
