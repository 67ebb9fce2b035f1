// OpenAI chat-completions stream decoding, fed real stream transcripts cut
// at every byte boundary.
#include "ai/openai_stream.hpp"

#include <doctest/doctest.h>

#include <string>

#include "stream_splits.hpp"

using chat::ai::openai_stream;
using chat::test::decoded;

namespace {

// A gpt-4o-mini stream as the API sends it with include_usage: a role-only
// first chunk, content chunks (multi-byte UTF-8, escapes), a finish chunk,
// a usage chunk with empty choices, [DONE].
const std::string transcript_stop
    = R"(data: {"id":"chatcmpl-AXu8Gq1","object":"chat.completion.chunk","created":1732530000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0705bf87c0","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null})"
      "\n\n"
      R"(data: {"id":"chatcmpl-AXu8Gq1","object":"chat.completion.chunk","created":1732530000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0705bf87c0","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}],"usage":null})"
      "\n\n"
      R"(data: {"id":"chatcmpl-AXu8Gq1","object":"chat.completion.chunk","created":1732530000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0705bf87c0","choices":[{"index":0,"delta":{"content":"! Ça va — "},"logprobs":null,"finish_reason":null}],"usage":null})"
      "\n\n"
      R"(data: {"id":"chatcmpl-AXu8Gq1","object":"chat.completion.chunk","created":1732530000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0705bf87c0","choices":[{"index":0,"delta":{"content":"\"quoted\"\n\u00e9 😊"},"logprobs":null,"finish_reason":null}],"usage":null})"
      "\n\n"
      R"(data: {"id":"chatcmpl-AXu8Gq1","object":"chat.completion.chunk","created":1732530000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0705bf87c0","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null})"
      "\n\n"
      R"(data: {"id":"chatcmpl-AXu8Gq1","object":"chat.completion.chunk","created":1732530000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0705bf87c0","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}})"
      "\n\n"
      "data: [DONE]\n\n";

// The same shape through a proxy that uses \r\n, sends keep-alive comments
// and stops at max_tokens ("length"); no usage chunk.
const std::string transcript_length
    = ": OPENROUTER PROCESSING\r\n\r\n"
      R"(data: {"id":"gen-1","object":"chat.completion.chunk","created":1732530001,"model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]})"
      "\r\n\r\n"
      R"(data: {"id":"gen-1","object":"chat.completion.chunk","created":1732530001,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"The quick"},"finish_reason":null}]})"
      "\r\n\r\n"
      ": OPENROUTER PROCESSING\r\n\r\n"
      R"(data: {"id":"gen-1","object":"chat.completion.chunk","created":1732530001,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":" brown fox"},"finish_reason":null}]})"
      "\r\n\r\n"
      R"(data: {"id":"gen-1","object":"chat.completion.chunk","created":1732530001,"model":"gpt-4o","choices":[{"index":0,"delta":{},"finish_reason":"length"}]})"
      "\r\n\r\n"
      "data: [DONE]\r\n\r\n";

// A stream that fails midway with an error object, as OpenAI sends it.
const std::string transcript_error
    = R"(data: {"id":"chatcmpl-B1","object":"chat.completion.chunk","created":1732530002,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]})"
      "\n\n"
      R"(data: {"id":"chatcmpl-B1","object":"chat.completion.chunk","created":1732530002,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Partial"},"logprobs":null,"finish_reason":null}]})"
      "\n\n"
      R"(data: {"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}})"
      "\n\n";

// An `event: error` frame (vLLM / proxies), BOM, bare \r endings, no space
// after the colon, and one JSON object spread over two data lines.
const std::string transcript_event_error
    = "\xEF\xBB\xBF"
      R"(data:{"choices":[{"index":0,"delta":{"content":"A"},"finish_reason":null}]})"
      "\r\r"
      R"(data: {"choices":[{"index":0,)"
      "\r"
      R"(data: "delta":{"content":"B"},"finish_reason":null}]})"
      "\r\r"
      "event: error\r"
      R"(data: {"error":{"message":"overloaded","type":"overloaded_error"}})"
      "\r\r";

decoded decode_whole(const std::string& text) {
  return chat::test::decode_whole<openai_stream>(text);
}

void check_every_split(const std::string& text) {
  chat::test::check_every_split<openai_stream>(text);
}

} // namespace

TEST_CASE("openai stream: normal stream with role chunk, usage, [DONE]") {
  auto d = decode_whole(transcript_stop);
  CHECK(d.content == "Hello! Ça va — \"quoted\"\n\xC3\xA9 😊");
  CHECK(d.finish_reason == "stop");
  CHECK(d.prompt_tokens == 9);
  CHECK(d.completion_tokens == 12);
  CHECK(d.done);
  CHECK(d.error.empty());
  check_every_split(transcript_stop);
}

TEST_CASE("openai stream: \\r\\n, comments, finish_reason length") {
  auto d = decode_whole(transcript_length);
  CHECK(d.content == "The quick brown fox");
  CHECK(d.finish_reason == "length");
  CHECK(d.prompt_tokens == -1);
  CHECK(d.completion_tokens == -1);
  CHECK(d.done);
  check_every_split(transcript_length);
}

TEST_CASE("openai stream: an error object ends the stream") {
  auto d = decode_whole(transcript_error);
  CHECK(d.content == "Partial");
  // Our words for people; the provider's only for logs.
  CHECK(d.error == "provider reported an error");
  openai_stream s;
  s.feed(transcript_error);
  CHECK(s.provider_detail()
        == "The server had an error while processing your request. Sorry about that!");
  CHECK_FALSE(d.done);
  CHECK(d.finish_reason.empty());
  check_every_split(transcript_error);
}

TEST_CASE("openai stream: event error, BOM, \\r, multi-line data") {
  auto d = decode_whole(transcript_event_error);
  CHECK(d.content == "AB");
  CHECK(d.error == "provider reported an error");
  check_every_split(transcript_event_error);
}

TEST_CASE("openai stream: one feed yields one delta with all its content") {
  openai_stream s;
  // Three content events in one read come out as one string.
  auto delta = s.feed("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n"
                      "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"}}]}\n\n"
                      "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"c\"}}]}\n\n");
  CHECK(delta == "abc");
  // A role-only chunk and a finish chunk carry no content.
  CHECK(s.feed("data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":"
               "\"assistant\"},\"finish_reason\":null}]}\n\n")
            .empty());
  CHECK_FALSE(s.finished());
  CHECK(s.feed("data: {\"choices\":[{\"index\":0,\"delta\":{},"
               "\"finish_reason\":\"content_filter\"}]}\n\n")
            .empty());
  CHECK(s.finished());
  CHECK(s.finish_reason() == "content_filter");
  CHECK_FALSE(s.done());
}

TEST_CASE("openai stream: garbage data is an error, later events ignored") {
  openai_stream s;
  CHECK(s.feed("data: {not json\n\n").empty());
  CHECK(s.error() == "provider sent invalid data");
  CHECK(s.feed("data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n").empty());
}

TEST_CASE("openai stream: error bodies of HTTP errors") {
  using chat::ai::openai_error_message;
  CHECK(
      openai_error_message(
          R"({"error":{"message":"Rate limit reached for gpt-4o-mini","type":"requests","param":null,"code":"rate_limit_exceeded"}})")
      == "Rate limit reached for gpt-4o-mini");
  CHECK(openai_error_message(R"({"error":"plain text"})") == "plain text");
  CHECK(openai_error_message("<html>502 Bad Gateway</html>").empty());
  CHECK(openai_error_message(R"({"error":{"message":")" + std::string(400, 'x') + "\"}}").size()
        == 163);
}
