#pragma once
/// The atoms and plain data types that travel between the chat actors.
///
/// Every type here may cross node boundaries once conversations live on
/// other nodes, so each has a free `inspect()` and is registered with
/// `chat::register_message_types()` (actors/type_registry.hpp).
/// Atom text is at most 10 characters (CAF 0.17 limit).
///
/// The stored records (stored_message, the message and conversation pages,
/// timestamp_ms) are in protocol/records.hpp, included here: the protocol
/// encodes them, and must not depend on the actors.

#include <cstdint>
#include <string>
#include <vector>

#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>

#include "protocol/records.hpp"

namespace chat {

// -- atoms --------------------------------------------------------------------

// session <-> conversation
using send_atom = caf::atom_constant<caf::atom("c_send")>;
using subscribe_atom = caf::atom_constant<caf::atom("c_sub")>;
using unsubscribe_atom = caf::atom_constant<caf::atom("c_unsub")>;
using cancel_atom = caf::atom_constant<caf::atom("c_cancel")>;
using event_atom = caf::atom_constant<caf::atom("c_event")>;
using completed_atom = caf::atom_constant<caf::atom("c_compl")>;
using delete_conv_atom = caf::atom_constant<caf::atom("c_delete")>;

// directory
using lookup_atom = caf::atom_constant<caf::atom("d_lookup")>;
using create_atom = caf::atom_constant<caf::atom("d_create")>;
using lookup_local_atom = caf::atom_constant<caf::atom("d_lookupl")>;
using cluster_view_atom = caf::atom_constant<caf::atom("d_view")>;
using reconnect_atom = caf::atom_constant<caf::atom("d_reconn")>;
using hello_atom = caf::atom_constant<caf::atom("d_hello")>;

// AI invoker
using generate_atom = caf::atom_constant<caf::atom("ai_gen")>;
using ai_cancel_atom = caf::atom_constant<caf::atom("ai_cancel")>;
using ai_chunk_atom = caf::atom_constant<caf::atom("ai_chunk")>;
using ai_done_atom = caf::atom_constant<caf::atom("ai_done")>;

// persistence
using append_user_atom = caf::atom_constant<caf::atom("db_user")>;
using append_reply_atom = caf::atom_constant<caf::atom("db_reply")>;
using checkpoint_atom = caf::atom_constant<caf::atom("db_ckpt")>;
using load_conv_atom = caf::atom_constant<caf::atom("db_load")>;
using history_atom = caf::atom_constant<caf::atom("db_hist")>;
using list_conv_atom = caf::atom_constant<caf::atom("db_list")>;
using remove_conv_atom = caf::atom_constant<caf::atom("db_remove")>;
using db_ping_atom = caf::atom_constant<caf::atom("db_ping")>;
using find_msg_atom = caf::atom_constant<caf::atom("db_find")>;
using db_check_atom = caf::atom_constant<caf::atom("db_check")>;

// timers and internal signals
using idle_check_atom = caf::atom_constant<caf::atom("idle_chk")>;
using drain_atom = caf::atom_constant<caf::atom("drain")>;
using handover_atom = caf::atom_constant<caf::atom("handover")>;

// -- data types ---------------------------------------------------------------

/// One turn of a conversation as sent to a provider as context.
struct chat_turn {
  std::string role; // "user" or "assistant"
  std::string content;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, chat_turn& x) {
  return f(caf::meta::type_name("chat_turn"), x.role, x.content);
}

/// What the conversation asks the AI invoker to generate.
struct generation_request {
  std::string stream_id;           ///< the assistant message id; names the stream
  std::string model;               ///< model name as configured in CHAT_MODELS
  std::string provider;            ///< "openai" or "anthropic"
  std::vector<chat_turn> messages; ///< context, oldest first
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, generation_request& x) {
  return f(caf::meta::type_name("generation_request"), x.stream_id, x.model, x.provider,
           x.messages);
}

/// How a generation ended. Sent once per stream with `ai_done_atom`.
struct generation_outcome {
  /// "stop", "length", "cancelled" or "error".
  std::string finish_reason;
  /// Token counts as the provider reported them; -1 when not reported.
  int64_t prompt_tokens = -1;
  int64_t completion_tokens = -1;
  /// For `error`: a short reason fit for people (never provider text that
  /// could hold a key fragment or an account id, never a URL).
  std::string error_message;
  /// For `error`: the protocol error code the clients are told:
  /// "provider_error" (also when empty) or "unavailable" (the request never
  /// reached a provider, e.g. the provider's queue was full).
  std::string error_code;
  /// The provider's time to first token of the attempt that answered, in
  /// µs (its request sent to its first token); -1 when no token came.
  int64_t ttft_us = -1;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, generation_outcome& x) {
  return f(caf::meta::type_name("generation_outcome"), x.finish_reason, x.prompt_tokens,
           x.completion_tokens, x.error_message, x.error_code, x.ttft_us);
}

/// A user message to make durable. When `create_conversation` is set, the
/// conversation row is inserted in the same transaction (first message of a
/// new conversation), with `title` taken from the message.
struct user_message_write {
  stored_message message;
  bool create_conversation = false;
  std::string title;
  /// The writer's fencing token: the conversation's epoch when it claimed
  /// it (1 for a conversation it creates). A write under an older epoch is
  /// refused (store_failure::fenced).
  int64_t epoch = 0;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, user_message_write& x) {
  return f(caf::meta::type_name("user_message_write"), x.message, x.create_conversation, x.title,
           x.epoch);
}

/// The answer to a user message write, after commit. `duplicate` means the
/// user had already used this clientMsgId: the fields then describe the
/// original message (possibly in another conversation) and nothing was written.
/// `seq_taken` means the seq asked for already holds another message (the
/// writer's idea of the next seq was stale): nothing was written, and `seq`
/// is the conversation's highest stored seq, for the writer to try again.
struct append_result {
  bool duplicate = false;
  std::string conversation_id;
  std::string message_id;
  int64_t seq = 0;
  bool seq_taken = false;
  /// The conversation wrote the ack to the sender's connection itself
  /// (a session of its own process, actors/local_links.hpp).
  bool ack_written = false;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, append_result& x) {
  return f(caf::meta::type_name("append_result"), x.duplicate, x.conversation_id, x.message_id,
           x.seq, x.seq_taken, x.ack_written);
}

/// What the database says about a conversation's seqs, read in the writer's
/// order, so after every write asked for before it has ended one way or the
/// other: the highest stored seq, and whether a given message is stored.
struct write_check {
  int64_t last_seq = 0;
  bool found = false;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, write_check& x) {
  return f(caf::meta::type_name("write_check"), x.last_seq, x.found);
}

/// What a conversation actor loads when it starts.
struct conversation_snapshot {
  bool found = false;
  std::string owner;    ///< user id
  int64_t last_seq = 0; ///< highest stored seq, 0 when empty
  /// The most recent messages, oldest first, as context for the provider.
  std::vector<stored_message> recent;
  /// The fencing token of whoever loaded it: loading claims the
  /// conversation (its epoch goes up by one). Replies that were still in
  /// progress were closed `interrupted` by the claim and are in `recent`.
  int64_t epoch = 0;
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, conversation_snapshot& x) {
  return f(caf::meta::type_name("conversation_snapshot"), x.found, x.owner, x.last_seq, x.recent,
           x.epoch);
}

/// One live member of the cluster, as the membership table shows it.
struct cluster_member {
  std::string process_id;
  std::string node;
  std::string address; ///< host:port of its cluster port
};

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, cluster_member& x) {
  return f(caf::meta::type_name("cluster_member"), x.process_id, x.node, x.address);
}

/// The live members, ordered by process id.
using cluster_members = std::vector<cluster_member>;

} // namespace chat
