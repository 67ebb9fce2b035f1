#pragma once
/// The server side of RFC 6455 framing, pure (no sockets, no Boost): reads
/// what clients send, encodes what the server sends. Kept apart from the
/// socket code so that it is unit-tested (tests/gateway/ws_codec_test.cpp)
/// and can be fuzzed on its own. Internal to gateway/.
///
/// No extensions are negotiated (no permessage-deflate), so every RSV bit
/// must be 0; server frames are never fragmented nor masked.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace chat::gateway::ws {

enum class opcode : uint8_t {
  continuation = 0x0,
  text = 0x1,
  binary = 0x2,
  close = 0x8,
  ping = 0x9,
  pong = 0xA,
};

/// Close codes (RFC 6455 section 7.4.1).
namespace close_code {
constexpr uint16_t normal = 1000;
constexpr uint16_t going_away = 1001;
constexpr uint16_t protocol_error = 1002;
constexpr uint16_t unsupported_data = 1003;
constexpr uint16_t none = 1005; ///< a close frame without a code; never sent
constexpr uint16_t invalid_payload = 1007;
constexpr uint16_t policy_violation = 1008;
constexpr uint16_t too_big = 1009;
constexpr uint16_t try_again_later = 1013;
} // namespace close_code

/// The largest header of a server frame (2 bytes + a 64-bit length).
constexpr size_t max_server_header = 10;

/// Writes the header of one final, unmasked frame of `length` payload bytes
/// into `out` (at least max_server_header bytes); returns its size.
size_t encode_header(char* out, opcode op, uint64_t length);

/// The payload of a close frame: the code, then as much of `reason` as fits
/// in a control frame (125 bytes in all). `none` gives an empty payload.
std::string close_payload(uint16_t code, std::string_view reason);

/// Whether `s` is well-formed UTF-8 (no overlongs, surrogates or code
/// points past U+10FFFF), as a text message must be.
bool valid_utf8(std::string_view s);

/// Whether a client may send `code` in a close frame.
bool valid_close_code(uint16_t code);

/// What frame_reader::next found.
struct read_event {
  enum kind_t : uint8_t {
    need_more, ///< every byte given is used; nothing to act on yet
    message,   ///< a whole text (or binary) message in `payload`
    ping,      ///< answer with a pong carrying `payload`
    pong,
    close,     ///< the client closes with `code` (none: no code) and `reason`
    fail,      ///< close the connection with `code` and `reason`
  };
  kind_t kind = need_more;
  bool text = false;        ///< message: text, else binary
  uint16_t code = 0;        ///< close, fail
  std::string_view payload; ///< message, ping, pong: valid until the next call
  std::string_view reason;  ///< close (the client's), fail (a literal)
};

/// Reads the frames of one client connection from its bytes as they come,
/// in pieces of any size: checks them (masked, RSV bits 0, known opcodes,
/// control frames final and at most 125 bytes, minimal lengths, continuation
/// frames only inside a fragmented message), unmasks payloads in place and
/// reassembles fragmented messages.
///
/// Memory: a frame that arrives whole inside one piece is handed out where
/// it lies; only a message split across pieces or frames is copied, and its
/// buffer is freed once it has been handed out. So an idle connection's
/// reader holds no heap memory.
///
/// After a `fail` whose framing is still sound (too big, binary, invalid
/// UTF-8) and after discard_data(), data frames are skipped unread and only
/// control frames come out: the client's close reply can still be found.
/// After a protocol error (1002) or a close, every later byte is ignored.
class frame_reader {
public:
  /// `max_message`: the largest message (all its fragments) accepted;
  /// larger ones fail with 1009 as soon as a header announces them.
  /// `text_only`: a binary frame fails with 1003.
  explicit frame_reader(size_t max_message, bool text_only = true)
      : max_message_(max_message), text_only_(text_only) {}

  /// Reads from `data` (`size` bytes, unmasked in place) up to the first
  /// event, and sets `used` to the bytes consumed; call again with the rest
  /// until it says need_more (then `used` == `size`).
  read_event next(char* data, size_t size, size_t& used);

  /// From now on, data frames are skipped (the server is closing).
  void discard_data() {
    discard_ = true;
  }

  /// A protocol error or a close frame was read: the rest means nothing.
  bool stopped() const {
    return stopped_;
  }

  /// No frame or message is partly read.
  bool between_messages() const {
    return !in_frame_ && hdr_len_ == 0 && !in_message_;
  }

private:
  read_event fail(uint16_t code, std::string_view reason, bool framing_sound);
  read_event parse_header();
  read_event finish_frame(std::string_view payload);

  size_t max_message_;
  bool text_only_;
  bool discard_ = false;
  bool stopped_ = false;
  // The frame being read.
  bool in_frame_ = false;
  bool fin_ = false;
  bool skip_ = false; // its payload is not kept (discarding)
  opcode op_ = opcode::continuation;
  uint8_t hdr_len_ = 0;
  char hdr_[14]; // a header split across pieces
  uint8_t mask_[4];
  uint64_t left_ = 0; // payload bytes still to come
  uint64_t seen_ = 0; // payload bytes already read (the mask's phase)
  // The message being reassembled.
  bool in_message_ = false;
  bool message_text_ = false;
  bool release_message_ = false; // message_ was handed out: free it next time
  bool release_control_ = false; // the same for control_
  uint64_t message_size_ = 0;
  std::string message_; // its bytes, when split across pieces or frames
  std::string control_; // a control frame's payload split across pieces
};

} // namespace chat::gateway::ws
