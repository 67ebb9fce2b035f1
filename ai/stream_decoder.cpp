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

void parse_json(rapidjson::Document& doc, std::string_view text) {
  doc.Parse<rapidjson::kParseIterativeFlag>(text.data(), text.size());
}

std::string stream_decoder::feed(std::string_view bytes) {
  std::string delta;
  events_.clear();
  parser_.feed(bytes, events_);
  for (auto& ev : events_)
    on_event(ev, delta);
  if (parser_.overflowed() && !finished() && !failed())
    error_ = "provider sent an oversized event";
  if (reply_bytes_ + delta.size() > max_reply_bytes_) {
    // Cut at a character boundary, so that the cut adds no bad byte.
    size_t n = max_reply_bytes_ - reply_bytes_;
    while (n > 0 && (static_cast<unsigned char>(delta[n]) & 0xC0) == 0x80)
      --n;
    delta.resize(n);
    reply_capped_ = true;
    done_ = true;
    finish_reason_ = "length";
  }
  reply_bytes_ += delta.size();
  return delta;
}

} // namespace chat::ai
