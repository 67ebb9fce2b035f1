#pragma once
/// The mock LLM's logic without sockets: parse an OpenAI chat completion
/// request or an Anthropic Messages request, apply `[[mock ...]]`
/// directives, compute the deterministic reply and turn it into a timed list
/// of writes (`reply_plan`). The server in
/// main.cpp only replays plans; the tests check plans without a network.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chat::mock_llm {

/// How a reply fails on purpose (`--fail MODE`, `[[mock fail=MODE]]`).
enum class fail_mode {
  none,
  http500,
  before_first,
  mid_stream,
  stall,
  http429,
  keepalive, ///< the first token, then only `: keep-alive` comments, forever
  bad_utf8,  ///< tokens with a lone `\udc00` escape, a raw 0xFF, a split "é"
};

/// `none`, `http500`, `before-first`, `mid-stream`, `stall`, `http429`,
/// `keepalive`, `bad-utf8`.
std::optional<fail_mode> parse_fail_mode(std::string_view str);

/// Timing and length of one reply: the command line defaults, then the
/// request's directive on top.
struct reply_settings {
  int ttft_ms = 20;
  int delay_ms = 10;
  int tokens = 24;
  fail_mode fail = fail_mode::none;
  /// The Retry-After of http429, in seconds.
  int retry_after = 1;
};

/// What the mock needs from a `POST /v1/chat/completions` or
/// `POST /v1/messages` body.
struct chat_request {
  std::string model = "mock-1";
  /// Text of the last user message, directives removed.
  std::string text;
  /// Words across all messages' content (directives removed).
  size_t prompt_tokens = 0;
  bool stream = false;
  bool include_usage = false;
  /// `max_tokens` (or `max_completion_tokens`) when given and positive.
  std::optional<int64_t> max_tokens;
  /// Overrides from a `[[mock key=value ...]]` directive.
  std::optional<int> tokens;
  std::optional<int> ttft_ms;
  std::optional<int> delay_ms;
  std::optional<fail_mode> fail;
  std::optional<int> retry_after;
};

/// Parses an OpenAI request body into `out`. Returns an error text for
/// bodies that are not JSON or lack a `messages` array.
std::optional<std::string> parse_chat_request(std::string_view body, chat_request& out);

/// Parses an Anthropic Messages request body into `out`: like
/// parse_chat_request, and the words of the top-level `system` (a string or
/// text blocks) count in `prompt_tokens`.
std::optional<std::string> parse_messages_request(std::string_view body, chat_request& out);

/// Removes every `[[mock key=value ...]]` from `text` and stores its keys
/// (tokens, ttft_ms, delay_ms, fail, retry_after) in `req`. Unknown keys and bad values
/// are ignored: a typo must not break a test's prompt.
void take_directives(std::string& text, chat_request& req);

/// `defaults` with the request's directive applied.
reply_settings effective_settings(const chat_request& req, reply_settings defaults);

/// Whitespace-separated words, byte-exact.
std::vector<std::string_view> split_words(std::string_view text);

/// The reply: "Echo:", " w" per word of `text`, then " w<i>" fillers, exactly
/// `n` tokens.
std::vector<std::string> reply_tokens(std::string_view text, size_t n);

/// One write of a reply, `at` after the request arrived.
struct reply_step {
  std::chrono::milliseconds at;
  std::string bytes;
};

/// What the connection does once every step is written.
enum class after_steps {
  finish,    ///< reply complete; next request (or close without keep-alive)
  close,     ///< drop the connection (failure modes)
  stall,     ///< write nothing more, keep the connection open
  keepalive, ///< write an SSE comment every keepalive_interval, forever
};

/// How often `after_steps::keepalive` writes `: keep-alive`.
constexpr std::chrono::milliseconds keepalive_interval{200};

/// The content of bad-utf8 replies: token 1 gets `\udc00` (a lone low
/// surrogate, as a JSON escape), token 2 a raw 0xFF byte, token 3 ends with
/// the first byte of "é" (C3) and token 4 starts with its second (A9), each
/// token in its own event.
std::vector<std::string> bad_utf8_tokens(std::vector<std::string> tokens);

/// A whole HTTP response as timed raw writes (status line included).
struct reply_plan {
  int status = 200;
  /// A `stream: true` reply that got its 200 headers: counts in /stats.
  bool stream = false;
  std::vector<reply_step> steps;
  after_steps last = after_steps::finish;
};

/// The response to a parsed chat completion request. `id` makes the
/// `chatcmpl-mock-<id>` name, `created` is the Unix time.
reply_plan make_chat_plan(const chat_request& req, const reply_settings& s, uint64_t id,
                          int64_t created, bool keep_alive);

/// The Anthropic Messages response to a parsed request: the same tokens,
/// timing and failure modes as make_chat_plan. `id` makes `msg_mock_<id>`.
reply_plan make_messages_plan(const chat_request& req, const reply_settings& s, uint64_t id,
                              bool keep_alive);

/// A plan that answers at once with one complete response.
reply_plan make_simple_plan(int status, std::string body, bool keep_alive,
                            std::string_view content_type = "application/json");

/// An OpenAI-style error body: {"error":{"message",...,"type","param","code"}}.
std::string json_error(std::string_view message, std::string_view type, std::string_view code);

/// An Anthropic-style error body:
/// {"type":"error","error":{"type":TYPE,"message":MESSAGE}}.
std::string anthropic_error(std::string_view message, std::string_view type);

/// `data` framed as one HTTP/1.1 chunk.
std::string http_chunk(std::string_view data);

} // namespace chat::mock_llm
