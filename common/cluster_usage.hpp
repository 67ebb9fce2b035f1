#pragma once
/// What each user holds on the other nodes of the cluster, for the limits
/// that hold cluster-wide (CHAT_MAX_CONNECTIONS_PER_USER,
/// CHAT_USER_SENDS_PER_MIN).
///
/// Every node writes its own per-user usage to the membership table once a
/// tick (persistence/membership.cpp) and reads back the sum over the other
/// live members; limits then check local usage plus that sum. The sum is
/// up to one tick (1 s) plus a database round trip old, so the error bound
/// is: a user can exceed a limit by what they open or send on the other
/// nodes within that time (on a single node, or with one node busy, the
/// limits are exact). A member that dies or leaves stops counting once the
/// survivors' view drops it.

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace chat {

struct user_usage {
  int64_t connections = 0; ///< WebSocket connections open
  int64_t sends = 0;       ///< sends in the last minute (estimated)
};

using usage_map = std::unordered_map<std::string, user_usage>;

/// The other members' usage, replaced whole each tick; read from any
/// thread (an I/O thread at upgrade, an actor at send).
class cluster_usage {
public:
  user_usage of(const std::string& user) const {
    std::lock_guard<std::mutex> guard{mtx_};
    auto i = elsewhere_.find(user);
    return i == elsewhere_.end() ? user_usage{} : i->second;
  }

  void replace(usage_map elsewhere) {
    std::lock_guard<std::mutex> guard{mtx_};
    elsewhere_.swap(elsewhere);
  }

private:
  mutable std::mutex mtx_;
  usage_map elsewhere_;
};

} // namespace chat
