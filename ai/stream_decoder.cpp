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

stream_decoder::event_document& stream_decoder::parse_event_json(std::string_view text) {
  doc_.reset(); // its values live in the pools cleared next
  values_.Clear();
  stack_.Clear();
  doc_.emplace(&values_, 256, &stack_);
  doc_->Parse<rapidjson::kParseIterativeFlag>(text.data(), text.size());
  return *doc_;
}

void stream_decoder::on_sse(const sse_event_view& ev) {
  on_event(ev, *delta_);
}

std::string stream_decoder::feed(std::string_view bytes) {
  std::string delta;
  delta_ = &delta;
  parser_.feed(bytes, *this);
  delta_ = nullptr;
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
