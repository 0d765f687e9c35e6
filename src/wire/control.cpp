#include "wire/control.hpp"

namespace brine::wire {
namespace {

Buffer bare(FrameKind kind, std::uint64_t call_id) {
  Buffer frame;
  detail::begin_frame(frame, kind, 0, {});
  detail::set_call_id(frame, call_id);
  (void)detail::finish_frame(frame, 0xFFFFFFFFu);
  return frame;
}

}  // namespace

Buffer heartbeat_frame() {
  return bare(FrameKind::heartbeat, 0);
}

Buffer cancel_frame(std::uint64_t call_id) {
  return bare(FrameKind::cancel, call_id);
}

Buffer end_frame(std::uint64_t call_id) {
  return bare(FrameKind::end, call_id);
}

Buffer credit_frame(std::uint64_t call_id, std::uint32_t bytes) {
  Buffer frame;
  detail::begin_frame(frame, FrameKind::credit, 0, {});
  detail::set_call_id(frame, call_id);
  detail::store_be32(frame.extend(4), bytes);
  (void)detail::finish_frame(frame, 0xFFFFFFFFu);
  return frame;
}

std::uint32_t credit_of(const detail::FrameView& f) {
  return detail::load_be32(f.payload.data());
}

Buffer release_frame(CodecId codec, std::string_view object, std::uint64_t call_id) {
  Buffer frame;
  detail::begin_frame(frame, FrameKind::oneway, std::uint8_t(codec), object,
                      detail::kReleaseMethod);
  detail::set_call_id(frame, call_id);
  (void)detail::finish_frame(frame, 0xFFFFFFFFu);
  return frame;
}

Buffer error_frame(std::uint64_t call_id, const Status& status, std::size_t max_frame_size) {
  Buffer frame;
  detail::make_error_frame(frame, call_id, status, max_frame_size);
  return frame;
}

Buffer worker_ready_frame(const std::vector<std::string>& idempotent_methods) {
  Buffer frame;
  detail::begin_frame(frame, FrameKind::worker_ready, 0, {});
  std::byte count[2];
  detail::store_be16(count, std::uint16_t(idempotent_methods.size()));
  frame.append(count, 2);
  for (const std::string& name : idempotent_methods) {
    std::byte len[2];
    detail::store_be16(len, std::uint16_t(name.size()));
    frame.append(len, 2);
    frame.append(name.data(), name.size());
  }
  (void)detail::finish_frame(frame, 0xFFFFFFFFu);
  return frame;
}

Status check_fields(const detail::FrameView& f) {
  const bool bare =
      f.kind == FrameKind::heartbeat || f.kind == FrameKind::cancel || f.kind == FrameKind::end;
  if (bare && (f.codec != 0 || !f.method.empty() || !f.payload.empty())) {
    return {StatusCode::invalid_argument, std::string(f.kind == FrameKind::heartbeat ? "a heartbeat"
                                                      : f.kind == FrameKind::end     ? "an end"
                                                                                     : "a cancel") +
                                              " carries a codec, a method or a payload"};
  }
  if (f.kind == FrameKind::credit &&
      (f.codec != 0 || !f.method.empty() || f.payload.size() != 4 || credit_of(f) == 0)) {
    return {StatusCode::invalid_argument,
            "a credit carries a codec or a method, or not exactly a u32 of window above 0"};
  }
  if (f.kind == FrameKind::item && !f.method.empty()) {
    return {StatusCode::invalid_argument, "an item carries a method name"};
  }
  if (f.kind == FrameKind::heartbeat && f.call_id != 0) {
    return {StatusCode::invalid_argument, "a heartbeat carries a call id"};
  }
  const bool names_call = f.kind == FrameKind::request || f.kind == FrameKind::oneway ||
                          f.kind == FrameKind::cancel || f.kind == FrameKind::item ||
                          f.kind == FrameKind::end || f.kind == FrameKind::credit;
  if (names_call && f.call_id == 0) {
    return {StatusCode::invalid_argument, "call id 0 is reserved"};
  }
  return {};
}

void stamp_request(Buffer& frame, std::uint64_t call_id, std::chrono::milliseconds time_left) {
  detail::set_call_id(frame, call_id);
  if (detail::has_timeout(frame)) detail::set_timeout(frame, time_left);
}

}  // namespace brine::wire
