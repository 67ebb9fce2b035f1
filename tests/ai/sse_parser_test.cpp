// The incremental SSE parser: line endings, fields, comments, BOM, and that
// cutting the input anywhere changes nothing.
#include "ai/sse_parser.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using chat::ai::sse_event;
using chat::ai::sse_parser;

namespace {

std::vector<sse_event> parse_whole(std::string_view text) {
  sse_parser p;
  return p.feed(text);
}

std::vector<sse_event> parse_bytes(std::string_view text) {
  sse_parser p;
  std::vector<sse_event> out;
  for (char c : text)
    p.feed(std::string_view{&c, 1}, out);
  return out;
}

bool same(const std::vector<sse_event>& a, const std::vector<sse_event>& b) {
  if (a.size() != b.size())
    return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].event != b[i].event || a[i].data != b[i].data || a[i].id != b[i].id)
      return false;
  return true;
}

// Every two-way cut of `text` and single bytes give what one feed gives.
void check_all_splits(std::string_view text) {
  auto whole = parse_whole(text);
  for (size_t i = 0; i <= text.size(); ++i) {
    sse_parser p;
    std::vector<sse_event> out;
    p.feed(text.substr(0, i), out);
    p.feed(text.substr(i), out);
    CHECK_MESSAGE(same(out, whole), "split at " << i);
  }
  CHECK(same(parse_bytes(text), whole));
}

} // namespace

TEST_CASE("sse parser: one event per blank line, data lines joined") {
  auto evs = parse_whole("data: a\ndata: b\n\ndata: c\n\n");
  REQUIRE(evs.size() == 2);
  CHECK(evs[0].data == "a\nb");
  CHECK(evs[0].event.empty());
  CHECK(evs[1].data == "c");
}

TEST_CASE("sse parser: all three line endings, also mixed") {
  for (auto text :
       {"data: x\r\n\r\n", "data: x\n\n", "data: x\r\r", "data: x\r\n\n", "data: x\r\r\n"}) {
    auto evs = parse_whole(text);
    REQUIRE_MESSAGE(evs.size() == 1, text);
    CHECK(evs[0].data == "x");
    check_all_splits(text);
  }
  // "\r" then "\n" in the next slice is one line end, not two.
  sse_parser p;
  CHECK(p.feed("data: 1\r").empty());
  CHECK(p.feed("\ndata: 2\r").empty());
  auto evs = p.feed("\n\r\n");
  REQUIRE(evs.size() == 1);
  CHECK(evs[0].data == "1\n2");
}

TEST_CASE("sse parser: fields, comments, no space after the colon") {
  auto evs = parse_whole(": keep-alive\n"
                         "event: update\n"
                         "id: 7\n"
                         "retry: 1000\n"
                         "data:tight\n"
                         "data:  two spaces\n"
                         "unknown: field\n"
                         "\n");
  REQUIRE(evs.size() == 1);
  CHECK(evs[0].event == "update");
  CHECK(evs[0].id == "7");
  CHECK(evs[0].data == "tight\n two spaces");
}

TEST_CASE("sse parser: a field without a colon, empty data, no data") {
  // "data" alone is a data line with an empty value.
  auto evs = parse_whole("data\n\nevent: ping\n\ndata:\ndata:\n\n");
  REQUIRE(evs.size() == 2);
  CHECK(evs[0].data.empty());
  CHECK(evs[1].data == "\n");
  CHECK(evs[1].event.empty()); // "event: ping" had no data: dropped, reset
}

TEST_CASE("sse parser: the event name resets, the id persists") {
  auto evs = parse_whole("event: a\nid: 1\ndata: x\n\ndata: y\n\n");
  REQUIRE(evs.size() == 2);
  CHECK(evs[0].event == "a");
  CHECK(evs[1].event.empty());
  CHECK(evs[1].id == "1");
}

TEST_CASE("sse parser: a BOM at the start is dropped, elsewhere kept") {
  auto evs = parse_whole("\xEF\xBB\xBF"
                         "data: a\n\n");
  REQUIRE(evs.size() == 1);
  CHECK(evs[0].data == "a");
  check_all_splits("\xEF\xBB\xBF"
                   "data: a\n\n");
  // A BOM-like prefix that is not one: the bytes belong to the line.
  auto odd = parse_whole("\xEF\xBB"
                         "data: a\n\ndata: b\n\n");
  REQUIRE(odd.size() == 1);
  CHECK(odd[0].data == "b");
  auto later = parse_whole("data: \xEF\xBB\xBFz\n\n");
  REQUIRE(later.size() == 1);
  CHECK(later[0].data == "\xEF\xBB\xBFz");
}

TEST_CASE("sse parser: an event cut off by the end is not dispatched") {
  sse_parser p;
  CHECK(p.feed("data: partial\n").empty());
  CHECK(p.feed("data: more").empty());
}

TEST_CASE("sse parser: every split point gives the same events") {
  check_all_splits("\xEF\xBB\xBF: hello\r\nevent: e1\r\ndata: one\r\n"
                   "data:two\r\n\r\nid: 9\rdata: three\r\r"
                   "data\n\ndata: four\n\n");
}
