#include "gateway/ws_codec.hpp"

#include <algorithm>
#include <cstring>

namespace chat::gateway::ws {

namespace {

bool is_control(opcode op) {
  return static_cast<uint8_t>(op) >= 0x8;
}

/// XORs `n` bytes with the mask, starting at the mask's phase `offset`.
/// Eight bytes at a time: a 64 KiB message is unmasked in a few µs.
void unmask(char* p, size_t n, const uint8_t (&mask)[4], uint64_t offset) {
  size_t i = 0;
  // Byte by byte up to the mask's phase 0, then in words of two masks.
  for (; i < n && ((offset + i) & 3) != 0; ++i)
    p[i] = static_cast<char>(p[i] ^ mask[(offset + i) & 3]);
  uint8_t m8[8];
  for (int k = 0; k < 8; ++k)
    m8[k] = mask[k & 3];
  uint64_t word_mask;
  std::memcpy(&word_mask, m8, 8);
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    w ^= word_mask;
    std::memcpy(p + i, &w, 8);
  }
  for (; i < n; ++i)
    p[i] = static_cast<char>(p[i] ^ mask[(offset + i) & 3]);
}

} // namespace

size_t encode_header(char* out, opcode op, uint64_t length) {
  out[0] = static_cast<char>(0x80 | static_cast<uint8_t>(op));
  if (length < 126) {
    out[1] = static_cast<char>(length);
    return 2;
  }
  if (length <= 0xffff) {
    out[1] = 126;
    out[2] = static_cast<char>(length >> 8);
    out[3] = static_cast<char>(length);
    return 4;
  }
  out[1] = 127;
  for (int i = 0; i < 8; ++i)
    out[2 + i] = static_cast<char>(length >> (56 - 8 * i));
  return 10;
}

std::string close_payload(uint16_t code, std::string_view reason) {
  if (code == close_code::none)
    return {};
  // 125 bytes in a control frame, 2 of them the code; never cut a UTF-8
  // sequence in half.
  if (reason.size() > 123) {
    size_t n = 123;
    while (n > 0 && (static_cast<uint8_t>(reason[n]) & 0xC0) == 0x80)
      --n;
    reason = reason.substr(0, n);
  }
  std::string out;
  out.reserve(2 + reason.size());
  out.push_back(static_cast<char>(code >> 8));
  out.push_back(static_cast<char>(code & 0xff));
  out.append(reason);
  return out;
}

bool valid_utf8(std::string_view s) {
  auto p = reinterpret_cast<const uint8_t*>(s.data());
  auto end = p + s.size();
  while (p < end) {
    // ASCII, eight at a time: JSON is mostly ASCII.
    while (end - p >= 8) {
      uint64_t w;
      std::memcpy(&w, p, 8);
      if ((w & 0x8080808080808080ULL) != 0)
        break;
      p += 8;
    }
    if (p == end)
      break;
    uint8_t c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    size_t n;
    uint32_t min;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      n = 1, min = 0x80, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, min = 0x800, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, min = 0x10000, cp = c & 0x07;
    } else {
      return false;
    }
    if (static_cast<size_t>(end - p) <= n)
      return false;
    for (size_t k = 1; k <= n; ++k) {
      if ((p[k] & 0xC0) != 0x80)
        return false;
      cp = (cp << 6) | (p[k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    p += n + 1;
  }
  return true;
}

bool valid_close_code(uint16_t code) {
  // 1004-1006 and 1015 are reserved, never sent; 1012-1014 were registered
  // after RFC 6455; 3000-4999 belong to libraries and applications.
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014)
         || (code >= 3000 && code <= 4999);
}

read_event frame_reader::fail(uint16_t code, std::string_view reason, bool framing_sound) {
  if (framing_sound) {
    discard_ = true;
    release_message_ = true;
  } else {
    stopped_ = true;
  }
  read_event ev;
  ev.kind = read_event::fail;
  ev.code = code;
  ev.reason = reason;
  return ev;
}

read_event frame_reader::parse_header() {
  hdr_len_ = 0;
  auto b0 = static_cast<uint8_t>(hdr_[0]);
  auto b1 = static_cast<uint8_t>(hdr_[1]);
  fin_ = (b0 & 0x80) != 0;
  if ((b0 & 0x70) != 0)
    return fail(close_code::protocol_error, "reserved bits set", false);
  auto op = b0 & 0x0F;
  if (op > 0xA || (op > 0x2 && op < 0x8))
    return fail(close_code::protocol_error, "unknown opcode", false);
  op_ = static_cast<opcode>(op);
  if ((b1 & 0x80) == 0)
    return fail(close_code::protocol_error, "unmasked client frame", false);
  uint64_t len = b1 & 0x7F;
  size_t pos = 2;
  if (len == 126) {
    len = (uint64_t{static_cast<uint8_t>(hdr_[2])} << 8) | static_cast<uint8_t>(hdr_[3]);
    pos = 4;
    if (len < 126)
      return fail(close_code::protocol_error, "length not minimal", false);
  } else if (len == 127) {
    len = 0;
    for (int i = 0; i < 8; ++i)
      len = (len << 8) | static_cast<uint8_t>(hdr_[2 + i]);
    pos = 10;
    if ((len >> 63) != 0)
      return fail(close_code::protocol_error, "length too large", false);
    if (len <= 0xFFFF)
      return fail(close_code::protocol_error, "length not minimal", false);
  }
  std::memcpy(mask_, hdr_ + pos, 4);
  if (is_control(op_)) {
    if (!fin_)
      return fail(close_code::protocol_error, "fragmented control frame", false);
    if (len > 125)
      return fail(close_code::protocol_error, "control frame too long", false);
  } else if (op_ == opcode::continuation) {
    if (!in_message_)
      return fail(close_code::protocol_error, "continuation without a message", false);
  } else {
    if (in_message_)
      return fail(close_code::protocol_error, "message interrupted", false);
    in_message_ = true;
    message_text_ = op_ == opcode::text;
    message_size_ = 0;
  }
  in_frame_ = true;
  left_ = len;
  seen_ = 0;
  skip_ = false;
  if (!is_control(op_)) {
    if (discard_) {
      skip_ = true;
      return {};
    }
    if (text_only_ && !message_text_) {
      skip_ = true;
      return fail(close_code::unsupported_data, "binary frames not supported", true);
    }
    message_size_ += len;
    if (message_size_ > max_message_) {
      skip_ = true;
      return fail(close_code::too_big, "frame too large", true);
    }
  }
  return {};
}

read_event frame_reader::finish_frame(std::string_view payload) {
  in_frame_ = false;
  read_event ev;
  switch (op_) {
  case opcode::close: {
    stopped_ = true;
    ev.kind = read_event::close;
    ev.code = close_code::none;
    if (payload.empty())
      return ev;
    if (payload.size() == 1)
      return fail(close_code::protocol_error, "close payload of one byte", false);
    ev.code = static_cast<uint16_t>((static_cast<uint8_t>(payload[0]) << 8)
                                    | static_cast<uint8_t>(payload[1]));
    if (!valid_close_code(ev.code))
      return fail(close_code::protocol_error, "invalid close code", false);
    ev.reason = payload.substr(2);
    if (!valid_utf8(ev.reason))
      return fail(close_code::invalid_payload, "invalid UTF-8 in close reason", false);
    return ev;
  }
  case opcode::ping:
    ev.kind = read_event::ping;
    ev.payload = payload;
    return ev;
  case opcode::pong:
    ev.kind = read_event::pong;
    ev.payload = payload;
    return ev;
  default:
    in_message_ = false;
    message_size_ = 0;
    release_message_ = true;
    if (message_text_ && !valid_utf8(payload))
      return fail(close_code::invalid_payload, "invalid UTF-8", true);
    ev.kind = read_event::message;
    ev.text = message_text_;
    ev.payload = payload;
    return ev;
  }
}

read_event frame_reader::next(char* data, size_t size, size_t& used) {
  used = 0;
  // What the last event pointed into is no longer needed. (A control frame
  // may come between the fragments of a message: that one stays.)
  if (release_message_) {
    release_message_ = false;
    std::string{}.swap(message_);
  }
  if (release_control_) {
    release_control_ = false;
    std::string{}.swap(control_);
  }
  if (stopped_) {
    used = size;
    return {};
  }
  for (;;) {
    if (!in_frame_) {
      // The header, byte by byte into hdr_: at most 14 bytes a frame.
      for (;;) {
        size_t need = 2;
        if (hdr_len_ >= 2) {
          auto b1 = static_cast<uint8_t>(hdr_[1]);
          auto len7 = b1 & 0x7F;
          need += (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((b1 & 0x80) != 0 ? 4 : 0);
        }
        if (hdr_len_ >= need)
          break;
        if (used == size)
          return {};
        hdr_[hdr_len_++] = data[used++];
      }
      auto ev = parse_header();
      if (ev.kind != read_event::need_more)
        return ev;
    }
    auto take = static_cast<size_t>(std::min<uint64_t>(left_, size - used));
    char* p = data + used;
    used += take;
    left_ -= take;
    if (skip_) {
      if (left_ > 0)
        return {};
      in_frame_ = false;
      if (fin_)
        in_message_ = false;
      continue;
    }
    unmask(p, take, mask_, seen_);
    seen_ += take;
    if (is_control(op_)) {
      if (left_ == 0 && control_.empty())
        return finish_frame({p, take}); // whole in this piece: no copy
      control_.append(p, take);
      if (left_ > 0)
        return {};
      release_control_ = true;
      return finish_frame(control_);
    }
    if (left_ == 0 && fin_ && message_.empty())
      return finish_frame({p, take}); // whole in this piece: no copy
    if (message_.capacity() < message_size_)
      message_.reserve(static_cast<size_t>(message_size_));
    message_.append(p, take);
    if (left_ > 0)
      return {};
    in_frame_ = false;
    if (!fin_)
      continue;
    return finish_frame(message_);
  }
}

} // namespace chat::gateway::ws
