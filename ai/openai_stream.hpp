#pragma once
/// Decodes the body of an OpenAI chat-completions stream (`stream: true`)
/// into content deltas, the finish reason, token usage and errors. Pure: no
/// I/O; feed it the body bytes as they arrive, split anywhere.
///
/// What it understands (one JSON object per SSE `data:`):
///   {"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}
///   {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}
///   {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12}}
///   {"error":{"message":"...","type":"..."}}
///   [DONE]

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ai/sse_parser.hpp"

namespace chat::ai {

class openai_stream {
public:
  /// Parses a slice of the body; returns the content it completes, in
  /// order (empty when the slice completes no content).
  std::string feed(std::string_view bytes);

  /// Interprets one SSE event; appends its content to `delta`.
  void on_event(const sse_event& ev, std::string& delta);

  /// `[DONE]` arrived.
  bool done() const {
    return done_;
  }

  /// The stream reached a regular end: `[DONE]` or a finish reason.
  bool finished() const {
    return done_ || !finish_reason_.empty();
  }

  /// The provider's finish reason as sent ("stop", "length", ...); empty
  /// until one arrives.
  const std::string& finish_reason() const {
    return finish_reason_;
  }

  /// Token counts from the usage chunk; -1 until reported.
  int64_t prompt_tokens() const {
    return prompt_tokens_;
  }
  int64_t completion_tokens() const {
    return completion_tokens_;
  }

  /// Set when the provider sent an error object or unparsable data: a short
  /// description. Later events are ignored.
  bool failed() const {
    return !error_.empty();
  }
  const std::string& error() const {
    return error_;
  }

private:
  sse_parser parser_;
  std::vector<sse_event> events_; // reused buffer
  std::string finish_reason_;
  std::string error_;
  int64_t prompt_tokens_ = -1;
  int64_t completion_tokens_ = -1;
  bool done_ = false;
};

/// The short message of an OpenAI-style error body
/// (`{"error":{"message":"..."}}`), cut to at most `max_len` bytes; empty
/// when the body has none.
std::string openai_error_message(std::string_view body, size_t max_len = 160);

} // namespace chat::ai
