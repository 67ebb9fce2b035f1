#pragma once
/// The JSON codec of the WebSocket protocol: pure functions from text to
/// frames and back, with no I/O. Used by the gateway (decoding client frames)
/// and by the conversation actor (encoding each event once for every
/// subscriber).

#include <string>
#include <string_view>

#include "protocol/frames.hpp"
#include "protocol/records.hpp"

namespace chat::protocol {

/// Decode one text frame. Anything PROTOCOL.md does not allow (not JSON, not
/// an object, unknown `type`, a missing or mistyped field, an id of the wrong
/// shape, content out of bounds) gives a `decode_error`. Unknown fields are
/// ignored.
decode_result decode(std::string_view text, const limits& lim = {});

std::string encode(const ack_frame& x);
std::string encode(const chunk_frame& x);
/// encode(chunk_frame) from views: the token path encodes each chunk
/// without first copying its ids and delta into a chunk_frame.
std::string encode_chunk(std::string_view conversation_id, std::string_view message_id,
                         std::string_view reply_to, int64_t seq, int64_t index,
                         std::string_view delta);
std::string encode(const done_frame& x);
std::string encode(const error_frame& x);
/// `pong` echoing `nonce_json` verbatim (omitted when empty).
std::string encode_pong(std::string_view nonce_json);
/// A `message` event for a stored message (user or assistant).
std::string encode_message_event(const stored_message& m);

/// The seq a frame this codec encoded completes for its client: that of a
/// `message`, a `done` or an `ack`; -1 for any other frame. Lets a relay
/// (the session) know from which seq to resubscribe without parsing every
/// chunk: only a prefix is compared on the hot path.
int64_t completed_seq_of(std::string_view frame);

/// RFC 3339 UTC with milliseconds, e.g. "2026-11-23T21:00:00.000Z".
std::string format_timestamp(timestamp_ms t);

/// Whether `id` is a valid clientMsgId: 1..64 of [A-Za-z0-9_-].
bool valid_client_msg_id(std::string_view id);

} // namespace chat::protocol

// -- REST bodies (JSON over HTTP, see PROTOCOL.md "REST") ---------------------

namespace chat::protocol {

/// {"messages":[...]}: each with the fields of a `message` event but `type`.
std::string encode_message_list(const message_page& page);
/// {"conversations":[{"id","title","createdAt","updatedAt"}], "nextBefore"}
std::string encode_conversation_list(const conversation_page& page);
/// {"error":{"code":"...","message":"..."}}
std::string encode_rest_error(std::string_view code, std::string_view message);

} // namespace chat::protocol
