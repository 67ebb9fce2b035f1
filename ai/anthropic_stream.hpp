#pragma once
/// Decodes the body of an Anthropic Messages stream (`stream: true`) into
/// text deltas, the finish reason, token usage and errors. Pure: no I/O;
/// feed it the body bytes as they arrive, split anywhere. The same shape as
/// openai_stream, so that the invoker drives either.
///
/// What it understands (SSE `event:` name, then one JSON object per `data:`,
/// whose "type" repeats the event name):
///   message_start        {"type":"message_start","message":{...,"usage":
///                         {"input_tokens":25,"output_tokens":1}}}
///   content_block_start  {"type":"content_block_start","index":0,
///                         "content_block":{"type":"text","text":""}}
///   content_block_delta  {"type":"content_block_delta","index":0,
///                         "delta":{"type":"text_delta","text":"Hi"}}
///   content_block_stop   {"type":"content_block_stop","index":0}
///   message_delta        {"type":"message_delta","delta":{"stop_reason":
///                         "end_turn","stop_sequence":null},"usage":
///                         {"output_tokens":15}}
///   message_stop         {"type":"message_stop"}
///   ping                 {"type":"ping"}
///   error                {"type":"error","error":{"type":"overloaded_error",
///                         "message":"Overloaded"}}
/// Other delta types (thinking, tool input JSON) and unknown event types are
/// ignored, as Anthropic asks of clients (new event types may appear).

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ai/sse_parser.hpp"

namespace chat::ai {

class anthropic_stream {
public:
  /// Parses a slice of the body; returns the text it completes, in order
  /// (empty when the slice completes no text).
  std::string feed(std::string_view bytes);

  /// Interprets one SSE event; appends its text to `delta`.
  void on_event(const sse_event& ev, std::string& delta);

  /// `message_stop` arrived.
  bool done() const {
    return done_;
  }

  /// The stream reached a regular end: `message_stop` or a stop reason.
  bool finished() const {
    return done_ || !finish_reason_.empty();
  }

  /// The finish reason in OpenAI's words: "end_turn" and "stop_sequence"
  /// are "stop", "max_tokens" is "length"; others ("tool_use", "refusal",
  /// ...) as sent. Empty until `message_delta` brings one.
  const std::string& finish_reason() const {
    return finish_reason_;
  }

  /// The stop reason as Anthropic sent it; empty until one arrives.
  const std::string& stop_reason() const {
    return stop_reason_;
  }

  /// usage.input_tokens (message_start) and usage.output_tokens
  /// (message_delta, cumulative); -1 until reported.
  int64_t prompt_tokens() const {
    return prompt_tokens_;
  }
  int64_t completion_tokens() const {
    return completion_tokens_;
  }

  /// Set when the provider sent an error event or unparsable data: a short
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
  std::string stop_reason_;
  std::string error_;
  int64_t prompt_tokens_ = -1;
  int64_t completion_tokens_ = -1;
  bool done_ = false;
};

/// "end_turn"/"stop_sequence" -> "stop", "max_tokens" -> "length", else the
/// reason itself.
std::string anthropic_finish_reason(std::string_view stop_reason);

/// The short message of an Anthropic error body
/// (`{"type":"error","error":{"type":"...","message":"..."}}`), cut to at
/// most `max_len` bytes; empty when the body has none.
std::string anthropic_error_message(std::string_view body, size_t max_len = 160);

} // namespace chat::ai
