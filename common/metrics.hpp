#pragma once
/// Process-wide counters, served by GET /metrics in Prometheus text format.
/// Plain atomics: incremented on hot paths without locks.

#include <atomic>
#include <cstdint>
#include <string>

namespace chat::metrics {

struct counters {
  std::atomic<int64_t> connections_opened{0};
  std::atomic<int64_t> connections_open{0};
  std::atomic<int64_t> connections_closed_slow{0}; ///< closed for backpressure
  std::atomic<int64_t> frames_received{0};
  std::atomic<int64_t> frames_rejected{0};
  std::atomic<int64_t> messages_acked{0};
  std::atomic<int64_t> replies_started{0};
  std::atomic<int64_t> replies_active{0};
  std::atomic<int64_t> replies_finished{0};
  std::atomic<int64_t> replies_failed{0};
  std::atomic<int64_t> chunks_sent{0};
  std::atomic<int64_t> conversations_live{0};
  std::atomic<int64_t> http_requests{0};
  /// Every open HTTP and WebSocket connection, against CHAT_MAX_CONNECTIONS.
  std::atomic<int64_t> node_connections_open{0};
  std::atomic<int64_t> node_connections_max{0};
  std::atomic<int64_t> refused_max_connections{0};          ///< answered 503
  std::atomic<int64_t> refused_max_connections_per_user{0}; ///< upgrades answered 429
  /// accept() failures for want of descriptors or memory, each retried later.
  std::atomic<int64_t> accept_failures{0};
  std::atomic<int64_t> accept_paused{0}; ///< 1 while accepting backs off
  /// Actors the node cannot serve without (store, directory, AI pool) that died.
  std::atomic<int64_t> actors_dead{0};
  /// Cluster membership (0 on a single node): live members as the
  /// membership table shows them, and whether this node is one of them.
  std::atomic<int64_t> cluster_live_nodes{0};
  std::atomic<int64_t> cluster_joined{0};
};

counters& global();

/// The counters in Prometheus text exposition format.
std::string render_prometheus();

} // namespace chat::metrics
