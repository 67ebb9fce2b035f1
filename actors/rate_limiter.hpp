#pragma once
/// Sends per user per minute (CHAT_USER_SENDS_PER_MIN), shared by all the
/// user's connections on this node. A token bucket per user behind one
/// mutex: a check is a map lookup and a few arithmetic operations, cheap
/// enough to call from any actor without blocking it noticeably.

#include <chrono>
#include <mutex>
#include <string>
#include <unordered_map>

namespace chat {

class rate_limiter {
public:
  /// `per_minute` 0 turns limiting off.
  explicit rate_limiter(int per_minute) : per_minute_(per_minute) {}

  /// Takes one send from the user's budget; false when it is used up.
  bool allow(const std::string& user) {
    if (per_minute_ <= 0)
      return true;
    auto now = std::chrono::steady_clock::now();
    std::lock_guard<std::mutex> guard{mtx_};
    auto [it, added] = buckets_.try_emplace(user, bucket{double(per_minute_), now});
    auto& b = it->second;
    if (!added) {
      std::chrono::duration<double> dt = now - b.last;
      b.tokens = std::min(double(per_minute_), b.tokens + dt.count() * per_minute_ / 60.0);
      b.last = now;
    }
    if (buckets_.size() > 100000)
      prune(now);
    if (b.tokens < 1.0)
      return false;
    b.tokens -= 1.0;
    return true;
  }

private:
  struct bucket {
    double tokens;
    std::chrono::steady_clock::time_point last;
  };

  // Users idle for a minute have a full bucket again: forget them.
  void prune(std::chrono::steady_clock::time_point now) {
    for (auto i = buckets_.begin(); i != buckets_.end();)
      i = now - i->second.last > std::chrono::minutes{1} ? buckets_.erase(i) : std::next(i);
  }

  int per_minute_;
  std::mutex mtx_;
  std::unordered_map<std::string, bucket> buckets_;
};

} // namespace chat
