/// libFuzzer target: an Anthropic Messages stream body through
/// ai::anthropic_stream (SSE parser + JSON events); see sse_decoder_fuzz.hpp.

#include "ai/anthropic_stream.hpp"
#include "tests/fuzz/sse_decoder_fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int rc = chat::fuzz::fuzz_decoder<chat::ai::anthropic_stream>(data, size);
  // The error body of a failed request (HTTP 4xx/5xx) is parsed too.
  std::string_view body{reinterpret_cast<const char*>(data), size};
  CHAT_FUZZ_CHECK(chat::ai::anthropic_error_message(body, 40).size() <= 43);
  (void)chat::ai::anthropic_finish_reason(body);
  return rc;
}
