#include "persistence/membership.hpp"

#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <pqxx/pqxx>

#include "common/ids.hpp"
#include "common/log.hpp"
#include "common/metrics.hpp"
#include "persistence/queries.hpp"
#include "persistence/session.hpp"

namespace chat::persistence {

namespace {

/// A connection for this file's blocking work, with the store's limits.
std::unique_ptr<pqxx::connection> connect(const std::string& url) {
  return std::make_unique<pqxx::connection>(with_connection_limits(url, connection_options{}));
}

/// The server side of a lock's connection notices a silent peer (a network
/// cut) after about 5 + 2 * 2 s and drops the lock; the defaults wait hours.
void keepalives_on_server(pqxx::connection& c) {
  pqxx::nontransaction tx{c};
  tx.exec("SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; "
          "SET tcp_keepalives_count = 2");
}

/// Runs `step` every `interval` on a thread of its own until destroyed.
class ticker {
public:
  ticker(std::chrono::milliseconds interval, std::function<void()> step)
      : interval_(interval), step_(std::move(step)) {
    thread_ = std::thread{[this] { run(); }};
  }

  ~ticker() {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  /// Runs the next step now instead of at its time.
  void poke() {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      poked_ = true;
    }
    cv_.notify_all();
  }

private:
  void run() {
    std::unique_lock<std::mutex> guard{mtx_};
    for (;;) {
      cv_.wait_for(guard, interval_, [this] { return stopping_ || poked_; });
      if (stopping_)
        return;
      poked_ = false;
      guard.unlock();
      step_();
      guard.lock();
    }
  }

  std::chrono::milliseconds interval_;
  std::function<void()> step_;
  std::mutex mtx_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool poked_ = false;
  std::thread thread_; // last: started once the rest exists
};

} // namespace

// -- this process -----------------------------------------------------------------

/// The connection holding this process's liveness lock, and the thread that
/// keeps it: every second it checks the connection and, when it was lost (a
/// database restart drops every lock), takes the lock again on a new one.
/// Until then other processes may take this one for gone; what they close,
/// our own writes then find closed (actors/conversation_replies.cpp).
class liveness_lock {
public:
  liveness_lock(std::string url, std::string process_id, int lock_key,
                std::unique_ptr<pqxx::connection> conn)
      : url_(std::move(url)), process_id_(std::move(process_id)), lock_key_(lock_key),
        conn_(std::move(conn)), ticker_(std::chrono::milliseconds{1000}, [this] { step(); }) {}

  void leave() {
    leaving_ = true;
    ticker_.poke();
  }

private:
  void step() {
    if (!holds())
      take();
    if (leaving_ && !left_ && conn_) {
      try {
        pqxx::nontransaction tx{*conn_};
        tx.exec_params(sql::leave_cluster.text, process_id_);
        left_ = true;
        log::info("cluster_left", {{"process", process_id_}});
      } catch (const std::exception& e) {
        log::warn("cluster_leave_failed", {{"error", first_line(e)}});
      }
    }
  }

  /// Beats (the others count a process that stops beating as gone, see
  /// live_members) and tells whether the lock's connection still works.
  bool holds() {
    if (!conn_ || !conn_->is_open())
      return false;
    try {
      pqxx::nontransaction tx{*conn_};
      tx.exec_params(sql::heartbeat.text, process_id_);
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }

  void take() {
    conn_.reset();
    try {
      auto c = connect(url_);
      keepalives_on_server(*c);
      pqxx::nontransaction tx{*c};
      tx.exec_params(sql::lock_process.text, lock_key_);
      tx.exec_params(sql::heartbeat.text, process_id_);
      conn_ = std::move(c);
      log::info("process_lock_taken_again", {{"process", process_id_}});
    } catch (const std::exception& e) {
      log::warn("process_lock_lost", {{"process", process_id_}, {"error", first_line(e)}});
    }
  }

  std::string url_;
  std::string process_id_;
  int lock_key_;
  std::unique_ptr<pqxx::connection> conn_; // the lock's thread only
  std::atomic<bool> leaving_{false};
  bool left_ = false;
  ticker ticker_; // last: its thread runs step() on the members above
};

process_registration register_process(const std::string& database_url, const std::string& node) {
  auto process_id = new_uuid();
  std::unique_ptr<pqxx::connection> c;
  int lock_key = 0;
  try {
    c = connect(database_url);
    keepalives_on_server(*c);
    // Row and lock in one transaction: nobody sees the row unlocked (and
    // prunes it as a process that is gone).
    pqxx::work tx{*c};
    lock_key = tx.exec_params1(sql::register_process.text, process_id, node)[0].as<int>();
    tx.exec_params(sql::lock_process.text, lock_key);
    tx.commit();
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot register this process in the database: " + first_line(e));
  }
  log::info("process_registered", {{"process", process_id}, {"lockKey", lock_key}});
  auto lock = std::make_shared<liveness_lock>(database_url, process_id, lock_key, std::move(c));
  return {process_id, std::move(lock)};
}

void advertise(const std::string& database_url, const process_registration& self,
               const std::string& cluster_address) {
  try {
    auto c = connect(database_url);
    pqxx::nontransaction tx{*c};
    tx.exec_params(sql::advertise_process.text, self.process_id, cluster_address);
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot advertise this node's cluster address: " + first_line(e));
  }
  log::info("cluster_address_advertised",
            {{"process", self.process_id}, {"address", cluster_address}});
}

void leave(const process_registration& self) {
  if (self.lock)
    self.lock->leave();
}

// -- the cluster ------------------------------------------------------------------

class membership_watch {
public:
  membership_watch(std::string url, std::string own_id, std::chrono::milliseconds interval,
                   std::chrono::milliseconds suspect_after, std::shared_ptr<cluster_status> status,
                   std::function<void(const std::vector<cluster_member>&)> on_change)
      : url_(std::move(url)), own_id_(std::move(own_id)), suspect_after_(suspect_after),
        status_(std::move(status)), on_change_(std::move(on_change)),
        ticker_(interval, [this] { step(); }) {}

private:
  void step() {
    std::vector<cluster_member> view;
    try {
      if (!conn_ || !conn_->is_open())
        conn_ = connect(url_);
      pqxx::read_transaction tx{*conn_};
      for (const auto& r :
           tx.exec_params(sql::live_members.text, static_cast<int64_t>(suspect_after_.count())))
        view.push_back({r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<std::string>()});
    } catch (const std::exception& e) {
      // The database decides membership: without it we know nothing new.
      conn_.reset();
      log::warn("cluster_view_failed", {{"error", first_line(e)}});
      return;
    }
    if (first_ || !same(view, last_))
      publish(view);
    first_ = false;
  }

  static bool same(const std::vector<cluster_member>& a, const std::vector<cluster_member>& b) {
    if (a.size() != b.size())
      return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (a[i].process_id != b[i].process_id || a[i].address != b[i].address)
        return false;
    return true;
  }

  static bool has(const std::vector<cluster_member>& v, const std::string& id) {
    for (auto& m : v)
      if (m.process_id == id)
        return true;
    return false;
  }

  void publish(const std::vector<cluster_member>& view) {
    for (auto& m : view)
      if (!has(last_, m.process_id))
        log::info("cluster_member_joined",
                  {{"process", m.process_id}, {"memberNode", m.node}, {"address", m.address}});
    for (auto& m : last_)
      if (!has(view, m.process_id))
        log::info("cluster_member_gone", {{"process", m.process_id}, {"memberNode", m.node}});
    bool joined = has(view, own_id_);
    status_->joined = joined;
    auto& m = metrics::global();
    m.cluster_live_nodes = static_cast<int64_t>(view.size());
    m.cluster_joined = joined ? 1 : 0;
    log::info("cluster_view",
              {{"liveNodes", static_cast<int64_t>(view.size())}, {"joined", joined}});
    last_ = view;
    if (on_change_)
      on_change_(view);
  }

  std::string url_;
  std::string own_id_;
  std::chrono::milliseconds suspect_after_;
  std::shared_ptr<cluster_status> status_;
  std::function<void(const std::vector<cluster_member>&)> on_change_;
  std::unique_ptr<pqxx::connection> conn_; // the watch's thread only
  std::vector<cluster_member> last_;
  bool first_ = true;
  ticker ticker_; // last
};

std::shared_ptr<membership_watch>
watch_membership(const std::string& database_url, std::string own_process_id,
                 std::chrono::milliseconds interval, std::chrono::milliseconds suspect_after,
                 std::shared_ptr<cluster_status> status,
                 std::function<void(const std::vector<cluster_member>&)> on_change) {
  return std::make_shared<membership_watch>(database_url, std::move(own_process_id), interval,
                                            suspect_after, std::move(status), std::move(on_change));
}

} // namespace chat::persistence
