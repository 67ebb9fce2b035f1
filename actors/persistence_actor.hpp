#pragma once
/// The interface of the persistence actor: the only way the rest of the
/// service reaches PostgreSQL. Implemented in persistence/ (libpqxx), or by a
/// stand-in in actor tests.
///
/// Messages (all answered only after the work is done; writes after COMMIT):
///
///   (append_user_atom, user_message_write) -> append_result
///       Store a user message (and its conversation when new). Writes from
///       many conversations are group-committed in one transaction. A
///       clientMsgId the user already used yields `duplicate` and the
///       original message's ids; nothing is written then.
///   (checkpoint_atom, stored_message, process_id, epoch) -> bool
///       Save what has been streamed so far of the reply being generated
///       (finish_reason empty): inserts the assistant row, or updates its
///       content. Such "in progress" rows carry the id of the generating
///       process (a UUID registered at start-up, see persistence/store.hpp);
///       they are never returned as messages (history, recent context) but
///       count for last_seq. `false`: the reply is already finished (someone
///       closed it): the caller no longer owns it. Group-committed.
///   (append_reply_atom, stored_message, epoch) -> bool
///       Store a finished assistant message (insert, or complete the
///       checkpointed row: content, finish_reason, usage; node cleared);
///       bumps the conversation's updated_at. `true` once committed.
///   (load_conv_atom, conversation_id) -> conversation_snapshot
///       Claims the conversation for the caller (its epoch goes up by one:
///       the caller's fencing token), closes as `interrupted` every reply
///       of it still in progress (its writer is fenced off now), then reads
///       the owner, last seq and recent context.
///   (db_check_atom, conversation_id, message_id) -> write_check
///       The highest stored seq, and whether message_id (may be empty) is
///       stored, read after every write sent before it has ended: how a
///       conversation learns the outcome of a write it did not see.
///   (history_atom, user_id, conversation_id, after_seq, limit) -> message_page
///       Finished messages with seq > after_seq, in seq order; not found
///       (or another user's) yields `found == false`.
///   (list_conv_atom, user_id, before_cursor, limit) -> conversation_page
///       The user's conversations, newest `updated_at` first.
///   (remove_conv_atom, user_id, conversation_id) -> bool
///       Delete a conversation with its messages; false if not the user's.
///   (find_msg_atom, user_id, client_msg_id) -> append_result
///       The message the user sent with this clientMsgId (`duplicate` set,
///       its ids filled in), or an empty conversation_id when there is none.
///   (db_ping_atom) -> bool
///       Whether the database answers (readiness).
///
/// Fencing: every message write carries the writer's epoch and is refused
/// with store_failure::fenced, writing nothing, once someone else has
/// claimed the conversation (migrations/005_fencing.sql).
///
/// Failures of the database itself answer with a store error
/// (actors/errors.hpp: make_store_error), which says whether the work was
/// surely not done (transient), can never be done (permanent) or may have
/// been done (unknown, e.g. a commit whose answer was lost).

#include <cstdint>
#include <string>

#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "actors/messages.hpp"

namespace chat {

using persistence_actor = caf::typed_actor<
    caf::replies_to<append_user_atom, user_message_write>::with<append_result>,
    caf::replies_to<checkpoint_atom, stored_message, std::string, int64_t>::with<bool>,
    caf::replies_to<append_reply_atom, stored_message, int64_t>::with<bool>,
    caf::replies_to<load_conv_atom, std::string>::with<conversation_snapshot>,
    caf::replies_to<history_atom, std::string, std::string, int64_t, int32_t>::with<message_page>,
    caf::replies_to<list_conv_atom, std::string, std::string, int32_t>::with<conversation_page>,
    caf::replies_to<remove_conv_atom, std::string, std::string>::with<bool>,
    caf::replies_to<find_msg_atom, std::string, std::string>::with<append_result>,
    caf::replies_to<db_check_atom, std::string, std::string>::with<write_check>,
    caf::replies_to<db_ping_atom>::with<bool>>;

} // namespace chat
