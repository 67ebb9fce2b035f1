#pragma once
/// One PostgreSQL connection with the store's prepared statements, as owned
/// by one detached actor (libpqxx connections are not thread-safe).

#include <memory>
#include <string>

#include <pqxx/pqxx>

#include "persistence/connection_options.hpp"

namespace chat::persistence {

/// `url` with libpq's connection limits added where it sets none:
/// connect_timeout, TCP keepalives (a peer gone silent is noticed in about
/// 10 s) and tcp_user_timeout (unacknowledged writes fail after 10 s).
/// Works for URIs (postgresql://...) and key=value strings.
std::string with_connection_limits(const std::string& url, const connection_options& opts);

class session {
public:
  /// Connects at once; throws pqxx::broken_connection if it cannot.
  explicit session(std::string url, connection_options opts = {});

  /// The connection, reconnecting first if it was lost. Throws
  /// pqxx::broken_connection if the database cannot be reached.
  pqxx::connection& conn();

  /// Forgets a connection that failed, so the next `conn()` reconnects.
  void drop(const char* who, const std::exception& why);

private:
  void connect();

  std::string url_;
  connection_options opts_;
  std::unique_ptr<pqxx::connection> conn_;
  std::string lost_by_; // who dropped it, for the reconnect log
  std::chrono::steady_clock::time_point failed_at_{};
  bool failed_ = false;
  bool unreachable_logged_ = false; // since the last connect that worked
};

/// The first line of an exception's text (libpqxx appends the query and
/// context on further lines; we keep logs one line and short).
std::string first_line(const std::exception& e);

} // namespace chat::persistence
