#include "ai/sse_parser.hpp"

#include <algorithm>

namespace chat::ai {

namespace {

constexpr std::string_view bom = "\xEF\xBB\xBF";

} // namespace

void sse_parser::feed(std::string_view bytes, std::vector<sse_event>& out) {
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
    line_.append(bytes.data(), n);
    if (eol == bytes.end())
      return;
    after_cr_ = *eol == '\r';
    bytes.remove_prefix(n + 1);
    process_line(out);
    line_.clear();
    if (overflowed_)
      return;
  }
}

void sse_parser::process_line(std::vector<sse_event>& out) {
  if (line_.empty()) {
    // Blank line: dispatch, unless there is no data (then only reset).
    if (!data_.empty()) {
      data_.pop_back(); // the "\n" after the last data line
      out.push_back(sse_event{std::move(event_), std::move(data_), last_id_});
    }
    data_.clear();
    event_.clear();
    return;
  }
  if (line_.front() == ':')
    return; // comment, e.g. keep-alive
  std::string_view line = line_;
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
