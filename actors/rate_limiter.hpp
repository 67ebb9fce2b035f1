#pragma once
/// Sends per user per minute (CHAT_USER_SENDS_PER_MIN), shared by all the
/// user's connections, on this node and across the cluster. A token bucket
/// per user behind one mutex: a check is a map lookup and a few arithmetic
/// operations, cheap enough to call from any actor without blocking it
/// noticeably.
///
/// In a cluster each node also counts each user's sends of the last minute
/// (a sliding window estimate: the previous minute weighted by how much of
/// it is still inside the window, plus the current one), reports those
/// counts through the membership table, and refuses a send when its own
/// count plus the other nodes' reaches the limit (common/cluster_usage.hpp
/// has the error bound).

#include <chrono>
#include <cmath>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "common/cluster_usage.hpp"

namespace chat {

class rate_limiter {
public:
  /// `per_minute` 0 turns limiting off. `elsewhere`: the other nodes'
  /// usage (none on a single node).
  explicit rate_limiter(int per_minute, std::shared_ptr<const cluster_usage> elsewhere = {})
      : per_minute_(per_minute), elsewhere_(std::move(elsewhere)) {}

  /// Takes one send from the user's budget; false when it is used up.
  bool allow(const std::string& user) {
    if (per_minute_ <= 0)
      return true;
    auto remote = elsewhere_ ? elsewhere_->of(user).sends : 0;
    auto now = clock::now();
    std::lock_guard<std::mutex> guard{mtx_};
    auto [it, added] = users_.try_emplace(user, usage{double(per_minute_), now, {}});
    auto& u = it->second;
    if (!added) {
      std::chrono::duration<double> dt = now - u.last;
      u.tokens = std::min(double(per_minute_), u.tokens + dt.count() * per_minute_ / 60.0);
      u.last = now;
    }
    if (users_.size() > 100000)
      prune(now);
    if (u.tokens < 1.0 || u.recent.estimate(now) + double(remote) >= double(per_minute_))
      return false;
    u.tokens -= 1.0;
    u.recent.add(now);
    return true;
  }

  /// Each user's sends of the last minute on this node (for the others).
  usage_map recent_sends() {
    usage_map out;
    auto now = clock::now();
    std::lock_guard<std::mutex> guard{mtx_};
    for (auto& [user, u] : users_)
      if (auto n = static_cast<int64_t>(std::ceil(u.recent.estimate(now))); n > 0)
        out[user].sends = n;
    return out;
  }

private:
  using clock = std::chrono::steady_clock;

  /// Sends in the last minute, estimated from two fixed one-minute windows.
  struct sliding_count {
    int64_t minute = -1; // index of the current window
    double current = 0;
    double previous = 0;

    static int64_t minute_of(clock::time_point t) {
      return std::chrono::duration_cast<std::chrono::minutes>(t.time_since_epoch()).count();
    }

    void roll(clock::time_point now) {
      auto m = minute_of(now);
      if (m == minute)
        return;
      previous = m == minute + 1 ? current : 0;
      current = 0;
      minute = m;
    }

    void add(clock::time_point now) {
      roll(now);
      current += 1;
    }

    double estimate(clock::time_point now) {
      roll(now);
      std::chrono::duration<double> into = now.time_since_epoch() - std::chrono::minutes{minute};
      return previous * (1.0 - into.count() / 60.0) + current;
    }
  };

  struct usage {
    double tokens;
    clock::time_point last;
    sliding_count recent;
  };

  // Users idle for two minutes have a full bucket and no recent sends:
  // forget them.
  void prune(clock::time_point now) {
    for (auto i = users_.begin(); i != users_.end();)
      i = now - i->second.last > std::chrono::minutes{2} ? users_.erase(i) : std::next(i);
  }

  int per_minute_;
  std::shared_ptr<const cluster_usage> elsewhere_;
  std::mutex mtx_;
  std::unordered_map<std::string, usage> users_;
};

} // namespace chat
