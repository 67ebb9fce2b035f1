#pragma once
/// What the provider stream decoders (openai_stream, anthropic_stream) have
/// in common: fed the body bytes as they arrive, split anywhere, through an
/// SSE parser; each event goes to the provider's on_event, which records the
/// end of the stream, the finish reason, token usage and errors here. Pure:
/// no I/O.
///
/// Provider output is untrusted: SSE lines and events have byte caps (an
/// oversized one is an error), the whole reply's content has a byte cap (the
/// content is cut there and the stream ends with finish reason "length",
/// like a max_tokens cut: what streamed is a fine reply, only shorter), and
/// JSON is parsed iteratively (`parse_json`: no recursion, so deep nesting
/// cannot overflow the stack). Errors are our own short words; what the
/// provider said is kept apart, for logs only (`provider_detail`).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include "ai/sse_parser.hpp"

namespace chat::ai {

class stream_decoder : private sse_handler {
public:
  /// About 250k tokens of text: past every known model's output limit, so
  /// only a runaway or hostile provider reaches it.
  static constexpr size_t default_max_reply_bytes = 1024 * 1024;

  stream_decoder() = default;
  // The JSON pools point into the object itself.
  stream_decoder(const stream_decoder&) = delete;
  stream_decoder& operator=(const stream_decoder&) = delete;
  virtual ~stream_decoder() = default;

  /// Caps the content of the whole reply (default_max_reply_bytes).
  void limit_reply(size_t max_bytes) {
    max_reply_bytes_ = max_bytes;
  }

  /// Parses a slice of the body; returns the content it completes, in
  /// order (empty when the slice completes no content).
  std::string feed(std::string_view bytes);

  /// Interprets one SSE event; appends its content to `delta`.
  virtual void on_event(const sse_event_view& ev, std::string& delta) = 0;

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
  /// description in our words, fit for people ("provider reported an
  /// error", "provider sent invalid data"). Later events are ignored.
  bool failed() const {
    return !error_.empty();
  }
  const std::string& error() const {
    return error_;
  }

  /// What the provider said about its error, shortened; for logs only (it
  /// may hold account ids or key fragments: redact before logging).
  const std::string& provider_detail() const {
    return provider_detail_;
  }

  /// The reply reached its byte cap (then finish_reason() is "length").
  bool reply_capped() const {
    return reply_capped_;
  }

protected:
  /// A parsed event: its values and the parser's stacks live in buffers
  /// of the decoder, reused for every event.
  using event_document
      = rapidjson::GenericDocument<rapidjson::UTF8<>, rapidjson::MemoryPoolAllocator<>,
                                   rapidjson::MemoryPoolAllocator<>>;

  /// Parses one event's JSON like parse_json (iteratively), into the
  /// decoder's own buffers: an event costs no heap allocation. (A fresh
  /// rapidjson::Document mallocs a 64 KiB pool chunk, a parse stack and the
  /// reader's stack per event; freeing the 64 KiB chunk made glibc
  /// consolidate its heap on every token: ~13 % of chatd's CPU at
  /// saturation.) Valid until the next call.
  event_document& parse_event_json(std::string_view text);

  std::string finish_reason_;
  std::string error_;
  std::string provider_detail_;
  int64_t prompt_tokens_ = -1;
  int64_t completion_tokens_ = -1;
  bool done_ = false;

private:
  size_t max_reply_bytes_ = default_max_reply_bytes;
  size_t reply_bytes_ = 0;
  bool reply_capped_ = false;
  void on_sse(const sse_event_view& ev) override;

  sse_parser parser_;
  std::string* delta_ = nullptr; // during feed(): where on_sse appends content
  // One token's event is ~200 bytes of JSON: these fit any ordinary event;
  // a larger one spills into chunks freed at the next event.
  static constexpr size_t values_bytes = 4096;
  static constexpr size_t stack_bytes = 2048;
  alignas(16) char values_buf_[values_bytes];
  alignas(16) char stack_buf_[stack_bytes];
  rapidjson::MemoryPoolAllocator<> values_{values_buf_, values_bytes, 16 * 1024};
  rapidjson::MemoryPoolAllocator<> stack_{stack_buf_, stack_bytes, 16 * 1024};
  std::optional<event_document> doc_;
};

/// `text` cut to at most `max_len` bytes plus "..." when longer, at a UTF-8
/// character boundary so that the result stays valid text (for the
/// providers' error messages).
std::string shorten_utf8(std::string_view text, size_t max_len);

/// Parses provider JSON without recursion (rapidjson::kParseIterativeFlag):
/// a deeply nested value is only an error, never a stack overflow. The
/// document's default allocator frees without recursion too.
void parse_json(rapidjson::Document& doc, std::string_view text);

} // namespace chat::ai
