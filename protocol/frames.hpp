#pragma once
/// The frames of the WebSocket protocol v1 (see ../shared/PROTOCOL.md) as
/// plain structs. `protocol/codec.hpp` turns text into these and back.

#include <cstdint>
#include <optional>
#include <string>
#include <variant>

namespace chat::protocol {

// -- client to server ---------------------------------------------------------

struct send_frame {
  std::string client_msg_id;
  std::string conversation_id; ///< empty: create a new conversation
  std::string content;
  std::string model; ///< empty: the server's default model
};

struct subscribe_frame {
  std::string conversation_id;
  int64_t after_seq = 0;
};

struct unsubscribe_frame {
  std::string conversation_id;
};

struct cancel_frame {
  std::string conversation_id;
  std::string message_id;
};

struct ping_frame {
  /// The nonce as raw JSON text (any JSON value), echoed verbatim in `pong`.
  /// Empty when the ping carried no nonce.
  std::string nonce_json;
};

using client_frame
    = std::variant<send_frame, subscribe_frame, unsubscribe_frame, cancel_frame, ping_frame>;

// -- server to client ---------------------------------------------------------

/// Error codes of `error` frames, exactly as on the wire.
enum class error_code {
  bad_request,
  not_found,
  too_large,
  rate_limited,
  provider_error,
  unavailable,
  internal,
};

/// The wire name of an error code ("bad_request", ...).
const char* to_string(error_code code);

struct ack_frame {
  std::string client_msg_id;
  std::string conversation_id;
  std::string message_id;
  int64_t seq = 0;
};

struct chunk_frame {
  std::string conversation_id;
  std::string message_id;
  std::string reply_to;
  int64_t seq = 0;
  int64_t index = 0;
  std::string delta;
};

struct done_frame {
  std::string conversation_id;
  std::string message_id;
  std::string reply_to;
  int64_t seq = 0;
  int64_t chunks = 0;
  std::string finish_reason;
  /// -1 when the provider did not report usage (then `usage` is omitted).
  int64_t prompt_tokens = -1;
  int64_t completion_tokens = -1;
};

struct error_frame {
  error_code code = error_code::internal;
  std::string message;
  std::string client_msg_id;   ///< omitted when empty
  std::string conversation_id; ///< omitted when empty
};

// -- decoding -----------------------------------------------------------------

/// Limits the decoder enforces on fields (configurable by the server).
struct limits {
  size_t max_content_bytes = 32768;
};

/// Why a frame could not be decoded: an `error` frame to send back. The
/// `client_msg_id` / `conversation_id` are filled in when they could be read.
struct decode_error {
  error_frame error;
};

using decode_result = std::variant<client_frame, decode_error>;

} // namespace chat::protocol
