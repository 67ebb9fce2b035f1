#pragma once
/// An incremental Server-Sent-Events parser (WHATWG "event stream
/// interpretation"), without I/O: feed it byte slices as they arrive, cut
/// anywhere, and it yields each complete event once its blank line arrives.
///
/// Handles `\r\n`, `\n` and `\r` line endings (also when a `\r\n` pair is
/// split between two slices), a UTF-8 BOM at the start, `:` comments,
/// `field:value` with or without the space, and multi-line `data`.
/// `retry` is ignored; an event cut off by the end of the stream is dropped.

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

class sse_parser {
public:
  /// Parses `bytes` and appends the events it completes to `out`.
  void feed(std::string_view bytes, std::vector<sse_event>& out);

  /// Convenience for tests: the events completed by `bytes`.
  std::vector<sse_event> feed(std::string_view bytes) {
    std::vector<sse_event> out;
    feed(bytes, out);
    return out;
  }

private:
  void process_line(std::vector<sse_event>& out);

  std::string line_;       // the unfinished line
  std::string data_;       // data lines of the pending event, each + "\n"
  std::string event_;      // event name of the pending event
  std::string last_id_;    // survives events, as the spec says
  size_t bom_checked_ = 0; // bytes of the stream start compared to the BOM
  bool bom_done_ = false;
  bool after_cr_ = false; // last line ended in '\r': skip a following '\n'
};

} // namespace chat::ai
