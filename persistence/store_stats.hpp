#pragma once
/// Counters of the store's group commit, for tests and metrics.
///
/// The handle returned by `spawn_store` also answers
///
///   (db_stats_atom) -> (transactions, writes, largest_batch)
///
/// reach it with `caf::actor_cast<chat::persistence::store_actor>(handle)`.
/// `transactions` counts committed or attempted write transactions (a batch
/// that fails and is retried one by one counts 1 + its size), `writes` the
/// write messages answered, `largest_batch` the most writes seen in one
/// batch.

#include <cstdint>

#include <caf/atom.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "actors/persistence_actor.hpp"

namespace chat::persistence {

using db_stats_atom = caf::atom_constant<caf::atom("db_stats")>;

/// The store's full interface: persistence_actor plus its counters.
using store_actor = chat::persistence_actor::extend<
    caf::replies_to<db_stats_atom>::with<int64_t, int64_t, int64_t>>;

} // namespace chat::persistence
