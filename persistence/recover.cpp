#include "persistence/store.hpp"

#include <chrono>
#include <memory>
#include <stdexcept>

#include <condition_variable>
#include <mutex>
#include <thread>
#include <pqxx/pqxx>

#include "common/ids.hpp"
#include "common/log.hpp"
#include "persistence/queries.hpp"
#include "persistence/session.hpp"

namespace chat::persistence {

/// The connection holding this process's liveness lock, and the thread
/// that keeps it: every `interval` it checks the connection and, when it
/// was lost (a database restart drops every lock), takes the lock again on
/// a new one. Until then other processes may take this one for gone; what
/// they close, our own writes then find closed (conversation_actor.cpp).
class liveness_lock {
public:
  liveness_lock(std::string url, std::string process_id, int lock_key,
                std::unique_ptr<pqxx::connection> conn, std::chrono::milliseconds interval)
      : url_(std::move(url)), process_id_(std::move(process_id)), lock_key_(lock_key),
        conn_(std::move(conn)), interval_(interval) {
    thread_ = std::thread{[this] { run(); }};
  }

  ~liveness_lock() {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

private:
  void run() {
    std::unique_lock<std::mutex> guard{mtx_};
    while (!cv_.wait_for(guard, interval_, [this] { return stopping_; })) {
      guard.unlock();
      if (!holds())
        take();
      guard.lock();
    }
  }

  bool holds() {
    if (!conn_ || !conn_->is_open())
      return false;
    try {
      pqxx::nontransaction tx{*conn_};
      tx.exec("SELECT 1");
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }

  void take() {
    conn_.reset();
    try {
      auto c = std::make_unique<pqxx::connection>(url_);
      pqxx::nontransaction tx{*c};
      tx.exec_params(sql::lock_process.text, lock_key_);
      conn_ = std::move(c);
      log::info("process_lock_taken_again", {{"process", process_id_}});
    } catch (const std::exception& e) {
      log::warn("process_lock_lost", {{"process", process_id_}, {"error", first_line(e)}});
    }
  }

  std::string url_;
  std::string process_id_;
  int lock_key_;
  std::unique_ptr<pqxx::connection> conn_;
  std::chrono::milliseconds interval_;
  std::mutex mtx_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

process_registration register_process(const std::string& database_url, const std::string& node) {
  auto url = with_connection_limits(database_url, connection_options{});
  auto process_id = new_uuid();
  std::unique_ptr<pqxx::connection> c;
  int lock_key = 0;
  try {
    c = std::make_unique<pqxx::connection>(url);
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
  auto lock = std::make_shared<liveness_lock>(url, process_id, lock_key, std::move(c),
                                              std::chrono::milliseconds{1000});
  return {process_id, std::move(lock)};
}

int recover_interrupted(const std::string& database_url) {
  std::unique_ptr<pqxx::connection> c;
  try {
    c = std::make_unique<pqxx::connection>(
        with_connection_limits(database_url, connection_options{}));
  } catch (const std::exception& e) {
    throw std::runtime_error("recover_interrupted: cannot connect to the database: "
                             + first_line(e));
  }
  try {
    pqxx::work tx{*c};
    auto n = tx.exec1(sql::recover_interrupted.text)[0].as<int64_t>();
    auto pruned = tx.exec0(sql::prune_processes.text).affected_rows();
    tx.commit();
    log::info("replies_interrupted_recovered",
              {{"count", n}, {"processesForgotten", static_cast<int64_t>(pruned)}});
    return static_cast<int>(n);
  } catch (const std::exception& e) {
    throw std::runtime_error("recover_interrupted failed: " + first_line(e));
  }
}

} // namespace chat::persistence
