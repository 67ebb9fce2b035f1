#pragma once
/// This process in the database, and the cluster as the database sees it.
///
/// Every chatd process registers in `chat_processes` under a fresh id and
/// holds a session-level advisory lock on its own connection for as long as
/// it lives. PostgreSQL drops the lock the moment that connection goes
/// (exit, crash, kill -9; a network cut once TCP keepalives give up, about
/// 10 s). A process that is paused (SIGSTOP, a frozen VM) keeps its
/// connection and its lock, so it also beats every second: for membership
/// it is gone once its last beat is older than the suspect timeout.
///
/// - recovery at start-up: a reply in progress whose process no longer
///   holds its lock is closed `interrupted` (loading a conversation closes
///   its replies in progress anyway: it claims the conversation, fencing);
/// - membership (Orleans-style: the table is the membership table): a node
///   of a cluster advertises its address for other nodes; the live members
///   are the rows whose lock is held, that beat and that have not left.
///   Every node reads the same table, so the survivors agree on who is gone.

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "actors/messages.hpp"
#include "common/cluster_usage.hpp"
#include "persistence/connection_options.hpp"

namespace chat::persistence {

class liveness_lock;

/// This process, registered in the database for as long as it lives: its
/// id (a fresh UUID, the process id in checkpoints) and the thread whose
/// connection holds its liveness lock. The lock goes when the connection
/// does: when this is destroyed, or however the process ends.
struct process_registration {
  std::string process_id;
  std::shared_ptr<liveness_lock> lock;
};

/// Registers this process (node name for people) and starts the thread
/// that holds its liveness lock, checking its connection every second and
/// taking the lock again on a new one if it was lost (a database restart).
/// Blocking; throws std::runtime_error when the database cannot be reached.
/// Every connection of the membership code is opened with `opts` (the
/// store's CHAT_DB_CONNECT_TIMEOUT and CHAT_DB_STATEMENT_TIMEOUT).
process_registration register_process(const std::string& database_url, const std::string& node,
                                      const connection_options& opts = {});

/// Publishes this process's address for other nodes (host:port): from now
/// on it is a member of the cluster while it lives. Blocking (start-up).
/// Throws std::runtime_error on a database failure.
void advertise(const std::string& database_url, const process_registration& self,
               const std::string& cluster_address, const connection_options& opts = {});

/// Leaves the cluster (SIGTERM): the others stop counting this node before
/// it goes. Does not block: the lock's thread writes it.
void leave(const process_registration& self);

/// What the gateway needs to know of the cluster (/readyz); the member
/// count goes to /metrics, the view itself to `on_change`.
struct cluster_status {
  /// This node is a live member in the table.
  std::atomic<bool> joined{false};
};

class membership_watch;

/// The cluster-wide limits' exchange (common/cluster_usage.hpp): each tick
/// this node's usage goes to the membership table and the other live
/// members' sums come back.
struct usage_exchange {
  std::function<usage_map()> local;
  std::shared_ptr<cluster_usage> elsewhere;
};

/// Reads the live members (holding their lock, not left, and beating within
/// `suspect_after`) every `interval` on a thread of its own, keeps
/// `status` up to date (and the cluster gauges of /metrics), logs joins and
/// departures, and calls `on_change` (on that thread) with each new view.
/// With `usage`, also exchanges the cluster-wide limits' counts each tick.
/// Stops when the returned handle is destroyed.
std::shared_ptr<membership_watch>
watch_membership(const std::string& database_url, std::string own_process_id,
                 std::chrono::milliseconds interval, std::chrono::milliseconds suspect_after,
                 std::shared_ptr<cluster_status> status,
                 std::function<void(const std::vector<cluster_member>&)> on_change = {},
                 usage_exchange usage = {}, const connection_options& opts = {});

} // namespace chat::persistence
