#pragma once
/// Makes provider text safe to send and store: a streaming UTF-8 validator
/// that replaces every invalid sequence with U+FFFD. Pure: no I/O.
///
/// Provider output is untrusted. A WebSocket text frame must be valid UTF-8
/// (a conforming client closes the socket with 1007 otherwise) and
/// PostgreSQL refuses invalid UTF-8 in `text`, so a bad byte would make a
/// reply impossible to show or to store. Replaced: overlong forms,
/// surrogates (U+D800..U+DFFF, e.g. the CESU bytes ED B0 80 that RapidJSON
/// 1.1 makes of a lone `\udc00` escape), code points above U+10FFFF, stray
/// continuation bytes, bytes that never occur in UTF-8 (C0, C1, F5..FF), a
/// sequence cut short, and U+0000 (PostgreSQL `text` cannot hold NUL).
/// Each maximal invalid subpart becomes one U+FFFD, as the WHATWG decoder
/// and Unicode's "best practice" do (so ED B0 80 becomes three).
///
/// A valid character split between two feeds comes out whole: an
/// incomplete sequence at the end of a feed is held back until the next
/// feed completes it (or `finish` replaces it).

#include <string>
#include <string_view>

namespace chat::ai {

class utf8_repair {
public:
  /// U+FFFD REPLACEMENT CHARACTER in UTF-8.
  static constexpr std::string_view replacement = "\xEF\xBF\xBD";

  /// The valid text of `bytes` (after what earlier feeds held back), with
  /// an incomplete trailing sequence held back.
  std::string feed(std::string_view bytes);

  /// feed() for text the caller gives up: when nothing is held back and
  /// `bytes` is valid and ends on a whole character (every token of an
  /// honest provider), it is returned as it is, without a copy.
  std::string feed_string(std::string&& bytes);

  /// The end of the stream: a held-back incomplete sequence as U+FFFD
  /// (empty when nothing is held back).
  std::string finish();

  /// Bytes held back, waiting for the rest of their character.
  size_t pending() const {
    return pending_.size();
  }

private:
  std::string pending_; // at most 3 bytes: a valid prefix of a sequence
};

/// `text` repaired in one go (feed + finish).
std::string repair_utf8(std::string_view text);

} // namespace chat::ai
