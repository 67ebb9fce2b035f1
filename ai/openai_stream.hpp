#pragma once
/// Decodes the body of an OpenAI chat-completions stream (`stream: true`)
/// into content deltas, the finish reason, token usage and errors (the state
/// and feed() are stream_decoder's).
///
/// What it understands (one JSON object per SSE `data:`):
///   {"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}
///   {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}
///   {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12}}
///   {"error":{"message":"...","type":"..."}}
///   [DONE]

#include <string>
#include <string_view>

#include "ai/stream_decoder.hpp"

namespace chat::ai {

/// done(): `[DONE]` arrived. finish_reason(): as sent. Token counts: from
/// the usage chunk. Errors: an error object or unparsable data.
class openai_stream : public stream_decoder {
public:
  void on_event(const sse_event_view& ev, std::string& delta) override;
};

/// The short message of an OpenAI-style error body
/// (`{"error":{"message":"..."}}`), cut to at most `max_len` bytes; empty
/// when the body has none.
std::string openai_error_message(std::string_view body, size_t max_len = 160);

} // namespace chat::ai
