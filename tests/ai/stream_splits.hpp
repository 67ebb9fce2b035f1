#pragma once
// Shared by the stream decoder tests (openai_stream, anthropic_stream): feed
// a transcript whole, cut in two at every byte boundary and byte by byte,
// and check that every way decodes the same.

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace chat::test {

/// What a decoder made of a whole stream.
struct decoded {
  std::string content;
  std::string finish_reason;
  int64_t prompt_tokens;
  int64_t completion_tokens;
  bool done;
  bool finished;
  std::string error;
};

template<class Stream>
decoded decoded_state(const Stream& s, std::string content) {
  return {std::move(content), s.finish_reason(), s.prompt_tokens(), s.completion_tokens(),
          s.done(),           s.finished(),      s.error()};
}

/// `text` in one feed.
template<class Stream>
decoded decode_whole(const std::string& text) {
  Stream s;
  return decoded_state(s, s.feed(text));
}

/// The slices in order, one feed each.
template<class Stream, class Slices>
decoded decode_slices(const Slices& slices) {
  Stream s;
  std::string content;
  for (auto& slice : slices)
    content += s.feed(slice);
  return decoded_state(s, content);
}

inline void check_same(const decoded& a, const decoded& b) {
  CHECK(a.content == b.content);
  CHECK(a.finish_reason == b.finish_reason);
  CHECK(a.prompt_tokens == b.prompt_tokens);
  CHECK(a.completion_tokens == b.completion_tokens);
  CHECK(a.done == b.done);
  CHECK(a.finished == b.finished);
  CHECK(a.error == b.error);
}

/// Two-way cuts at every byte boundary, and single bytes: all decode like
/// one feed.
template<class Stream>
void check_every_split(const std::string& text) {
  auto whole = decode_whole<Stream>(text);
  std::string_view view = text;
  for (size_t i = 0; i <= text.size(); ++i) {
    INFO("split at " << i);
    check_same(
        decode_slices<Stream>(std::vector<std::string_view>{view.substr(0, i), view.substr(i)}),
        whole);
  }
  std::vector<std::string_view> bytes;
  for (size_t i = 0; i < text.size(); ++i)
    bytes.push_back(view.substr(i, 1));
  check_same(decode_slices<Stream>(bytes), whole);
}

} // namespace chat::test
