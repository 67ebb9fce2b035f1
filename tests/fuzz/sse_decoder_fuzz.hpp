#pragma once
/// The body of the two provider stream targets (openai_sse_fuzz.cpp,
/// anthropic_sse_fuzz.cpp): the input is a provider's response body, fed to
/// the decoder whole and again cut into pieces as libcurl delivers them
/// (the first input byte chooses the piece size). Properties: no crash, leak
/// or undefined behaviour; the same content, end, finish reason, usage and
/// error whole or in pieces; with a small reply cap the content stays within
/// it and ends with "length".

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tests/fuzz/fuzz_input.hpp"

namespace chat::fuzz {

struct decoded {
  std::string content;
  bool done, finished, failed, capped;
  std::string finish_reason, error;
  int64_t prompt_tokens, completion_tokens;
  bool operator==(const decoded& o) const {
    return content == o.content && done == o.done && finished == o.finished && failed == o.failed
           && capped == o.capped && finish_reason == o.finish_reason && error == o.error
           && prompt_tokens == o.prompt_tokens && completion_tokens == o.completion_tokens;
  }
};

template<class Decoder>
decoded decode_body(std::string_view body, size_t piece, size_t reply_cap) {
  Decoder d;
  if (reply_cap)
    d.limit_reply(reply_cap);
  decoded r;
  while (!body.empty()) {
    auto n = piece == 0 ? body.size() : std::min(piece, body.size());
    r.content += d.feed(body.substr(0, n));
    body.remove_prefix(n);
  }
  r.done = d.done();
  r.finished = d.finished();
  r.failed = d.failed();
  r.capped = d.reply_capped();
  r.finish_reason = d.finish_reason();
  r.error = d.error();
  r.prompt_tokens = d.prompt_tokens();
  r.completion_tokens = d.completion_tokens();
  CHAT_FUZZ_CHECK(d.provider_detail().size() <= 160 + 3); // shortened, "..." added
  return r;
}

template<class Decoder>
int fuzz_decoder(const uint8_t* data, size_t size) {
  input in{data, size};
  size_t piece = 1 + in.byte() % 32;
  size_t cap = 1 + in.byte() % 64;
  auto body = in.rest();
  auto whole = decode_body<Decoder>(body, 0, 0);
  auto pieces = decode_body<Decoder>(body, piece, 0);
  CHAT_FUZZ_CHECK(whole == pieces);
  auto capped = decode_body<Decoder>(body, piece, cap);
  CHAT_FUZZ_CHECK(capped.content.size() <= cap);
  CHAT_FUZZ_CHECK(!capped.capped || capped.finish_reason == "length");
  CHAT_FUZZ_CHECK(whole.content.compare(0, capped.content.size(), capped.content) == 0);
  return 0;
}

} // namespace chat::fuzz
