#include "common/metrics.hpp"

namespace chat::metrics {

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
      "Conversations this node serves (owned, once conversations are placed across nodes).",
      c.conversations_live);
  return out;
}

} // namespace chat::metrics
