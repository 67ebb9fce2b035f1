#pragma once
/// One PostgreSQL connection with the store's prepared statements, as owned
/// by one detached actor (libpqxx connections are not thread-safe).

#include <memory>
#include <string>

#include <pqxx/pqxx>

namespace chat::persistence {

class session {
public:
  /// Connects at once; throws pqxx::broken_connection if it cannot.
  explicit session(std::string url);

  /// The connection, reconnecting first if it was lost. Throws
  /// pqxx::broken_connection if the database cannot be reached.
  pqxx::connection& conn();

  /// Forgets a connection that failed, so the next `conn()` reconnects.
  void drop(const char* who, const std::exception& why);

private:
  void connect();

  std::string url_;
  std::unique_ptr<pqxx::connection> conn_;
  std::string lost_by_; // who dropped it, for the reconnect log
};

/// The first line of an exception's text (libpqxx appends the query and
/// context on further lines; we keep logs one line and short).
std::string first_line(const std::exception& e);

} // namespace chat::persistence
