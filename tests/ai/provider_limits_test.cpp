// What keeps untrusted provider output and failing providers in bounds,
// without sockets: SSE and reply byte caps, deep JSON, our own error words,
// the retry policy, the context cut and the models' output limits.
#include "ai/retry_policy.hpp"

#include <doctest/doctest.h>

#include <string>

#include "ai/anthropic_request.hpp"
#include "ai/anthropic_stream.hpp"
#include "ai/context_cut.hpp"
#include "ai/model_limits.hpp"
#include "ai/openai_stream.hpp"
#include "ai/sse_parser.hpp"

using namespace chat::ai;
using namespace std::chrono_literals;

namespace {

std::string content_event(const std::string& text) {
  return R"(data: {"choices":[{"index":0,"delta":{"content":")" + text + R"("}}]})" + "\n\n";
}

} // namespace

// -- byte caps --------------------------------------------------------------------

TEST_CASE("sse caps: a line or an event past its cap stops the parser") {
  sse_parser p{100, 150};
  CHECK(p.feed("data: " + std::string(90, 'a') + "\n\n").size() == 1);
  CHECK_FALSE(p.overflowed());
  // A line that never ends: cut off at the cap, whatever the slices.
  for (int i = 0; i < 10; ++i)
    p.feed(std::string(30, 'b'));
  CHECK(p.overflowed());
  CHECK(p.feed("\n\ndata: x\n\n").empty()); // nothing more, ever

  sse_parser q{100, 150};
  // Short lines, but one event's data grows past 150 bytes.
  CHECK(q.feed("data: " + std::string(80, 'c') + "\n").empty());
  CHECK(q.feed("data: " + std::string(80, 'c') + "\n\n").empty());
  CHECK(q.overflowed());
}

TEST_CASE("decoder caps: an oversized event is an error, what streamed is kept") {
  openai_stream s;
  CHECK(s.feed(content_event("kept")) == "kept");
  auto huge = "data: " + std::string(sse_parser::default_max_line_bytes + 10, 'x');
  CHECK(s.feed(huge).empty());
  CHECK(s.error() == "provider sent an oversized event");
  CHECK_FALSE(s.finished());
}

TEST_CASE("decoder caps: the whole reply is cut at its byte cap, as length") {
  openai_stream s;
  s.limit_reply(10);
  CHECK(s.feed(content_event("12345")) == "12345");
  // "é" at bytes 10..11 would straddle the cap: cut before it.
  CHECK(s.feed(content_event("6789\u00e9xyz")) == "6789");
  CHECK(s.reply_capped());
  CHECK(s.finish_reason() == "length");
  CHECK(s.done());
  CHECK_FALSE(s.failed());
  CHECK(s.feed(content_event("more")).empty());
}

TEST_CASE("decoder: deeply nested JSON is an error, not a crash") {
  // 100k levels: a recursive parser would overflow the driver thread's stack.
  std::string deep = "data: {\"choices\":" + std::string(100000, '[') + "\n\n";
  openai_stream o;
  CHECK(o.feed(deep).empty());
  CHECK(o.error() == "provider sent invalid data");
  std::string closed = "data: " + std::string(100000, '[') + std::string(100000, ']') + "\n\n";
  openai_stream o2;
  o2.feed(closed);
  CHECK(o2.error() == "provider sent invalid data"); // valid JSON, not an object
  anthropic_stream a;
  a.feed("event: content_block_delta\ndata: {\"delta\":" + std::string(100000, '{') + "\n\n");
  CHECK(a.error() == "provider sent invalid data");
  CHECK(openai_error_message(std::string(100000, '[')).empty());
  CHECK(anthropic_error_message(std::string(100000, '{')).empty());
}

TEST_CASE("decoder: error text from a provider is never in error()") {
  const std::string secret = "sk-proj-abc123 org-XYZ789 acct_42";
  openai_stream o;
  o.feed(R"(data: {"error":{"message":"bad key )" + secret + R"(","type":"x"}})" + "\n\n");
  CHECK(o.error() == "provider reported an error");
  CHECK(o.error().find("sk-") == std::string::npos);
  CHECK(o.provider_detail().find("sk-proj-abc123") != std::string::npos); // logs, redacted there
  openai_stream e;
  e.feed("event: error\ndata: " + secret + "\n\n");
  CHECK(e.error() == "provider reported an error");
  anthropic_stream a;
  a.feed(R"(event: error
data: {"type":"error","error":{"type":"overloaded_error","message":")"
         + secret + "\"}}\n\n");
  CHECK(a.error() == "provider reported an error");
  for (auto& err : {o.error(), e.error(), a.error()}) {
    CHECK(err.find("acct_42") == std::string::npos);
    CHECK(err.find("org-") == std::string::npos);
  }
}

// -- retry policy -------------------------------------------------------------------

TEST_CASE("retry policy: which statuses are retried") {
  CHECK(retryable_status(429));
  CHECK(retryable_status(500));
  CHECK(retryable_status(503));
  CHECK(retryable_status(529));
  CHECK_FALSE(retryable_status(400));
  CHECK_FALSE(retryable_status(401));
  CHECK_FALSE(retryable_status(404));
  CHECK_FALSE(retryable_status(200));
}

TEST_CASE("retry policy: Retry-After parsing") {
  retry_policy p;
  CHECK(parse_retry_after("1", p) == 1000ms);
  CHECK(parse_retry_after(" 120 \r\n", p) == 120000ms);
  CHECK(parse_retry_after("0", p) == 0ms);
  CHECK(parse_retry_after("1.5", p) == 1500ms);
  CHECK(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", p) == p.http_date_wait);
  CHECK(parse_retry_after("99999999999999999999", p).has_value()); // saturates, no overflow
  CHECK_FALSE(parse_retry_after("", p).has_value());
  CHECK_FALSE(parse_retry_after("-1", p).has_value());
  CHECK_FALSE(parse_retry_after("1x", p).has_value());
  CHECK(parse_retry_after("soon", p) == p.http_date_wait); // date-like: a fixed wait
}

TEST_CASE("retry policy: full-jitter backoff bounds, Retry-After honoured and capped") {
  retry_policy p;
  p.base = 500ms;
  p.max_backoff = 10s;
  p.max_retry_after = 30s;
  for (int k = 1; k <= 8; ++k) {
    INFO("retry " << k);
    auto ceiling = std::min<std::chrono::milliseconds>(500ms * (1 << (k - 1)), 10s);
    CHECK(retry_wait(p, k, std::nullopt, 0.0) == 0ms);
    CHECK(retry_wait(p, k, std::nullopt, 0.5) == ceiling / 2);
    CHECK(retry_wait(p, k, std::nullopt, 0.999999) <= ceiling);
    CHECK(retry_wait(p, k, std::nullopt, 0.999999) >= ceiling - 1ms);
  }
  CHECK(retry_wait(p, 1000, std::nullopt, 0.999999) <= 10s); // no overflow
  // At least the Retry-After, at most its cap.
  CHECK(retry_wait(p, 1, 2000ms, 0.0) == 2000ms);
  CHECK(retry_wait(p, 1, 2000ms, 0.999) == 2000ms);
  CHECK(retry_wait(p, 5, 1000ms, 0.5) == 4000ms); // the backoff is longer
  CHECK(retry_wait(p, 1, 120000ms, 0.5) == 30s);
  CHECK(retry_wait(p, 1, 0ms, 0.0) == 0ms);
}

// -- context and max_tokens -------------------------------------------------------------

TEST_CASE("context cut: newest first, the new message always whole") {
  std::vector<chat::chat_turn> turns{
      {"user", std::string(100, 'a')}, {"assistant", std::string(50, 'b')},
      {"user", std::string(30, 'c')},  {"assistant", std::string(20, 'd')},
      {"user", std::string(10, 'e')},
  };
  auto all = cut_context(turns, 1000);
  CHECK(all.size() == 5);
  auto cut = cut_context(turns, 60); // 10 + 20 + 30 fit, 50 more does not
  REQUIRE(cut.size() == 3);
  CHECK(cut[0].content == std::string(30, 'c'));
  CHECK(cut[2].content == std::string(10, 'e'));
  // Contiguous: the 100-byte turn is not taken past the 50-byte one.
  CHECK(cut_context(turns, 59).size() == 2);
  // The new message goes even when it alone is over the budget.
  auto only = cut_context(turns, 5);
  REQUIRE(only.size() == 1);
  CHECK(only[0].content == std::string(10, 'e'));
  CHECK(cut_context(turns, 0).size() == 1);
  CHECK(cut_context({}, 10).empty());
}

TEST_CASE("model limits: known models by name or dated snapshot, longest name wins") {
  CHECK(max_output_tokens("gpt-4o") == 16384);
  CHECK(max_output_tokens("gpt-4o-mini") == 16384);
  CHECK(max_output_tokens("gpt-4o-2024-08-06") == 16384);
  CHECK(max_output_tokens("gpt-4-turbo-2024-04-09") == 4096);
  CHECK(max_output_tokens("gpt-4") == 8192);
  CHECK(max_output_tokens("gpt-4.1-mini") == 32768);
  CHECK(max_output_tokens("claude-3-5-sonnet-20241022") == 8192);
  CHECK(max_output_tokens("claude-sonnet-4-20250514") == 64000);
  CHECK_FALSE(max_output_tokens("gpt-4oo").has_value());
  CHECK_FALSE(max_output_tokens("o1-mini").has_value()); // wants max_completion_tokens
  CHECK_FALSE(max_output_tokens("mock-2").has_value());
  CHECK_FALSE(max_output_tokens("llama3").has_value());
}

TEST_CASE("model limits: anthropic requests carry the model's limit, else the default") {
  chat::generation_request req;
  req.model = "claude-3-5-haiku-20241022";
  req.messages = {{"user", "hi"}};
  auto body
      = anthropic_request_body(req, max_output_tokens(req.model).value_or(anthropic_max_tokens));
  CHECK(body.find("\"max_tokens\":8192") != std::string::npos);
  req.model = "claude-mock";
  body = anthropic_request_body(req, max_output_tokens(req.model).value_or(anthropic_max_tokens));
  CHECK(body.find("\"max_tokens\":4096") != std::string::npos);
}
