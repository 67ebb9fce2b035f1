#pragma once
/// Process-wide counters, served by GET /metrics in Prometheus text format.
/// Plain atomics: incremented on hot paths without locks.

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace chat::metrics {

/// A Prometheus histogram with fixed buckets: an observation is a scan of
/// at most a dozen bounds and two relaxed atomic increments, cheap enough
/// for the hot path. Values are kept as integers of `unit` (e.g. µs).
class histogram {
public:
  static constexpr size_t max_buckets = 16;

  /// `bounds`: the buckets' upper bounds in `unit`s, ascending (+Inf is
  /// implicit); `scale`: what one `unit` is in the exported value (1e-6
  /// for µs exported as seconds).
  histogram(std::initializer_list<int64_t> bounds, double scale);

  void observe(int64_t units);
  void observe(std::chrono::steady_clock::duration d) {
    observe(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
  }

  void render(std::string& out, const char* name, const char* help) const;

private:
  std::array<int64_t, max_buckets> bounds_{};
  size_t n_ = 0;
  double scale_;
  std::array<std::atomic<int64_t>, max_buckets + 1> counts_{}; // per bucket, +Inf last
  std::atomic<int64_t> sum_{0};
};

struct counters {
  std::atomic<int64_t> connections_opened{0};
  std::atomic<int64_t> connections_open{0};
  std::atomic<int64_t> connections_closed_slow{0};  ///< closed for backpressure
  std::atomic<int64_t> connections_closed_flood{0}; ///< closed past their frame budget
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
  /// Provider requests waiting for a stream slot (CHAT_PROVIDER_MAX_STREAMS).
  std::atomic<int64_t> provider_requests_queued{0};

  // Latencies, in µs, exported in seconds.
  /// A send received by its session to its ack written to the socket.
  histogram ack_latency{
      {500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 5000000}, 1e-6};
  /// A reply started (the message acked) to its first chunk fanned out,
  /// minus the provider's time to first token: what this service adds.
  histogram first_chunk_overhead{
      {100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000}, 1e-6};
  /// A provider request sent to its first token.
  histogram provider_ttft{
      {10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 30000000},
      1e-6};
  /// One write transaction of the store, from BEGIN to COMMIT's answer.
  histogram db_commit{
      {500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000, 5000000}, 1e-6};
  /// Writes per committed transaction (group commit).
  histogram db_batch_size{{1, 2, 4, 8, 16, 32, 64, 128, 256, 512}, 1.0};
};

counters& global();

/// The counters in Prometheus text exposition format.
std::string render_prometheus();

} // namespace chat::metrics
