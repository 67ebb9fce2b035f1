/// libFuzzer target: the WebSocket protocol's JSON codec on what clients send
/// (protocol::decode, any bytes as one text frame), and the helpers that
/// read frame text (completed_seq_of, valid_client_msg_id). Properties: no
/// crash, leak or undefined behaviour; a decoded `send` keeps the limits.

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>

#include "protocol/codec.hpp"
#include "tests/fuzz/fuzz_input.hpp"

using namespace chat::protocol;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text{reinterpret_cast<const char*>(data), size};
  for (size_t max_content : {size_t{32768}, size_t{8}}) {
    limits lim;
    lim.max_content_bytes = max_content;
    auto r = decode(text, lim);
    if (auto f = std::get_if<client_frame>(&r)) {
      if (auto s = std::get_if<send_frame>(f)) {
        CHAT_FUZZ_CHECK(s->content.size() <= max_content);
        CHAT_FUZZ_CHECK(!s->content.empty());
        CHAT_FUZZ_CHECK(s->content.find('\0') == std::string::npos);
        CHAT_FUZZ_CHECK(valid_client_msg_id(s->client_msg_id));
      } else if (auto p = std::get_if<ping_frame>(f)) {
        (void)encode_pong(p->nonce_json); // echoed verbatim
      }
    } else {
      // An error frame to send back must encode.
      (void)encode(std::get<decode_error>(r).error);
    }
  }
  (void)completed_seq_of(text);
  (void)valid_client_msg_id(text);
  return 0;
}
