#include "persistence/session.hpp"

#include "common/log.hpp"
#include "persistence/queries.hpp"

namespace chat::persistence {

session::session(std::string url) : url_(std::move(url)) {
  connect();
}

pqxx::connection& session::conn() {
  if (!conn_ || !conn_->is_open()) {
    conn_.reset();
    connect();
    log::info("db_reconnected", {{"actor", lost_by_}});
  }
  return *conn_;
}

void session::drop(const char* who, const std::exception& why) {
  log::warn("db_connection_lost", {{"actor", who}, {"error", first_line(why)}});
  conn_.reset();
  lost_by_ = who;
}

void session::connect() {
  auto c = std::make_unique<pqxx::connection>(url_);
  for (auto& st : sql::all)
    c->prepare(st.name, st.text);
  conn_ = std::move(c);
}

std::string first_line(const std::exception& e) {
  std::string text = e.what();
  if (auto nl = text.find('\n'); nl != std::string::npos)
    text.resize(nl);
  return text;
}

} // namespace chat::persistence
