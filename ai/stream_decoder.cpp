#include "ai/stream_decoder.hpp"

namespace chat::ai {

std::string shorten_utf8(std::string_view text, size_t max_len) {
  if (text.size() <= max_len)
    return std::string{text};
  size_t n = max_len;
  while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80)
    --n;
  return std::string{text.substr(0, n)} + "...";
}

std::string stream_decoder::feed(std::string_view bytes) {
  std::string delta;
  events_.clear();
  parser_.feed(bytes, events_);
  for (auto& ev : events_)
    on_event(ev, delta);
  return delta;
}

} // namespace chat::ai
