#pragma once
/// The HTTP + WebSocket front door (Boost.Beast), sharing the io_context
/// threads it is given. Beast stays out of this header.
///
/// Routes: GET /api/v1/chat/ws (WebSocket, JWT at upgrade), the REST API of
/// PROTOCOL.md, GET /healthz, /readyz, /metrics.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <caf/fwd.hpp>

#include "actors/directory_actor.hpp"
#include "actors/persistence_actor.hpp"
#include "actors/session_actor.hpp"
#include "gateway/connection_limits.hpp"
#include "gateway/frame_budget.hpp"
#include "gateway/node_health.hpp"

namespace boost::asio {
class io_context;
} // namespace boost::asio

namespace chat::gateway {

/// Limits and settings of the front door, in one place.
struct gateway_config {
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 8080;
  std::string jwt_secret;
  /// Largest WebSocket message accepted; bigger ones close with 1009.
  size_t max_frame_bytes = 64 * 1024;
  /// Largest `send.content`, in bytes.
  size_t max_content_bytes = 32768;
  /// No frame at all (pongs included) for this long closes with 1001.
  std::chrono::milliseconds idle_timeout{std::chrono::seconds{60}};
  /// Bytes queued for a client that reads too slowly before we close the
  /// connection with 1013 (it resumes with `subscribe` after reconnecting).
  size_t max_pending_bytes = 4 * 1024 * 1024;
  /// The kernel's send buffer per connection (SO_SNDBUF). Fixed instead of
  /// auto-tuned (up to 4 MiB on Linux), so that a stalled client holds at
  /// most this plus `max_pending_bytes`; chat streams need little more.
  int socket_send_buffer = 128 * 1024;
  /// Largest HTTP request body (REST).
  size_t max_body_bytes = 64 * 1024;
  /// Open HTTP and WebSocket connections of the node; past it, requests get
  /// 503 (CHAT_MAX_CONNECTIONS). Kept below the open-files limit so that
  /// the node still has descriptors for its database and provider sockets.
  size_t max_connections = 10000;
  /// Open WebSocket connections per user; past it, upgrades get 429.
  size_t max_connections_per_user = 32;
  /// How long accepting pauses when it fails for want of descriptors or
  /// memory: retrying at once would spin a core until some are freed.
  std::chrono::milliseconds accept_backoff{100};
  /// How long a client may take to send a whole HTTP request, the upgrade
  /// included (CHAT_REQUEST_TIMEOUT): slow-header clients are cut off.
  std::chrono::milliseconds request_timeout{10000};
  /// How long a client has to answer our close frame and then close its end
  /// of the TCP connection (CHAT_CLOSE_TIMEOUT); past it the socket is
  /// closed under it, answered or not.
  std::chrono::milliseconds close_timeout{10000};
  /// Origins (scheme://host[:port]) a browser may open the WebSocket from
  /// (CHAT_ALLOWED_ORIGINS); empty: the page's own origin only (the
  /// Origin's host:port is the Host the request was sent to). "*" in the
  /// list allows any. A request without Origin (not a browser) is allowed.
  std::vector<std::string> allowed_origins;
  /// Frames of any type a connection may send (CHAT_FRAMES_PER_SEC,
  /// CHAT_FRAME_BURST): past it, `rate_limited` and a close with 1008.
  frame_rate frames;
};

/// The actors the gateway talks to.
struct gateway_services {
  caf::actor_system* system = nullptr;
  directory_actor directory;
  persistence_actor store;
  session_config session;
  /// Whether the actors above are alive (null: not watched, healthy).
  std::shared_ptr<node_health> health;
  /// In a cluster: whether this node is a live member yet (/readyz is 503
  /// until then). Null on a single node.
  std::shared_ptr<const std::atomic<bool>> cluster_joined;
  /// The connection limits, when the caller shares them (their per-user
  /// counts go to the other nodes); null: made from gateway_config.
  std::shared_ptr<connection_limits> limits;
};

class server {
public:
  server(boost::asio::io_context& ioc, gateway_config cfg, gateway_services services);
  ~server();

  /// Binds and starts accepting. Returns the port (useful with port 0).
  /// Throws std::runtime_error when the address cannot be bound.
  uint16_t start();

  /// Stops accepting connections and answers /readyz with 503 (drain).
  void begin_drain();

  /// Closes every WebSocket with `code` (1001 at shutdown).
  void close_all(uint16_t code);

  /// WebSocket connections open now.
  size_t open_connections() const;

  struct impl;

private:
  std::shared_ptr<impl> impl_;
};

} // namespace chat::gateway
