#pragma once
/// The PostgreSQL store behind `chat::persistence_actor`.
///
/// One handle (a small router) hides a group-committing writer and a pool
/// of readers, each a detached actor owning its own connection:
///
///   writes: append_user, checkpoint, append_reply,
///           remove_conv, db_check                   -> writer (group commit)
///   reads:  load_conv, history, list_conv, db_ping  -> readers (round robin)
///
/// Answers beyond persistence_actor.hpp:
/// - `list_conv` with a `before` cursor that is not one this store made
///   answers `caf::sec::invalid_argument` (a client error, not a database
///   one): the caller may map it to `bad_request`.
/// - Ids that are not UUIDs are answered as not found without a query.
/// - `checkpoint` answers `false` (and writes nothing) when that reply is
///   already finished (a late checkpoint never undoes its end), and
///   `caf::sec::invalid_argument` for an empty node id.
/// - `append_reply` of a reply already finished identically (a retry whose
///   first answer was lost) answers `true` and writes nothing; with another
///   finish_reason or content it is an error. An empty finish_reason is
///   `caf::sec::invalid_argument` (the row would read as in progress).
/// - A message id already used by another message (another conversation,
///   seq or role) fails the write.
/// - Database failures answer `caf::sec::runtime_error`.

#include <cstddef>
#include <string>

#include <caf/actor_system.hpp>

#include "actors/persistence_actor.hpp"
#include "persistence/connection_options.hpp"

namespace chat::persistence {

struct store_config {
  std::string database_url;
  size_t readers = 2;     // detached reader actors, one connection each
  size_t max_batch = 512; // most writes in one group-commit transaction
  connection_options connection;
};

/// Spawns the writer and readers and returns one handle implementing
/// chat::persistence_actor. Throws std::runtime_error if the database cannot
/// be reached at start.
chat::persistence_actor spawn_store(caf::actor_system& sys, const store_config& cfg);

/// Applies the migrations in order, idempotently (blocking; for `chatd
/// migrate` and start-up). Returns the number applied now. Throws
/// std::runtime_error with a clear message on failure.
int migrate(const std::string& database_url);

/// Marks replies left unfinished by processes that are gone (a crash, a
/// kill -9; whatever they were called) as finishReason "interrupted",
/// keeping their checkpointed content, and forgets such processes; returns
/// how many replies. Replies of live processes are never touched. For chatd
/// start-up (blocking, before serving); loading a conversation does the
/// same for that conversation. Also bumps their conversations' updated_at;
/// logs `replies_interrupted_recovered`. Throws std::runtime_error with a
/// clear message on a database failure.
int recover_interrupted(const std::string& database_url);

} // namespace chat::persistence
