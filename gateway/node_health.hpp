#pragma once
/// Whether this node can serve at all. The store, the directory and the AI
/// pool are actors the gateway cannot work without and nothing restarts
/// them: once one dies, /healthz and /readyz answer 503, so that an
/// orchestrator replaces the node instead of sending users to a node that
/// accepts their messages and answers none.

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include <caf/fwd.hpp>

namespace chat::gateway {

/// Set from any thread (the watched actors' exit), read by the HTTP sessions.
class node_health {
public:
  /// Records that `what` died; false (and nothing recorded) after
  /// `stop_watching()`.
  bool mark_dead(const std::string& what);
  bool healthy() const {
    return healthy_;
  }
  /// What died, comma-separated in order ("" while healthy).
  std::string dead() const;
  /// Shutdown: the actors are stopped on purpose from now on.
  void stop_watching() {
    watching_ = false;
  }

private:
  std::atomic<bool> healthy_{true};
  std::atomic<bool> watching_{true};
  mutable std::mutex mtx_;
  std::string dead_;
};

/// Marks `health` with `name` when `actor` terminates, whatever the reason,
/// and logs `actor_died` (unless the node already stopped watching).
void watch(const caf::strong_actor_ptr& actor, std::string name,
           std::shared_ptr<node_health> health);

} // namespace chat::gateway
