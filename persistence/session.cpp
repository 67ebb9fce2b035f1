#include "persistence/session.hpp"

#include "common/log.hpp"
#include "persistence/queries.hpp"

namespace chat::persistence {

std::string with_connection_limits(const std::string& url, const connection_options& opts) {
  const std::pair<const char*, std::string> limits[] = {
      {"connect_timeout", std::to_string(std::max<int64_t>(1, opts.connect_timeout.count()))},
      {"keepalives", "1"},
      {"keepalives_idle", "5"},
      {"keepalives_interval", "2"},
      {"keepalives_count", "3"},
      {"tcp_user_timeout", "10000"},
  };
  bool uri = url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0;
  std::string out = url;
  for (auto& [key, value] : limits) {
    if (url.find(std::string{key} + "=") != std::string::npos)
      continue; // the operator's own choice wins
    if (uri)
      out += (out.find('?') == std::string::npos ? "?" : "&") + std::string{key} + "=" + value;
    else
      out += " " + std::string{key} + "=" + value;
  }
  return out;
}

session::session(std::string url, connection_options opts)
    : url_(with_connection_limits(url, opts)), opts_(opts) {
  connect();
}

pqxx::connection& session::conn() {
  if (!conn_ || !conn_->is_open()) {
    conn_.reset();
    if (failed_ && std::chrono::steady_clock::now() - failed_at_ < opts_.reconnect_pause)
      throw pqxx::broken_connection{"database unreachable (retrying shortly)"};
    connect();
    log::info("db_reconnected", {{"actor", lost_by_}});
  }
  return *conn_;
}

void session::drop(const char* who, const std::exception& why) {
  lost_by_ = who;
  if (conn_) {
    log::warn("db_connection_lost", {{"actor", who}, {"error", first_line(why)}});
    conn_.reset();
    return;
  }
  // conn() could not make one. Said once per outage: every request fails
  // this way for as long as the database is away.
  if (!unreachable_logged_)
    log::warn("db_unreachable", {{"actor", who}, {"error", first_line(why)}});
  unreachable_logged_ = true;
}

void session::connect() {
  try {
    auto c = std::make_unique<pqxx::connection>(url_);
    if (opts_.statement_timeout.count() > 0) {
      pqxx::nontransaction tx{*c};
      tx.exec("SET statement_timeout = " + std::to_string(opts_.statement_timeout.count()));
    }
    for (auto& st : sql::all)
      c->prepare(st.name, st.text);
    conn_ = std::move(c);
    failed_ = false;
    unreachable_logged_ = false;
  } catch (...) {
    failed_ = true;
    failed_at_ = std::chrono::steady_clock::now();
    throw;
  }
}

std::string first_line(const std::exception& e) {
  std::string text = e.what();
  if (auto nl = text.find('\n'); nl != std::string::npos)
    text.resize(nl);
  return text;
}

} // namespace chat::persistence
