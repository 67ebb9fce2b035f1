// Anthropic Messages stream decoding, fed real stream transcripts cut at
// every byte boundary; and the request body encoding.
#include "ai/anthropic_stream.hpp"

#include <doctest/doctest.h>

#include <rapidjson/document.h>

#include <string>
#include <vector>

#include "ai/anthropic_request.hpp"
#include "stream_splits.hpp"

using chat::ai::anthropic_stream;
using chat::test::decoded;

namespace {

// A claude-3-5-sonnet stream as the API sends it: message_start with usage,
// a text block (multi-byte UTF-8, escapes), a ping between deltas,
// message_delta with end_turn and output usage, message_stop.
const std::string transcript_stop
    = "event: message_start\n"
      R"(data: {"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","content":[],"model":"claude-3-5-sonnet-20241022","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}})"
      "\n\n"
      "event: content_block_start\n"
      R"(data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})"
      "\n\n"
      "event: ping\n"
      R"(data: {"type": "ping"})"
      "\n\n"
      "event: content_block_delta\n"
      R"(data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}})"
      "\n\n"
      "event: content_block_delta\n"
      R"(data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"! Ça va — "}})"
      "\n\n"
      "event: ping\n"
      R"(data: {"type": "ping"})"
      "\n\n"
      "event: content_block_delta\n"
      R"(data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"\"quoted\"\n\u00e9 😊"}})"
      "\n\n"
      "event: content_block_stop\n"
      R"(data: {"type":"content_block_stop","index":0})"
      "\n\n"
      "event: message_delta\n"
      R"(data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}})"
      "\n\n"
      "event: message_stop\n"
      R"(data: {"type":"message_stop"})"
      "\n\n";

// \r\n line endings (a proxy), a thinking block and a tool_use input delta
// that carry no text, stop at max_tokens; no message_stop (cut after the
// stop reason).
const std::string transcript_length
    = "event: message_start\r\n"
      R"(data: {"type":"message_start","message":{"id":"msg_02","type":"message","role":"assistant","content":[],"model":"claude-3-7-sonnet-20250219","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":7,"output_tokens":1}}})"
      "\r\n\r\n"
      "event: content_block_start\r\n"
      R"(data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}})"
      "\r\n\r\n"
      "event: content_block_delta\r\n"
      R"(data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me think"}})"
      "\r\n\r\n"
      "event: content_block_delta\r\n"
      R"(data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM"}})"
      "\r\n\r\n"
      "event: content_block_stop\r\n"
      R"(data: {"type":"content_block_stop","index":0})"
      "\r\n\r\n"
      "event: content_block_start\r\n"
      R"(data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}})"
      "\r\n\r\n"
      "event: content_block_delta\r\n"
      R"(data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"The quick"}})"
      "\r\n\r\n"
      "event: content_block_delta\r\n"
      R"(data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":" brown fox"}})"
      "\r\n\r\n"
      "event: content_block_delta\r\n"
      R"(data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"x\":"}})"
      "\r\n\r\n"
      "event: content_block_stop\r\n"
      R"(data: {"type":"content_block_stop","index":1})"
      "\r\n\r\n"
      "event: message_delta\r\n"
      R"(data: {"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},"usage":{"output_tokens":4}})"
      "\r\n\r\n";

// An overloaded error in the middle of a stream, as Anthropic sends it.
const std::string transcript_error
    = "event: message_start\n"
      R"(data: {"type":"message_start","message":{"id":"msg_03","type":"message","role":"assistant","content":[],"model":"claude-3-5-haiku-20241022","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":1}}})"
      "\n\n"
      "event: content_block_start\n"
      R"(data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})"
      "\n\n"
      "event: content_block_delta\n"
      R"(data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Partial"}})"
      "\n\n"
      "event: error\n"
      R"(data: {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})"
      "\n\n"
      "event: content_block_delta\n"
      R"(data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"ignored"}})"
      "\n\n";

// stop_sequence, a BOM, bare \r endings, no space after the colon, an
// unknown event type, a comment, and a delta spread over two data lines.
const std::string transcript_stop_sequence
    = "\xEF\xBB\xBF"
      ": keep-alive\r\r"
      "event:message_start\r"
      R"(data:{"type":"message_start","message":{"id":"msg_04","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-20250514","usage":{"input_tokens":3,"output_tokens":1}}})"
      "\r\r"
      "event: content_block_delta\r"
      R"(data: {"type":"content_block_delta","index":0,)"
      "\r"
      R"(data: "delta":{"type":"text_delta","text":"A"}})"
      "\r\r"
      "event: brand_new_event\r"
      R"(data: {"type":"brand_new_event","text":"not content"})"
      "\r\r"
      "event: content_block_delta\r"
      R"(data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"B"}})"
      "\r\r"
      "event: message_delta\r"
      R"(data: {"type":"message_delta","delta":{"stop_reason":"stop_sequence","stop_sequence":"\n\nHuman:"},"usage":{"output_tokens":2}})"
      "\r\r"
      "event: message_stop\r"
      R"(data: {"type":"message_stop"})"
      "\r\r";

decoded decode_whole(const std::string& text) {
  return chat::test::decode_whole<anthropic_stream>(text);
}

void check_every_split(const std::string& text) {
  chat::test::check_every_split<anthropic_stream>(text);
}

} // namespace

TEST_CASE("anthropic stream: normal stream with pings, usage, message_stop") {
  auto d = decode_whole(transcript_stop);
  CHECK(d.content == "Hello! Ça va — \"quoted\"\n\xC3\xA9 😊");
  CHECK(d.finish_reason == "stop");
  CHECK(d.prompt_tokens == 25);
  CHECK(d.completion_tokens == 15);
  CHECK(d.done);
  CHECK(d.error.empty());
  check_every_split(transcript_stop);
}

TEST_CASE("anthropic stream: \\r\\n, non-text blocks ignored, max_tokens is length") {
  auto d = decode_whole(transcript_length);
  CHECK(d.content == "The quick brown fox");
  CHECK(d.finish_reason == "length");
  CHECK(d.prompt_tokens == 7);
  CHECK(d.completion_tokens == 4);
  CHECK_FALSE(d.done); // no message_stop: a stop reason is the end anyway
  CHECK(d.finished);
  CHECK(d.error.empty());
  check_every_split(transcript_length);
}

TEST_CASE("anthropic stream: an error event ends the stream") {
  auto d = decode_whole(transcript_error);
  CHECK(d.content == "Partial");
  CHECK(d.error == "provider reported an error");
  anthropic_stream s;
  s.feed(transcript_error);
  CHECK(s.provider_detail() == "Overloaded"); // for logs only
  CHECK_FALSE(d.done);
  CHECK_FALSE(d.finished);
  CHECK(d.prompt_tokens == 12);
  CHECK(d.completion_tokens == -1); // message_start's placeholder is not a count
  check_every_split(transcript_error);
}

TEST_CASE("anthropic stream: stop_sequence, BOM, \\r, unknown events, multi-line data") {
  auto d = decode_whole(transcript_stop_sequence);
  CHECK(d.content == "AB");
  CHECK(d.finish_reason == "stop");
  CHECK(d.prompt_tokens == 3);
  CHECK(d.completion_tokens == 2);
  CHECK(d.done);
  CHECK(d.error.empty());
  check_every_split(transcript_stop_sequence);
}

TEST_CASE("anthropic stream: one feed yields one delta, stop reasons") {
  anthropic_stream s;
  auto delta = s.feed(
      "event: content_block_delta\ndata: "
      R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}})"
      "\n\nevent: content_block_delta\ndata: "
      R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"b"}})"
      "\n\nevent: ping\ndata: {\"type\":\"ping\"}\n\n"
      "event: content_block_delta\ndata: "
      R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"c"}})"
      "\n\n");
  CHECK(delta == "abc");
  CHECK_FALSE(s.finished());
  CHECK(
      s.feed(
           "event: message_delta\ndata: "
           R"({"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":9}})"
           "\n\n")
          .empty());
  CHECK(s.finished());
  CHECK_FALSE(s.done());
  CHECK(s.finish_reason() == "tool_use");
  CHECK(s.stop_reason() == "tool_use");
  CHECK(s.feed("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n").empty());
  CHECK(s.done());
  // Nothing counts after the end.
  CHECK(
      s.feed("event: content_block_delta\ndata: "
             R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}})"
             "\n\n")
          .empty());
  using chat::ai::anthropic_finish_reason;
  CHECK(anthropic_finish_reason("end_turn") == "stop");
  CHECK(anthropic_finish_reason("stop_sequence") == "stop");
  CHECK(anthropic_finish_reason("max_tokens") == "length");
  CHECK(anthropic_finish_reason("refusal") == "refusal");
}

TEST_CASE("anthropic stream: garbage data is an error, later events ignored") {
  anthropic_stream s;
  CHECK(s.feed("event: content_block_delta\ndata: {not json\n\n").empty());
  CHECK(s.error() == "provider sent invalid data");
  CHECK(s.feed("event: content_block_delta\ndata: "
               R"({"type":"content_block_delta","delta":{"type":"text_delta","text":"x"}})"
               "\n\n")
            .empty());
  anthropic_stream e;
  e.feed("event: error\ndata: upstream connect error\n\n");
  CHECK(e.error() == "provider reported an error");
  CHECK(e.provider_detail() == "upstream connect error");
}

TEST_CASE("anthropic stream: error bodies of HTTP errors") {
  using chat::ai::anthropic_error_message;
  CHECK(
      anthropic_error_message(
          R"({"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}})")
      == "invalid x-api-key");
  CHECK(
      anthropic_error_message(
          R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_011"})")
      == "Overloaded");
  CHECK(anthropic_error_message("<html>502 Bad Gateway</html>").empty());
  CHECK(anthropic_error_message(R"({"type":"error"})").empty());
  CHECK(anthropic_error_message(R"({"error":{"message":")" + std::string(400, 'x') + "\"}}").size()
        == 163);
}

// -- the request ----------------------------------------------------------------

TEST_CASE("anthropic request: roles alternate from user, system goes on top") {
  chat::generation_request req;
  req.model = "claude-3-5-haiku-latest";
  req.messages = {{"assistant", "Welcome!"}, // leading assistant: dropped
                  {"system", "Be brief."},   {"user", "one"},     {"user", "two"},
                  {"assistant", ""}, // failed reply: dropped
                  {"user", "three \"q\""},   {"assistant", "a1"}, {"assistant", "a2"},
                  {"system", "Use French."}, {"user", "four"}};
  auto body = chat::ai::anthropic_request_body(req);
  rapidjson::Document doc;
  doc.Parse(body.c_str());
  REQUIRE_FALSE(doc.HasParseError());
  CHECK(std::string{doc["model"].GetString()} == "claude-3-5-haiku-latest");
  CHECK(doc["max_tokens"].GetInt() == 4096);
  CHECK(doc["stream"].GetBool());
  CHECK(std::string{doc["system"].GetString()} == "Be brief.\n\nUse French.");
  auto& msgs = doc["messages"];
  REQUIRE(msgs.Size() == 3);
  CHECK(std::string{msgs[0]["role"].GetString()} == "user");
  CHECK(std::string{msgs[0]["content"].GetString()} == "one\n\ntwo\n\nthree \"q\"");
  CHECK(std::string{msgs[1]["role"].GetString()} == "assistant");
  CHECK(std::string{msgs[1]["content"].GetString()} == "a1\n\na2");
  CHECK(std::string{msgs[2]["role"].GetString()} == "user");
  CHECK(std::string{msgs[2]["content"].GetString()} == "four");
}

TEST_CASE("anthropic request: no system field without system turns") {
  chat::generation_request req;
  req.model = "m";
  req.messages = {{"user", "hi"}};
  CHECK(
      chat::ai::anthropic_request_body(req, 100)
      == R"({"model":"m","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi"}]})");
}
