#include "ai/utf8_repair.hpp"

namespace chat::ai {

namespace {

/// What a lead byte (not ASCII) asks for: the continuation bytes after it,
/// and the range the first of them must be in (RFC 3629 table: it rules out
/// overlongs, surrogates and code points above U+10FFFF). `need` 0: the
/// byte cannot start a character (NUL, a stray continuation, C0, C1,
/// F5..FF).
struct lead_byte {
  size_t need = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
};

lead_byte lead_of(unsigned char c) {
  if (c >= 0xC2 && c <= 0xDF)
    return {1, 0x80, 0xBF};
  if (c == 0xE0)
    return {2, 0xA0, 0xBF};
  if (c == 0xED)
    return {2, 0x80, 0x9F};
  if (c >= 0xE1 && c <= 0xEF)
    return {2, 0x80, 0xBF};
  if (c == 0xF0)
    return {3, 0x90, 0xBF};
  if (c == 0xF4)
    return {3, 0x80, 0x8F};
  if (c >= 0xF1 && c <= 0xF3)
    return {3, 0x80, 0xBF};
  return {};
}

/// Whether `s` is valid UTF-8 without NUL and ends on a whole character:
/// what feed() would return unchanged, holding nothing back.
bool valid_and_whole(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c != 0 && c < 0x80) {
      ++i;
      continue;
    }
    auto [need, lo, hi] = lead_of(c);
    if (need == 0)
      return false;
    if (i + need >= n)
      return false; // cut short
    for (size_t j = 1; j <= need; ++j) {
      auto d = static_cast<unsigned char>(s[i + j]);
      if (d < lo || d > hi)
        return false;
      lo = 0x80;
      hi = 0xBF;
    }
    i += need + 1;
  }
  return true;
}

} // namespace

std::string utf8_repair::feed_string(std::string&& bytes) {
  if (pending_.empty() && valid_and_whole(bytes))
    return std::move(bytes);
  return feed(std::string_view{bytes});
}

std::string utf8_repair::feed(std::string_view bytes) {
  std::string in = std::move(pending_);
  pending_.clear();
  in.append(bytes);
  std::string out;
  out.reserve(in.size());
  size_t i = 0;
  while (i < in.size()) {
    auto c = static_cast<unsigned char>(in[i]);
    if (c != 0 && c < 0x80) {
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    auto [need, lo, hi] = lead_of(c);
    if (need == 0) {
      // NUL, a stray continuation byte, C0, C1, F5..FF.
      out += replacement;
      ++i;
      continue;
    }
    size_t j = 1;
    for (; j <= need && i + j < in.size(); ++j) {
      auto d = static_cast<unsigned char>(in[i + j]);
      if (d < lo || d > hi)
        break;
      lo = 0x80;
      hi = 0xBF;
    }
    if (j > need) {
      out.append(in, i, need + 1);
      i += need + 1;
    } else if (i + j == in.size()) {
      pending_ = in.substr(i); // may be completed by the next feed
      break;
    } else {
      out += replacement; // the maximal subpart in[i, i+j)
      i += j;
    }
  }
  return out;
}

std::string utf8_repair::finish() {
  if (pending_.empty())
    return {};
  pending_.clear();
  return std::string{replacement};
}

std::string repair_utf8(std::string_view text) {
  utf8_repair r;
  auto out = r.feed(text);
  out += r.finish();
  return out;
}

} // namespace chat::ai
