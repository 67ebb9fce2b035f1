#pragma once
/// Decodes the body of an Anthropic Messages stream (`stream: true`) into
/// text deltas, the finish reason, token usage and errors (the state and
/// feed() are stream_decoder's, as for openai_stream).
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

#include <string>
#include <string_view>

#include "ai/stream_decoder.hpp"

namespace chat::ai {

/// done(): `message_stop` arrived. finish_reason(): the stop reason in
/// OpenAI's words: "end_turn" and "stop_sequence" are "stop", "max_tokens"
/// is "length"; others ("tool_use", "refusal", ...) as sent; empty until
/// `message_delta` brings one. Token counts: usage.input_tokens
/// (message_start) and usage.output_tokens (message_delta, cumulative).
/// Errors: an error event or unparsable data.
class anthropic_stream : public stream_decoder {
public:
  void on_event(const sse_event_view& ev, std::string& delta) override;

  /// The stop reason as Anthropic sent it; empty until one arrives.
  const std::string& stop_reason() const {
    return stop_reason_;
  }

private:
  std::string stop_reason_;
};

/// "end_turn"/"stop_sequence" -> "stop", "max_tokens" -> "length", else the
/// reason itself.
std::string anthropic_finish_reason(std::string_view stop_reason);

/// The short message of an Anthropic error body
/// (`{"type":"error","error":{"type":"...","message":"..."}}`), cut to at
/// most `max_len` bytes; empty when the body has none.
std::string anthropic_error_message(std::string_view body, size_t max_len = 160);

} // namespace chat::ai
