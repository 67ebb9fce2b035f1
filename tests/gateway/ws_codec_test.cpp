#include "gateway/ws_codec.hpp"

#include <string>
#include <vector>

#include <doctest/doctest.h>

using namespace chat::gateway::ws;

namespace {

/// A client frame as a browser sends it: masked, with the length in its
/// shortest form unless `len_form` (126 or 127) forces a longer one.
std::string client_frame(uint8_t op, std::string_view payload, bool fin = true,
                         uint8_t extra_b0 = 0, bool masked = true, int len_form = 0) {
  std::string f;
  f.push_back(static_cast<char>((fin ? 0x80 : 0) | extra_b0 | op));
  uint8_t mbit = masked ? 0x80 : 0;
  auto n = payload.size();
  if (len_form == 0)
    len_form = n < 126 ? 0 : n <= 0xFFFF ? 126 : 127;
  if (len_form == 0) {
    f.push_back(static_cast<char>(mbit | n));
  } else if (len_form == 126) {
    f.push_back(static_cast<char>(mbit | 126));
    f.push_back(static_cast<char>(n >> 8));
    f.push_back(static_cast<char>(n));
  } else {
    f.push_back(static_cast<char>(mbit | 127));
    for (int i = 0; i < 8; ++i)
      f.push_back(static_cast<char>(static_cast<uint64_t>(n) >> (56 - 8 * i)));
  }
  const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
  if (masked)
    f.append(reinterpret_cast<const char*>(mask), 4);
  for (size_t i = 0; i < n; ++i)
    f.push_back(static_cast<char>(payload[i] ^ (masked ? mask[i % 4] : 0)));
  return f;
}

struct collected {
  read_event::kind_t kind;
  bool text;
  uint16_t code;
  std::string payload;
  std::string reason;
};

/// Feeds `bytes` in pieces of `piece` bytes; collects every event.
std::vector<collected> feed(frame_reader& r, std::string bytes, size_t piece = SIZE_MAX) {
  std::vector<collected> out;
  size_t off = 0;
  while (off < bytes.size()) {
    auto n = std::min(piece, bytes.size() - off);
    size_t done = 0;
    while (done < n) {
      size_t used = 0;
      auto ev = r.next(bytes.data() + off + done, n - done, used);
      done += used;
      if (ev.kind != read_event::need_more)
        out.push_back({ev.kind, ev.text, ev.code, std::string{ev.payload}, std::string{ev.reason}});
      else
        REQUIRE(done == n);
    }
    off += n;
  }
  return out;
}

} // namespace

TEST_CASE("ws_codec: a masked text frame, whole or in pieces of any size") {
  auto frame = client_frame(0x1, R"({"type":"ping","nonce":1})");
  for (size_t piece : {SIZE_MAX, size_t{1}, size_t{2}, size_t{3}, size_t{7}}) {
    frame_reader r{1024};
    auto ev = feed(r, frame + frame, piece);
    REQUIRE(ev.size() == 2);
    for (auto& e : ev) {
      CHECK(e.kind == read_event::message);
      CHECK(e.text);
      CHECK(e.payload == R"({"type":"ping","nonce":1})");
    }
    CHECK(r.between_messages());
  }
}

TEST_CASE("ws_codec: 16- and 64-bit lengths") {
  std::string mid(300, 'a');
  std::string big(70000, 'b');
  frame_reader r{100000};
  auto ev = feed(r, client_frame(0x1, mid) + client_frame(0x1, big), 4096);
  REQUIRE(ev.size() == 2);
  CHECK(ev[0].payload == mid);
  CHECK(ev[1].payload == big);
}

TEST_CASE("ws_codec: a fragmented message with control frames between its fragments") {
  frame_reader r{1024};
  auto bytes = client_frame(0x1, "hel", false) + client_frame(0x9, "p1")
               + client_frame(0x0, "lo ", false) + client_frame(0xA, "")
               + client_frame(0x0, "world", true);
  for (size_t piece : {SIZE_MAX, size_t{1}, size_t{5}}) {
    frame_reader rr{1024};
    auto ev = feed(rr, bytes, piece);
    REQUIRE(ev.size() == 3);
    CHECK(ev[0].kind == read_event::ping);
    CHECK(ev[0].payload == "p1");
    CHECK(ev[1].kind == read_event::pong);
    CHECK(ev[2].kind == read_event::message);
    CHECK(ev[2].payload == "hello world");
  }
}

TEST_CASE("ws_codec: close frames with and without a code") {
  {
    frame_reader r{1024};
    auto ev = feed(r, client_frame(0x8, close_payload(1000, "bye")) + client_frame(0x1, "after"));
    REQUIRE(ev.size() == 1); // nothing after a close
    CHECK(ev[0].kind == read_event::close);
    CHECK(ev[0].code == 1000);
    CHECK(ev[0].reason == "bye");
    CHECK(r.stopped());
  }
  {
    frame_reader r{1024};
    auto ev = feed(r, client_frame(0x8, ""));
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].code == close_code::none);
  }
  for (auto bad : {std::string{"\x03"}, std::string{"\x03\xed"} /* 1005 */, close_payload(999, ""),
                   close_payload(2000, ""), close_payload(1000, "\xff")}) {
    frame_reader r{1024};
    auto ev = feed(r, client_frame(0x8, bad));
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].kind == read_event::fail);
    CHECK((ev[0].code == 1002 || ev[0].code == 1007));
  }
}

TEST_CASE("ws_codec: protocol errors close with 1002 and stop the reader") {
  std::vector<std::string> bad = {
      client_frame(0x1, "x", true, 0x40),                          // RSV1
      client_frame(0x1, "x", true, 0x10),                          // RSV3
      client_frame(0x3, "x"),                                      // reserved opcode
      client_frame(0xB, "x"),                                      // reserved control opcode
      client_frame(0x1, "x", true, 0, false),                      // not masked
      client_frame(0x9, "x", false),                               // fragmented ping
      client_frame(0x9, std::string(126, 'p')),                    // control > 125 bytes
      client_frame(0x0, "x"),                                      // continuation first
      client_frame(0x1, "a", false) + client_frame(0x1, "b"),     // text inside a message
      client_frame(0x1, "short", true, 0, true, 126),              // 16-bit length for 5
      client_frame(0x1, std::string(300, 'a'), true, 0, true, 127) // 64-bit length for 300
  };
  for (auto& bytes : bad) {
    frame_reader r{1024};
    auto ev = feed(r, bytes + client_frame(0x1, "later"));
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].kind == read_event::fail);
    CHECK(ev[0].code == 1002);
    CHECK(r.stopped());
  }
  // A 64-bit length with its top bit set.
  frame_reader r{1024};
  std::string huge{"\x81\xff\x80\x00\x00\x00\x00\x00\x00\x00" "abcd", 14};
  auto ev = feed(r, huge);
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].code == 1002);
}

TEST_CASE("ws_codec: too big (1009) and binary (1003) are skipped: the close reply is still found") {
  {
    frame_reader r{64 * 1024};
    auto bytes = client_frame(0x1, std::string(70 * 1024, ' '))
                 + client_frame(0x8, close_payload(1009, ""));
    auto ev = feed(r, bytes, 1000);
    REQUIRE(ev.size() == 2);
    CHECK(ev[0].kind == read_event::fail);
    CHECK(ev[0].code == 1009);
    CHECK(ev[1].kind == read_event::close);
    CHECK(ev[1].code == 1009);
  }
  {
    // Fragments that add up to more than the limit fail at the header that
    // crosses it.
    frame_reader r{10};
    auto ev = feed(r, client_frame(0x1, "123456", false) + client_frame(0x0, "789012"));
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].code == 1009);
  }
  {
    frame_reader r{1024};
    auto ev = feed(r, client_frame(0x2, "\x01\x02") + client_frame(0x1, "dropped")
                          + client_frame(0x9, "") + client_frame(0x8, close_payload(1000, "")));
    REQUIRE(ev.size() == 3);
    CHECK(ev[0].code == 1003);
    CHECK(ev[1].kind == read_event::ping);
    CHECK(ev[2].kind == read_event::close);
  }
  {
    frame_reader r{1024, false};
    auto ev = feed(r, client_frame(0x2, "\x01\x02"));
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].kind == read_event::message);
    CHECK_FALSE(ev[0].text);
  }
}

TEST_CASE("ws_codec: invalid UTF-8 closes with 1007, also across fragments") {
  frame_reader r{1024};
  auto ev = feed(r, client_frame(0x1, "ok \xc3") + client_frame(0x1, "next"));
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].code == 1007);
  // A sequence split between two fragments is fine.
  frame_reader r2{1024};
  ev = feed(r2, client_frame(0x1, "caf\xc3", false) + client_frame(0x0, "\xa9"));
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].kind == read_event::message);
  CHECK(ev[0].payload == "caf\xc3\xa9");
}

TEST_CASE("ws_codec: discard_data skips data frames but not control frames") {
  frame_reader r{1024};
  r.discard_data();
  auto ev = feed(r, client_frame(0x1, "a", false) + client_frame(0x0, "b")
                        + client_frame(0x9, "x") + client_frame(0x8, close_payload(1001, "")),
                 3);
  REQUIRE(ev.size() == 2);
  CHECK(ev[0].kind == read_event::ping);
  CHECK(ev[1].kind == read_event::close);
}

TEST_CASE("ws_codec: UTF-8 validation") {
  CHECK(valid_utf8(""));
  CHECK(valid_utf8("plain ascii, longer than eight bytes"));
  CHECK(valid_utf8("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));
  CHECK_FALSE(valid_utf8("\xc0\xaf"));          // overlong
  CHECK_FALSE(valid_utf8("\xe0\x80\xaf"));      // overlong
  CHECK_FALSE(valid_utf8("\xed\xa0\x80"));      // surrogate
  CHECK_FALSE(valid_utf8("\xf4\x90\x80\x80"));  // past U+10FFFF
  CHECK_FALSE(valid_utf8("\x80"));              // lone continuation
  CHECK_FALSE(valid_utf8("abcdefgh\xe2\x82"));  // truncated
  CHECK_FALSE(valid_utf8("\xff"));
}

TEST_CASE("ws_codec: server frame headers and close payloads") {
  char h[max_server_header];
  CHECK(encode_header(h, opcode::text, 5) == 2);
  CHECK(static_cast<uint8_t>(h[0]) == 0x81);
  CHECK(h[1] == 5);
  CHECK(encode_header(h, opcode::text, 126) == 4);
  CHECK(static_cast<uint8_t>(h[1]) == 126);
  CHECK(static_cast<uint8_t>(h[3]) == 126);
  CHECK(encode_header(h, opcode::ping, 0) == 2);
  CHECK(static_cast<uint8_t>(h[0]) == 0x89);
  CHECK(encode_header(h, opcode::text, 70000) == 10);
  CHECK(static_cast<uint8_t>(h[1]) == 127);
  CHECK(static_cast<uint8_t>(h[7]) == 0x01); // 70000 = 0x11170
  CHECK(static_cast<uint8_t>(h[8]) == 0x11);
  CHECK(static_cast<uint8_t>(h[9]) == 0x70);
  CHECK(close_payload(1009, "frame too large") == std::string{"\x03\xf1"} + "frame too large");
  CHECK(close_payload(close_code::none, "x").empty());
  std::string long_reason(60, 'a');
  for (int i = 0; i < 40; ++i)
    long_reason += "\xc3\xa9";
  auto p = close_payload(1000, long_reason);
  CHECK(p.size() <= 125);
  CHECK(valid_utf8(p.substr(2)));
}
