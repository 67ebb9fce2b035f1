#include "common/metrics.hpp"

#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>

// Sanitizer builds (CHAT_SANITIZE): the sanitizer's allocator replaces
// glibc's malloc, whose arenas then hold next to nothing.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CHAT_SANITIZER_HEAP 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CHAT_SANITIZER_HEAP 1
#endif
#endif
#ifdef CHAT_SANITIZER_HEAP
// <sanitizer/allocator_interface.h>, which gcc 12 does not ship; libasan
// and libtsan both export it.
extern "C" size_t __sanitizer_get_current_allocated_bytes();
#endif

namespace chat::metrics {

namespace {

/// Bytes the heap holds in use now, over all of glibc's arenas (mallinfo2
/// counts the main arena only): what the arenas got from the system, less
/// what sits free in them, plus large blocks mapped on their own. From the
/// totals at the end of malloc_info's report.
int64_t heap_in_use() {
#ifdef CHAT_SANITIZER_HEAP
  // What the program allocated and did not free, from the sanitizer's allocator.
  return static_cast<int64_t>(__sanitizer_get_current_allocated_bytes());
#endif
  char* text = nullptr;
  size_t size = 0;
  FILE* f = ::open_memstream(&text, &size);
  if (f == nullptr)
    return -1;
  ::malloc_info(0, f);
  std::fclose(f);
  std::string xml{text, size};
  std::free(text);
  auto total = xml.rfind("</heap>");
  if (total == std::string::npos)
    total = 0;
  auto value = [&](const char* tag) -> int64_t {
    auto at = xml.find(tag, total);
    if (at == std::string::npos)
      return 0;
    auto s = xml.find("size=\"", at);
    return s == std::string::npos ? 0 : std::atoll(xml.c_str() + s + 6);
  };
  return value("<system type=\"current\"") - value("<total type=\"fast\"")
         - value("<total type=\"rest\"") + value("<total type=\"mmap\"");
}

} // namespace

histogram::histogram(std::initializer_list<int64_t> bounds, double scale) : scale_(scale) {
  if (bounds.size() > max_buckets)
    throw std::logic_error("histogram: too many buckets");
  for (auto b : bounds)
    bounds_[n_++] = b;
}

void histogram::observe(int64_t units) {
  size_t i = 0;
  while (i < n_ && units > bounds_[i])
    ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(units, std::memory_order_relaxed);
}

void histogram::render(std::string& out, const char* name, const char* help) const {
  auto number = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", v);
    return std::string{buf};
  };
  out += std::string{"# HELP "} + name + ' ' + help + "\n# TYPE " + name + " histogram\n";
  int64_t cumulative = 0;
  for (size_t i = 0; i <= n_; ++i) {
    cumulative += counts_[i].load(std::memory_order_relaxed);
    out += name;
    out += "_bucket{le=\"";
    out += i < n_ ? number(double(bounds_[i]) * scale_) : std::string{"+Inf"};
    out += "\"} " + std::to_string(cumulative) + '\n';
  }
  out += std::string{name} + "_sum " + number(double(sum_.load()) * scale_) + '\n';
  out += std::string{name} + "_count " + std::to_string(cumulative) + '\n';
}

counters& global() {
  static counters instance;
  return instance;
}

std::string render_prometheus() {
  auto& c = global();
  std::string out;
  auto add = [&out](const char* name, const char* type, const char* help, int64_t value) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
    out += name;
    out += ' ';
    out += std::to_string(value);
    out += '\n';
  };
  add("chat_connections_opened_total", "counter", "WebSocket connections accepted.",
      c.connections_opened);
  add("chat_connections_open", "gauge", "WebSocket connections open now.", c.connections_open);
  add("chat_connections_closed_slow_total", "counter",
      "Connections closed because the client read too slowly.", c.connections_closed_slow);
  add("chat_connections_closed_flood_total", "counter",
      "Connections closed because the client sent frames faster than its budget.",
      c.connections_closed_flood);
  add("chat_frames_received_total", "counter", "Client frames received.", c.frames_received);
  add("chat_frames_rejected_total", "counter", "Client frames answered with an error.",
      c.frames_rejected);
  add("chat_messages_acked_total", "counter", "User messages made durable and acknowledged.",
      c.messages_acked);
  add("chat_replies_started_total", "counter", "AI replies started.", c.replies_started);
  add("chat_replies_active", "gauge", "AI replies being generated now.", c.replies_active);
  add("chat_replies_finished_total", "counter", "AI replies ended and stored.", c.replies_finished);
  add("chat_replies_failed_total", "counter", "AI replies that ended with a provider error.",
      c.replies_failed);
  add("chat_chunks_sent_total", "counter",
      "Reply chunks fanned out (once per chunk, not per subscriber).", c.chunks_sent);
  add("chat_conversations_live", "gauge", "Conversation actors alive on this node.",
      c.conversations_live);
  add("chat_http_requests_total", "counter", "HTTP requests served.", c.http_requests);
  add("chat_node_connections_open", "gauge",
      "HTTP and WebSocket connections open now (counted against CHAT_MAX_CONNECTIONS).",
      c.node_connections_open);
  add("chat_node_connections_max", "gauge", "CHAT_MAX_CONNECTIONS.", c.node_connections_max);
  out += "# HELP chat_connections_refused_total Connections refused, by the limit they hit.\n"
         "# TYPE chat_connections_refused_total counter\n"
         "chat_connections_refused_total{reason=\"max_connections\"} "
         + std::to_string(c.refused_max_connections) + "\n"
         + "chat_connections_refused_total{reason=\"max_connections_per_user\"} "
         + std::to_string(c.refused_max_connections_per_user) + "\n";
  add("chat_accept_failures_total", "counter",
      "accept() failures for want of file descriptors or memory (retried after a pause).",
      c.accept_failures);
  add("chat_accept_paused", "gauge", "1 while accepting is paused for want of descriptors.",
      c.accept_paused);
  add("chat_actors_dead", "gauge",
      "Actors the node needs (store, directory, AI pool) that died; not 0: /healthz fails.",
      c.actors_dead);
  add("chat_cluster_live_nodes", "gauge",
      "Live members of the cluster as the membership table shows them (0: single node).",
      c.cluster_live_nodes);
  add("chat_cluster_joined", "gauge", "1 once this node is a live member of the cluster.",
      c.cluster_joined);
  add("chat_conversations_owned", "gauge",
      "Conversations this node serves (placed here, or being handed over).", c.conversations_live);
  add("chat_provider_requests_queued", "gauge",
      "Provider requests waiting for a stream slot (CHAT_PROVIDER_MAX_STREAMS).",
      c.provider_requests_queued);
  // What the heap holds now (glibc's count, not RSS: freed memory the
  // allocator keeps is not in it), for memory per connection.
  add("chat_heap_in_use_bytes", "gauge", "Bytes allocated from the heap and not freed.",
      heap_in_use());
  c.ack_latency.render(out, "chat_ack_latency_seconds",
                       "A send received to its ack written (durable).");
  c.first_chunk_overhead.render(
      out, "chat_first_chunk_overhead_seconds",
      "A reply started to its first chunk fanned out, minus the provider's time to first token.");
  c.provider_ttft.render(out, "chat_provider_ttft_seconds",
                         "A provider request sent to its first token.");
  c.db_commit.render(out, "chat_db_commit_seconds", "One write transaction, BEGIN to COMMIT.");
  c.db_batch_size.render(out, "chat_db_batch_size", "Writes per committed transaction.");
  return out;
}

} // namespace chat::metrics
