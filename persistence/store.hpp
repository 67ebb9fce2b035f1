#pragma once
/// The PostgreSQL store behind `chat::persistence_actor`.
///
/// One handle (a small router) hides a group-committing writer and a pool
/// of readers, each a detached actor owning its own connection:
///
///   writes: append_user, append_reply, remove_conv  -> writer (group commit)
///   reads:  load_conv, history, list_conv, db_ping  -> readers (round robin)
///
/// Answers beyond persistence_actor.hpp:
/// - `list_conv` with a `before` cursor that is not one this store made
///   answers `caf::sec::invalid_argument` (a client error, not a database
///   one): the caller may map it to `bad_request`.
/// - Ids that are not UUIDs are answered as not found without a query.
/// - Database failures answer `caf::sec::runtime_error`.

#include <cstddef>
#include <string>

#include <caf/actor_system.hpp>

#include "actors/persistence_actor.hpp"

namespace chat::persistence {

struct store_config {
  std::string database_url;
  size_t readers = 2;     // detached reader actors, one connection each
  size_t max_batch = 512; // most writes in one group-commit transaction
};

/// Spawns the writer and readers and returns one handle implementing
/// chat::persistence_actor. Throws std::runtime_error if the database cannot
/// be reached at start.
chat::persistence_actor spawn_store(caf::actor_system& sys,
                                    const store_config& cfg);

/// Applies the migrations in order, idempotently (blocking; for `chatd
/// migrate` and start-up). Returns the number applied now. Throws
/// std::runtime_error with a clear message on failure.
int migrate(const std::string& database_url);

} // namespace chat::persistence
