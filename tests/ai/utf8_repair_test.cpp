// Provider text is made valid UTF-8 (ai/utf8_repair.hpp): characters split
// across feeds and SSE events come out whole; every invalid sequence becomes
// U+FFFD.
#include "ai/utf8_repair.hpp"

#include <doctest/doctest.h>
#include <rapidjson/document.h>

#include <random>
#include <string>
#include <vector>

#include "ai/anthropic_stream.hpp"
#include "ai/openai_stream.hpp"

using chat::ai::repair_utf8;
using chat::ai::utf8_repair;

namespace {

const std::string fffd = "\xEF\xBF\xBD";

std::string times(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i)
    out += s;
  return out;
}

/// `text` through one repair, cut at `cuts` (ascending byte offsets).
std::string repaired_in_slices(const std::string& text, const std::vector<size_t>& cuts) {
  utf8_repair r;
  std::string out;
  size_t from = 0;
  for (auto cut : cuts) {
    out += r.feed(std::string_view{text}.substr(from, cut - from));
    from = cut;
  }
  out += r.feed(std::string_view{text}.substr(from));
  out += r.finish();
  return out;
}

/// An OpenAI stream of one content event per token (JSON-escaped by hand:
/// the tokens here need no escaping), then finish and [DONE].
std::string openai_transcript(const std::vector<std::string>& tokens) {
  std::string out;
  for (auto& t : tokens)
    out += R"(data: {"choices":[{"index":0,"delta":{"content":")" + t
           + R"("},"finish_reason":null}]})" + "\n\n";
  out += R"(data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})"
         "\n\ndata: [DONE]\n\n";
  return out;
}

/// Decodes `body` fed in slices cut at `cuts`, repairing each delta as the
/// invoker does; returns the text the sink would get.
template<class Decoder>
std::string sink_text(const std::string& body, const std::vector<size_t>& cuts) {
  Decoder d;
  utf8_repair r;
  std::string out;
  size_t from = 0;
  auto feed = [&](std::string_view slice) { out += r.feed(d.feed(slice)); };
  for (auto cut : cuts) {
    feed(std::string_view{body}.substr(from, cut - from));
    from = cut;
  }
  feed(std::string_view{body}.substr(from));
  out += r.finish();
  return out;
}

} // namespace

TEST_CASE("utf8 repair: valid text passes unchanged, split anywhere") {
  // 1, 2, 3 and 4 byte characters, and U+FFFD itself.
  const std::string text = "a é € 😀 \xEF\xBF\xBD z";
  CHECK(repair_utf8(text) == text);
  for (size_t i = 0; i <= text.size(); ++i) {
    INFO("cut at " << i);
    CHECK(repaired_in_slices(text, {i}) == text);
    for (size_t j = i; j <= text.size(); ++j)
      CHECK(repaired_in_slices(text, {i, j}) == text);
  }
  std::vector<size_t> every;
  for (size_t i = 1; i < text.size(); ++i)
    every.push_back(i);
  CHECK(repaired_in_slices(text, every) == text);
}

TEST_CASE("utf8 repair: an incomplete character is held back, then completed") {
  utf8_repair r;
  CHECK(r.feed("caf\xC3") == "caf");
  CHECK(r.pending() == 1);
  CHECK(r.feed("\xA9!") == "\xC3\xA9!");
  CHECK(r.pending() == 0);
  CHECK(r.feed("\xF0\x9F") == "");
  CHECK(r.feed("\x98") == "");
  CHECK(r.feed("\x80") == "😀");
  CHECK(r.finish().empty());
}

TEST_CASE("utf8 repair: invalid sequences become U+FFFD") {
  // Surrogates: the lone \udc00 as RapidJSON 1.1 decodes it (CESU bytes),
  // and a high one. ED then a byte outside 80..9F: each byte is a maximal
  // invalid subpart.
  CHECK(repair_utf8("a\xED\xB0\x80z") == "a" + times(fffd, 3) + "z");
  CHECK(repair_utf8("\xED\xA0\x80") == times(fffd, 3));
  // The highest valid 3-byte character before the surrogates is fine.
  CHECK(repair_utf8("\xED\x9F\xBF") == "\xED\x9F\xBF");
  // Overlongs: "/" as C0 AF, E0 80 AF, F0 80 80 AF.
  CHECK(repair_utf8("\xC0\xAF") == times(fffd, 2));
  CHECK(repair_utf8("\xE0\x80\xAF") == times(fffd, 3));
  CHECK(repair_utf8("\xF0\x80\x80\xAF") == times(fffd, 4));
  CHECK(repair_utf8("\xC1\xBF") == times(fffd, 2));
  // Above U+10FFFF, and lead bytes that never occur.
  CHECK(repair_utf8("\xF4\x90\x80\x80") == times(fffd, 4));
  CHECK(repair_utf8("\xF4\x8F\xBF\xBF") == "\xF4\x8F\xBF\xBF"); // U+10FFFF is fine
  CHECK(repair_utf8("\xF5\x80\x80\x80") == times(fffd, 4));
  CHECK(repair_utf8("x\xFFy\xFE") == "x" + fffd + "y" + fffd);
  // Stray continuation bytes.
  CHECK(repair_utf8("\x80\xBF") == times(fffd, 2));
  // A sequence cut short by the next character: one U+FFFD for its prefix.
  CHECK(repair_utf8("\xE2\x82z") == fffd + "z");
  CHECK(repair_utf8("\xF0\x9F\x98z") == fffd + "z");
  // Cut short by the end of the stream.
  CHECK(repair_utf8("ok\xE2\x82") == "ok" + fffd);
  utf8_repair r;
  CHECK(r.feed("ok\xF0\x9F\x98") == "ok");
  CHECK(r.finish() == fffd);
  CHECK(r.finish().empty());
}

TEST_CASE("utf8 repair: NUL becomes U+FFFD (PostgreSQL text cannot hold it)") {
  CHECK(repair_utf8(std::string{"a\0b", 3}) == "a" + fffd + "b");
  CHECK(repair_utf8(std::string{"\0", 1}) == fffd);
}

TEST_CASE("utf8 repair: random bytes, cut randomly, always come out valid") {
  std::mt19937 rng{42};
  for (int round = 0; round < 300; ++round) {
    std::string bytes(static_cast<size_t>(rng() % 40), '\0');
    for (auto& b : bytes)
      b = static_cast<char>(rng() % 4 == 0 ? 0x80 + rng() % 0x80 : rng() % 256);
    std::vector<size_t> cuts;
    for (size_t i = 1; i < bytes.size(); ++i)
      if (rng() % 3 == 0)
        cuts.push_back(i);
    auto out = repaired_in_slices(bytes, cuts);
    INFO("round " << round);
    // Valid output is a fixed point, however it is cut, and holds no NUL.
    CHECK(repair_utf8(out) == out);
    CHECK(out.find('\0') == std::string::npos);
    // Cutting changes nothing.
    CHECK(out == repair_utf8(bytes));
  }
}

TEST_CASE("utf8 repair: RapidJSON 1.1 turns a lone \\udc00 into ED B0 80, 0xFF passes raw") {
  rapidjson::Document d;
  d.Parse(R"(["a\udc00b"])");
  REQUIRE_FALSE(d.HasParseError());
  CHECK(std::string{d[0].GetString(), d[0].GetStringLength()}
        == "a\xED\xB0\x80"
           "b");
  rapidjson::Document raw;
  raw.Parse("[\"a\xFF\"]");
  REQUIRE_FALSE(raw.HasParseError());
  CHECK(std::string{raw[0].GetString()} == "a\xFF");
}

TEST_CASE("utf8 repair: every split of 2, 3 and 4 byte characters across SSE chunks") {
  // Each character raw in one event, and split between two events.
  for (std::string ch : {"\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80"}) {
    INFO("character of " << ch.size() << " bytes");
    std::vector<std::string> tokens{"x" + ch + "y", "<" + ch.substr(0, 1), ch.substr(1) + ">"};
    if (ch.size() > 2)
      tokens.insert(tokens.end(), {"[" + ch.substr(0, 2), ch.substr(2) + "]"});
    std::string expected = "x" + ch + "y<" + ch + ">";
    if (ch.size() > 2)
      expected += "[" + ch + "]";
    auto body = openai_transcript(tokens);
    CHECK(sink_text<chat::ai::openai_stream>(body, {}) == expected);
    for (size_t i = 0; i <= body.size(); ++i) {
      INFO("cut at " << i);
      CHECK(sink_text<chat::ai::openai_stream>(body, {i}) == expected);
    }
    std::vector<size_t> every;
    for (size_t i = 1; i < body.size(); ++i)
      every.push_back(i);
    CHECK(sink_text<chat::ai::openai_stream>(body, every) == expected);
  }
}

TEST_CASE("utf8 repair: a lone surrogate escape, 0xFF and NUL from a provider") {
  auto body = openai_transcript({"a\\udc00", "b\xFF", "c\\u0000d", "e\xC3"});
  // A character cut off by the end of the stream: U+FFFD too.
  CHECK(sink_text<chat::ai::openai_stream>(body, {})
        == "a" + times(fffd, 3) + "b" + fffd + "c" + fffd + "de" + fffd);
  std::string anthropic
      = "event: content_block_delta\n"
        R"(data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"\udc00!"}})"
        "\n\n";
  CHECK(sink_text<chat::ai::anthropic_stream>(anthropic, {}) == times(fffd, 3) + "!");
}

TEST_CASE("utf8 repair: feed_string gives the same text as feed, split anywhere") {
  // feed_string passes valid, whole text through without a copy; anything
  // else (a bad byte, a character cut at the end, bytes held back) must
  // come out exactly as feed() makes it.
  const std::vector<std::string> texts{
      "plain ascii",
      "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80",
      std::string{"nul\0here", 8},
      "bad \xC0\xAF and \xED\xA0\x80 and \xF5",
      "cut \xE2\x82",
      "\x80 stray",
      ""};
  for (auto& text : texts)
    for (size_t cut = 0; cut <= text.size(); ++cut) {
      utf8_repair a, b;
      std::string via_feed = a.feed(std::string_view{text}.substr(0, cut));
      via_feed += a.feed(std::string_view{text}.substr(cut));
      via_feed += a.finish();
      std::string via_string = b.feed_string(text.substr(0, cut));
      via_string += b.feed_string(text.substr(cut));
      via_string += b.finish();
      CHECK(via_string == via_feed);
    }
}
