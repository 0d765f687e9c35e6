// The frames that carry no call payload, built in one place, and who may send which kind
// (internal). The byte layout is in include/brine/detail/frame.hpp and docs/wire-format.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "brine/buffer.hpp"
#include "brine/codec.hpp"
#include "brine/detail/frame.hpp"
#include "brine/status.hpp"

namespace brine::wire {

using detail::FrameKind;

// "Still here" (codec 0, call id 0, no method, empty payload). Clients and workers send it;
// servers answer one with one.
Buffer heartbeat_frame();
// The caller gave up on call `call_id`.
Buffer cancel_frame(std::uint64_t call_id);
// Oneway "<object>.~release": the client dropped its last reference to `object`.
Buffer release_frame(CodecId codec, std::string_view object, std::uint64_t call_id);
// Stream control: "no more items from me" (client -> server) and `bytes` of window granted.
Buffer end_frame(std::uint64_t call_id);
Buffer credit_frame(std::uint64_t call_id, std::uint32_t bytes);
// The window a credit frame grants (check_fields has checked its size).
std::uint32_t credit_of(const detail::FrameView& f);
// An error frame for `call_id` (0: about the connection), cut to fit `max_frame_size`.
Buffer error_frame(std::uint64_t call_id, const Status& status, std::size_t max_frame_size);
// A worker's "ready": a u16 count, then per method a u16 length and the name.
Buffer worker_ready_frame(const std::vector<std::string>& idempotent_methods);

// Stamps a request frame (begun by begin_frame/begin_request, size already checked by
// finish_frame) with its call id and, when it has a timeout field, the caller's remaining wait.
void stamp_request(Buffer& frame, std::uint64_t call_id, std::chrono::milliseconds time_left);

// The fields a frame of each kind must leave empty, and the call id it must (not) carry:
// heartbeats have codec 0, call id 0, no method, no payload; cancels the same but a call id
// other than 0; requests and oneways a call id other than 0 (0 is reserved: error frames with
// id 0 are about the connection). OK, or the protocol error (docs/wire-format.md, "Kinds").
Status check_fields(const detail::FrameView& f);

// The kinds each side may send (a frame of another kind is a protocol error).
constexpr bool client_sends(FrameKind k) noexcept {
  return k == FrameKind::request || k == FrameKind::oneway || k == FrameKind::heartbeat ||
         k == FrameKind::cancel || k == FrameKind::item || k == FrameKind::end ||
         k == FrameKind::credit;
}
constexpr bool server_sends(FrameKind k) noexcept {
  return k == FrameKind::reply || k == FrameKind::error || k == FrameKind::heartbeat ||
         k == FrameKind::item || k == FrameKind::credit;
}

}  // namespace brine::wire
