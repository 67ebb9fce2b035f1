/// libFuzzer target: RFC 6455 framing of what clients send
/// (gateway::ws::frame_reader), with the bytes cut into pieces of any size as
/// reads deliver them. The first input bytes choose the message limit and
/// the piece sizes; the rest is the byte stream. Properties: no crash, leak
/// or undefined behaviour; every event stays inside the bytes given; a text
/// message is valid UTF-8 and within the limit; control payloads are at
/// most 125 bytes; a close code a client gets through is one it may send;
/// the same stream read whole or in pieces gives the same events.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "gateway/ws_codec.hpp"
#include "tests/fuzz/fuzz_input.hpp"

using namespace chat::gateway::ws;

namespace {

struct event_copy {
  int kind;
  bool text;
  uint16_t code;
  std::string payload;
  std::string reason;
  bool operator==(const event_copy& o) const {
    return kind == o.kind && text == o.text && code == o.code && payload == o.payload
           && reason == o.reason;
  }
};

/// Reads `stream` in pieces of `piece` bytes (0: whole), as the session
/// does: next() until need_more, then the next piece.
std::vector<event_copy> read_all(std::string stream, size_t max_message, bool text_only,
                                 size_t piece, bool discard_after_message) {
  frame_reader reader{max_message, text_only};
  std::vector<event_copy> out;
  size_t pos = 0;
  while (pos < stream.size() && !reader.stopped()) {
    size_t n = piece == 0 ? stream.size() - pos : std::min(piece, stream.size() - pos);
    char* data = stream.data() + pos;
    size_t off = 0;
    for (;;) {
      size_t used = 0;
      auto ev = reader.next(data + off, n - off, used);
      CHAT_FUZZ_CHECK(used <= n - off);
      off += used;
      if (ev.kind == read_event::need_more) {
        CHAT_FUZZ_CHECK(off == n);
        break;
      }
      switch (ev.kind) {
        case read_event::message:
          CHAT_FUZZ_CHECK(ev.payload.size() <= max_message);
          CHAT_FUZZ_CHECK(!ev.text || valid_utf8(ev.payload));
          CHAT_FUZZ_CHECK(ev.text || !text_only);
          break;
        case read_event::ping:
        case read_event::pong:
          CHAT_FUZZ_CHECK(ev.payload.size() <= 125);
          break;
        case read_event::close:
          CHAT_FUZZ_CHECK(ev.code == close_code::none || valid_close_code(ev.code));
          CHAT_FUZZ_CHECK(valid_utf8(ev.reason));
          CHAT_FUZZ_CHECK(ev.reason.size() <= 123);
          break;
        case read_event::fail:
          CHAT_FUZZ_CHECK(ev.code != 0);
          // What the server would send back must fit a control frame.
          CHAT_FUZZ_CHECK(close_payload(ev.code, ev.reason).size() <= 125);
          break;
        default:
          CHAT_FUZZ_CHECK(false);
      }
      out.push_back(
          event_copy{ev.kind, ev.text, ev.code, std::string{ev.payload}, std::string{ev.reason}});
      if (ev.kind == read_event::message && discard_after_message)
        reader.discard_data();
    }
    pos += n;
  }
  return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  chat::fuzz::input in{data, size};
  auto flags = in.byte();
  size_t max_message = 1 + in.u16() % 4096;
  size_t piece = 1 + in.byte() % 64;
  bool text_only = !(flags & 1);
  bool discard = flags & 2;
  std::string stream{in.rest()};
  auto whole = read_all(stream, max_message, text_only, 0, discard);
  auto pieces = read_all(stream, max_message, text_only, piece, discard);
  CHAT_FUZZ_CHECK(whole == pieces);

  // The server's side: headers of any length, close payloads of any reason.
  char hdr[max_server_header];
  auto n = encode_header(hdr, opcode::text, stream.size() * 1000003ull);
  CHAT_FUZZ_CHECK(n >= 2 && n <= max_server_header);
  (void)close_payload(static_cast<uint16_t>(max_message), stream);
  return 0;
}
