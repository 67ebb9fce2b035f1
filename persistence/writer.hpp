#pragma once
/// The store's writer: one detached actor, one connection, group commit.
///
///   (append_user_atom, user_message_write) -> append_result
///   (checkpoint_atom, stored_message, process_id, epoch) -> bool
///   (db_check_atom, conversation_id, message_id) -> write_check
///   (append_reply_atom, stored_message, epoch) -> bool
///   (remove_conv_atom, user_id, conversation_id) -> bool
///   (db_stats_atom) -> (transactions, writes, largest_batch)
///   (flush_atom)      sent to itself: commit what is pending
///
/// Each write joins a pending batch and a flush is queued behind whatever
/// is already in the mailbox; the flush runs the whole batch (up to
/// max_batch writes) in one transaction and answers every write after
/// COMMIT. If that transaction fails because of one bad write (a constraint,
/// invalid data), each write is retried alone, so one bad write fails only
/// itself; if it fails because of the database (a timeout, a lost
/// connection), every write of the batch fails with a store error saying
/// whether it was surely not done (transient) or may have been (unknown).
/// A message write under an epoch that is no longer the conversation's
/// fails alone with store_failure::fenced.

#include <cstddef>
#include <memory>

#include <caf/actor_system.hpp>
#include <caf/atom.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "actors/messages.hpp"
#include "persistence/store_stats.hpp"

namespace chat::persistence {

class session;

using flush_atom = caf::atom_constant<caf::atom("db_flush")>;

using writer_actor
    = caf::typed_actor<caf::replies_to<append_user_atom, user_message_write>::with<append_result>,
                       caf::replies_to<checkpoint_atom, stored_message, std::string, int64_t>::with<bool>,
                       caf::replies_to<db_check_atom, std::string, std::string>::with<write_check>,
                       caf::replies_to<append_reply_atom, stored_message, int64_t>::with<bool>,
                       caf::replies_to<remove_conv_atom, std::string, std::string>::with<bool>,
                       caf::replies_to<db_stats_atom>::with<int64_t, int64_t, int64_t>,
                       caf::reacts_to<flush_atom>>;

writer_actor spawn_writer(caf::actor_system& sys, std::unique_ptr<session> db, size_t max_batch);

} // namespace chat::persistence
