#pragma once
/// What the provider stream decoders (openai_stream, anthropic_stream) have
/// in common: fed the body bytes as they arrive, split anywhere, through an
/// SSE parser; each event goes to the provider's on_event, which records the
/// end of the stream, the finish reason, token usage and errors here. Pure:
/// no I/O.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ai/sse_parser.hpp"

namespace chat::ai {

class stream_decoder {
public:
  virtual ~stream_decoder() = default;

  /// Parses a slice of the body; returns the content it completes, in
  /// order (empty when the slice completes no content).
  std::string feed(std::string_view bytes);

  /// Interprets one SSE event; appends its content to `delta`.
  virtual void on_event(const sse_event& ev, std::string& delta) = 0;

  /// The provider's end-of-stream event arrived.
  bool done() const {
    return done_;
  }

  /// The stream reached a regular end: done() or a finish reason.
  bool finished() const {
    return done_ || !finish_reason_.empty();
  }

  /// The finish reason in OpenAI's words ("stop", "length", ...); empty
  /// until one arrives.
  const std::string& finish_reason() const {
    return finish_reason_;
  }

  /// Token counts as the provider reported them; -1 until reported.
  int64_t prompt_tokens() const {
    return prompt_tokens_;
  }
  int64_t completion_tokens() const {
    return completion_tokens_;
  }

  /// Set when the provider sent an error or unparsable data: a short
  /// description. Later events are ignored.
  bool failed() const {
    return !error_.empty();
  }
  const std::string& error() const {
    return error_;
  }

protected:
  std::string finish_reason_;
  std::string error_;
  int64_t prompt_tokens_ = -1;
  int64_t completion_tokens_ = -1;
  bool done_ = false;

private:
  sse_parser parser_;
  std::vector<sse_event> events_; // reused buffer
};

/// `text` cut to at most `max_len` bytes plus "..." when longer, at a UTF-8
/// character boundary so that the result stays valid text (for the
/// providers' error messages).
std::string shorten_utf8(std::string_view text, size_t max_len);

} // namespace chat::ai
