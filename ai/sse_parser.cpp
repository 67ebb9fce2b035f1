#include "ai/sse_parser.hpp"

#include <algorithm>

namespace chat::ai {

namespace {

constexpr std::string_view bom = "\xEF\xBB\xBF";

} // namespace

namespace {

/// Copies each event into a vector (tests, and callers that keep events).
struct collect final : sse_handler {
  std::vector<sse_event>& out;
  explicit collect(std::vector<sse_event>& o) : out(o) {}
  void on_sse(const sse_event_view& ev) override {
    out.push_back(sse_event{std::string{ev.event}, std::string{ev.data}, std::string{ev.id}});
  }
};

} // namespace

void sse_parser::feed(std::string_view bytes, std::vector<sse_event>& out) {
  collect c{out};
  feed(bytes, c);
}

void sse_parser::feed(std::string_view bytes, sse_handler& h) {
  if (overflowed_)
    return;
  // The BOM may itself be split across slices: hold back a matching prefix
  // in line_ until we know whether the whole BOM is there.
  while (!bom_done_ && !bytes.empty()) {
    if (bytes.front() != bom[bom_checked_]) {
      // Not a BOM after all: what we held back is ordinary text.
      bom_done_ = true;
      break;
    }
    line_.push_back(bytes.front());
    bytes.remove_prefix(1);
    if (++bom_checked_ == bom.size()) {
      line_.clear();
      bom_done_ = true;
    }
  }
  while (!bytes.empty()) {
    if (after_cr_) {
      after_cr_ = false;
      if (bytes.front() == '\n') {
        bytes.remove_prefix(1);
        continue;
      }
    }
    auto eol
        = std::find_if(bytes.begin(), bytes.end(), [](char c) { return c == '\n' || c == '\r'; });
    auto n = static_cast<size_t>(eol - bytes.begin());
    if (line_.size() + n > max_line_) {
      overflowed_ = true;
      return;
    }
    if (eol == bytes.end()) { // the line goes on in the next slice
      line_.append(bytes.data(), n);
      return;
    }
    after_cr_ = *eol == '\r';
    if (line_.empty()) {
      // The usual case: the whole line is in this slice; read it in place.
      process_line(bytes.substr(0, n), h);
    } else {
      line_.append(bytes.data(), n);
      process_line(line_, h);
      line_.clear();
    }
    bytes.remove_prefix(n + 1);
    if (overflowed_)
      return;
  }
}

void sse_parser::process_line(std::string_view line, sse_handler& h) {
  if (line.empty()) {
    // Blank line: dispatch, unless there is no data (then only reset).
    // Cleared, not moved from: the buffers stay for the next event.
    if (!data_.empty()) {
      std::string_view data{data_.data(), data_.size() - 1}; // the "\n" after the last line
      h.on_sse(sse_event_view{event_, data, last_id_});
    }
    data_.clear();
    event_.clear();
    return;
  }
  if (line.front() == ':')
    return; // comment, e.g. keep-alive
  std::string_view field = line;
  std::string_view value;
  if (auto colon = line.find(':'); colon != std::string_view::npos) {
    field = line.substr(0, colon);
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ')
      value.remove_prefix(1);
  }
  if (field == "data") {
    if (data_.size() + value.size() + 1 > max_event_) {
      overflowed_ = true;
      return;
    }
    data_.append(value);
    data_.push_back('\n');
  } else if (field == "event") {
    event_.assign(value);
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos)
      last_id_.assign(value);
  }
  // "retry" and unknown fields are ignored.
}

} // namespace chat::ai
