#pragma once
/// How many connections the node and each user may hold open
/// (CHAT_MAX_CONNECTIONS, CHAT_MAX_CONNECTIONS_PER_USER). No Beast here, so
/// it is unit-tested without sockets.
///
/// A connection holds a `slot`, given back when the slot is destroyed: the
/// node-wide one travels from the HTTP session to the WebSocket session on
/// upgrade, so each connection counts once for as long as it is open.
///
/// The per-user limit holds across the cluster: a user's connections on
/// the other nodes (as they last reported them, common/cluster_usage.hpp,
/// which states the error bound) count too.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "common/cluster_usage.hpp"

namespace chat::gateway {

class connection_limits : public std::enable_shared_from_this<connection_limits> {
public:
  /// A place among the node's connections or one user's; empty (false) when
  /// none was free. Move-only.
  class slot {
  public:
    slot() = default;
    slot(slot&& other) noexcept = default;
    slot& operator=(slot&& other) noexcept;
    ~slot();
    explicit operator bool() const {
      return owner_ != nullptr;
    }

  private:
    friend class connection_limits;
    slot(std::shared_ptr<connection_limits> owner, std::string user, bool of_user)
        : owner_(std::move(owner)), user_(std::move(user)), of_user_(of_user) {}
    void release();

    std::shared_ptr<connection_limits> owner_;
    std::string user_;
    bool of_user_ = false; // a user's slot, else a node-wide one
  };

  /// Always through make_shared (slots keep the limits alive).
  static std::shared_ptr<connection_limits>
  make(size_t max_connections, size_t max_connections_per_user,
       std::shared_ptr<const cluster_usage> elsewhere = {});

  /// A place among the node's open connections (HTTP and WebSocket).
  slot try_connection();
  /// A place among `user`'s open WebSocket connections.
  slot try_user_connection(const std::string& user);

  /// Connections of the node open now.
  size_t open() const;
  /// WebSocket connections of `user` open now.
  size_t open_of(const std::string& user) const;
  /// Every user's WebSocket connections open here (for the other nodes).
  usage_map connections_by_user() const;
  size_t max_connections() const {
    return max_connections_;
  }

private:
  connection_limits(size_t max_connections, size_t max_connections_per_user,
                    std::shared_ptr<const cluster_usage> elsewhere)
      : max_connections_(max_connections), max_per_user_(max_connections_per_user),
        elsewhere_(std::move(elsewhere)) {}

  const size_t max_connections_;
  const size_t max_per_user_;
  const std::shared_ptr<const cluster_usage> elsewhere_;
  mutable std::mutex mtx_;
  size_t open_ = 0;
  std::unordered_map<std::string, size_t> per_user_; // users with at least one
};

} // namespace chat::gateway
