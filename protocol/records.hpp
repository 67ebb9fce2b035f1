#pragma once
/// Plain records of stored data that the wire protocol encodes (`message`
/// events, REST lists) and the actors and the store pass around: a stored
/// message, pages of messages and of conversations.
///
/// They live here, below actors/, so that the protocol does not depend on
/// the actors (actors/messages.hpp includes this header and registers these
/// types like its own). Namespace `chat`, not `chat::protocol`: they are the
/// service's records, not frames. Each has a free `inspect()`, as every type
/// that travels between actors.

#include <cstdint>
#include <string>
#include <vector>

#include <caf/meta/type_name.hpp>

namespace chat {

/// Milliseconds since the Unix epoch (UTC).
using timestamp_ms = int64_t;

/// A message as stored in the database.
struct stored_message {
  std::string id;
  std::string conversation_id;
  int64_t seq = 0;
  std::string role; // "user" or "assistant"
  std::string content;
  std::string user_id;
  std::string client_msg_id; // user messages only
  std::string reply_to;      // assistant messages only
  std::string model;         // assistant messages only
  std::string finish_reason; // assistant messages only
  int64_t prompt_tokens = -1;
  int64_t completion_tokens = -1;
  timestamp_ms created_at = 0;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, stored_message& x) {
  return f(caf::meta::type_name("stored_message"), x.id, x.conversation_id, x.seq, x.role,
           x.content, x.user_id, x.client_msg_id, x.reply_to, x.model, x.finish_reason,
           x.prompt_tokens, x.completion_tokens, x.created_at);
}

/// One conversation in a user's list.
struct conversation_summary {
  std::string id;
  std::string title;
  timestamp_ms created_at = 0;
  timestamp_ms updated_at = 0;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, conversation_summary& x) {
  return f(caf::meta::type_name("conversation_summary"), x.id, x.title, x.created_at, x.updated_at);
}

/// A page of a user's conversations, newest first. `next_before` is the
/// opaque cursor of the next page; empty on the last page.
struct conversation_page {
  std::vector<conversation_summary> conversations;
  std::string next_before;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, conversation_page& x) {
  return f(caf::meta::type_name("conversation_page"), x.conversations, x.next_before);
}

/// A page of finished messages in seq order. `found` is false when the
/// conversation does not exist or belongs to another user.
struct message_page {
  bool found = false;
  std::vector<stored_message> messages;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, message_page& x) {
  return f(caf::meta::type_name("message_page"), x.found, x.messages);
}

} // namespace chat
