#pragma once
/// An incremental Server-Sent-Events parser (WHATWG "event stream
/// interpretation"), without I/O: feed it byte slices as they arrive, cut
/// anywhere, and it yields each complete event once its blank line arrives.
///
/// Handles `\r\n`, `\n` and `\r` line endings (also when a `\r\n` pair is
/// split between two slices), a UTF-8 BOM at the start, `:` comments,
/// `field:value` with or without the space, and multi-line `data`.
/// `retry` is ignored; an event cut off by the end of the stream is dropped.
///
/// Provider output is untrusted, so a line and an event have byte caps: a
/// stream that exceeds one is `overflowed()` and the rest is ignored
/// (nothing grows without bound on a stream that never sends a newline).

#include <string>
#include <string_view>
#include <vector>

namespace chat::ai {

/// One dispatched event.
struct sse_event {
  std::string event; ///< the `event:` name; empty means "message"
  std::string data;  ///< the `data:` lines joined with "\n"
  std::string id;    ///< the last event id seen so far in the stream
};

/// One dispatched event as views into the parser (or the bytes fed): valid
/// only during the call that hands it over.
struct sse_event_view {
  std::string_view event;
  std::string_view data;
  std::string_view id;
};

/// Receives events as they complete, without copies (the token path: every
/// provider token is one event).
class sse_handler {
public:
  virtual void on_sse(const sse_event_view& ev) = 0;

protected:
  ~sse_handler() = default;
};

class sse_parser {
public:
  /// Caps that fit any real provider's events with a wide margin: one JSON
  /// object with a token or a few, or a usage record.
  static constexpr size_t default_max_line_bytes = 256 * 1024;
  static constexpr size_t default_max_event_bytes = 256 * 1024;

  explicit sse_parser(size_t max_line_bytes = default_max_line_bytes,
                      size_t max_event_bytes = default_max_event_bytes)
      : max_line_(max_line_bytes), max_event_(max_event_bytes) {}

  /// A line or an event went past its cap: nothing more is parsed.
  bool overflowed() const {
    return overflowed_;
  }

  /// Parses `bytes` and hands each event it completes to `h`, in order.
  /// A line that lies whole within `bytes` is read where it is, not copied;
  /// the pending event's fields keep their buffers from event to event, so
  /// a stream costs no allocation per event once they have grown.
  void feed(std::string_view bytes, sse_handler& h);

  /// Parses `bytes` and appends the events it completes to `out` (copies).
  void feed(std::string_view bytes, std::vector<sse_event>& out);

  /// Convenience for tests: the events completed by `bytes`.
  std::vector<sse_event> feed(std::string_view bytes) {
    std::vector<sse_event> out;
    feed(bytes, out);
    return out;
  }

private:
  void process_line(std::string_view line, sse_handler& h);

  size_t max_line_;
  size_t max_event_;
  bool overflowed_ = false;
  std::string line_;       // the unfinished line
  std::string data_;       // data lines of the pending event, each + "\n"
  std::string event_;      // event name of the pending event
  std::string last_id_;    // survives events, as the spec says
  size_t bom_checked_ = 0; // bytes of the stream start compared to the BOM
  bool bom_done_ = false;
  bool after_cr_ = false; // last line ended in '\r': skip a following '\n'
};

} // namespace chat::ai
