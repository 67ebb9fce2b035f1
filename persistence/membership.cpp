#include "persistence/membership.hpp"

#include <condition_variable>
#include <cstdio>
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
std::unique_ptr<pqxx::connection> connect(const std::string& url, const connection_options& opts) {
  return std::make_unique<pqxx::connection>(with_connection_limits(url, opts));
}

/// The server side of a lock's connection notices a silent peer (a network
/// cut) after about 5 + 2 * 2 s and drops the lock; the defaults wait hours.
void keepalives_on_server(pqxx::connection& c) {
  pqxx::nontransaction tx{c};
  tx.exec("SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; "
          "SET tcp_keepalives_count = 2");
}

/// Whether `s` is valid UTF-8 (jsonb refuses anything else).
bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size())
      return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80)
        return false;
    i += n;
  }
  return true;
}

/// {"user": [connections, sends], ...} for report_usage. Users whose id is
/// not UTF-8 (it comes from a token) are left out rather than failing the
/// whole report.
std::string usage_json(const usage_map& usage) {
  std::string out = "{";
  for (auto& [user, u] : usage) {
    if ((u.connections == 0 && u.sends == 0) || !valid_utf8(user)
        || user.find('\0') != std::string::npos)
      continue;
    if (out.size() > 1)
      out += ',';
    out += '"';
    for (char ch : user) {
      auto c = static_cast<unsigned char>(ch);
      if (c == '"' || c == '\\') {
        out += '\\';
        out += ch;
      } else if (c < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        out += buf;
      } else {
        out += ch;
      }
    }
    out += "\":[" + std::to_string(u.connections) + "," + std::to_string(u.sends) + "]";
  }
  out += '}';
  return out;
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
  liveness_lock(std::string url, connection_options opts, std::string process_id, int lock_key,
                std::unique_ptr<pqxx::connection> conn)
      : url_(std::move(url)), opts_(opts), process_id_(std::move(process_id)), lock_key_(lock_key),
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
      auto c = connect(url_, opts_);
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
  connection_options opts_;
  std::string process_id_;
  int lock_key_;
  std::unique_ptr<pqxx::connection> conn_; // the lock's thread only
  std::atomic<bool> leaving_{false};
  bool left_ = false;
  ticker ticker_; // last: its thread runs step() on the members above
};

process_registration register_process(const std::string& database_url, const std::string& node,
                                      const connection_options& opts) {
  auto process_id = new_uuid();
  std::unique_ptr<pqxx::connection> c;
  int lock_key = 0;
  try {
    c = connect(database_url, opts);
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
  auto lock
      = std::make_shared<liveness_lock>(database_url, opts, process_id, lock_key, std::move(c));
  return {process_id, std::move(lock)};
}

void advertise(const std::string& database_url, const process_registration& self,
               const std::string& cluster_address, const connection_options& opts) {
  try {
    auto c = connect(database_url, opts);
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
                   std::function<void(const std::vector<cluster_member>&)> on_change,
                   usage_exchange usage, connection_options opts)
      : url_(std::move(url)), opts_(opts), own_id_(std::move(own_id)),
        suspect_after_(suspect_after), status_(std::move(status)), on_change_(std::move(on_change)),
        usage_(std::move(usage)), ticker_(interval, [this] { step(); }) {}

private:
  void step() {
    std::vector<cluster_member> view;
    try {
      if (!conn_ || !conn_->is_open())
        conn_ = connect(url_, opts_);
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
    exchange_usage();
  }

  /// This node's usage out, the other live members' sums in. On a failure
  /// the last sums stay (the limits go on with what they knew).
  void exchange_usage() {
    if (!usage_.local || !usage_.elsewhere)
      return;
    try {
      pqxx::work tx{*conn_};
      tx.exec_params(sql::report_usage.text, own_id_, usage_json(usage_.local()));
      usage_map elsewhere;
      for (const auto& r : tx.exec_params(sql::usage_elsewhere.text, own_id_,
                                          static_cast<int64_t>(suspect_after_.count())))
        elsewhere[r[0].as<std::string>()] = {r[1].as<int64_t>(), r[2].as<int64_t>()};
      tx.commit();
      usage_.elsewhere->replace(std::move(elsewhere));
    } catch (const std::exception& e) {
      conn_.reset();
      log::warn("cluster_usage_failed", {{"error", first_line(e)}});
    }
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
  connection_options opts_;
  std::string own_id_;
  std::chrono::milliseconds suspect_after_;
  std::shared_ptr<cluster_status> status_;
  std::function<void(const std::vector<cluster_member>&)> on_change_;
  usage_exchange usage_;
  std::unique_ptr<pqxx::connection> conn_; // the watch's thread only
  std::vector<cluster_member> last_;
  bool first_ = true;
  ticker ticker_; // last
};

std::shared_ptr<membership_watch>
watch_membership(const std::string& database_url, std::string own_process_id,
                 std::chrono::milliseconds interval, std::chrono::milliseconds suspect_after,
                 std::shared_ptr<cluster_status> status,
                 std::function<void(const std::vector<cluster_member>&)> on_change,
                 usage_exchange usage, const connection_options& opts) {
  return std::make_shared<membership_watch>(database_url, std::move(own_process_id), interval,
                                            suspect_after, std::move(status), std::move(on_change),
                                            std::move(usage), opts);
}

} // namespace chat::persistence
