#include "gateway/connection_limits.hpp"

#include <algorithm>

#include "common/metrics.hpp"

namespace chat::gateway {

connection_limits::slot& connection_limits::slot::operator=(slot&& other) noexcept {
  if (this != &other) {
    release();
    owner_ = std::move(other.owner_);
    user_ = std::move(other.user_);
    of_user_ = other.of_user_;
  }
  return *this;
}

connection_limits::slot::~slot() {
  release();
}

void connection_limits::slot::release() {
  if (!owner_)
    return;
  {
    std::lock_guard<std::mutex> guard{owner_->mtx_};
    if (!of_user_) {
      --owner_->open_;
      metrics::global().node_connections_open--;
    } else if (auto i = owner_->per_user_.find(user_); i != owner_->per_user_.end()) {
      if (--i->second == 0)
        owner_->per_user_.erase(i);
    }
  }
  owner_.reset();
}

std::shared_ptr<connection_limits>
connection_limits::make(size_t max_connections, size_t max_connections_per_user,
                        std::shared_ptr<const cluster_usage> elsewhere) {
  return std::shared_ptr<connection_limits>{
      new connection_limits{max_connections, max_connections_per_user, std::move(elsewhere)}};
}

connection_limits::slot connection_limits::try_connection() {
  std::lock_guard<std::mutex> guard{mtx_};
  if (open_ >= max_connections_)
    return {};
  ++open_;
  metrics::global().node_connections_open++;
  return slot{shared_from_this(), {}, false};
}

connection_limits::slot connection_limits::try_user_connection(const std::string& user) {
  auto remote = elsewhere_ ? static_cast<size_t>(std::max<int64_t>(0, elsewhere_->of(user).connections))
                           : size_t{0};
  std::lock_guard<std::mutex> guard{mtx_};
  auto& n = per_user_[user];
  if (n + remote >= max_per_user_) {
    if (n == 0) // max_per_user_ 0: do not leave an empty entry behind
      per_user_.erase(user);
    return {};
  }
  ++n;
  return slot{shared_from_this(), user, true};
}

size_t connection_limits::open() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return open_;
}

usage_map connection_limits::connections_by_user() const {
  usage_map out;
  std::lock_guard<std::mutex> guard{mtx_};
  for (auto& [user, n] : per_user_)
    out[user].connections = static_cast<int64_t>(n);
  return out;
}

size_t connection_limits::open_of(const std::string& user) const {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = per_user_.find(user);
  return i == per_user_.end() ? 0 : i->second;
}

} // namespace chat::gateway
