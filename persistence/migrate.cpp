#include "persistence/store.hpp"

#include <set>
#include <stdexcept>

#include <pqxx/pqxx>

#include "common/log.hpp"
#include "persistence/migrations.hpp"
#include "persistence/session.hpp"

namespace chat::persistence {

namespace {

// Any fixed key: every node migrating the same database takes the same lock.
constexpr int64_t migration_lock_key = 0x63686174'6d696772; // "chatmigr"

constexpr const char* create_schema_migrations = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                                 "version int PRIMARY KEY, "
                                                 "applied_at timestamptz NOT NULL DEFAULT now())";

// Session-level advisory lock, released by `unlock` or when the connection
// closes (also on a crash), so a second node waits instead of racing.
void lock(pqxx::connection& c, bool on) {
  pqxx::nontransaction tx{c};
  tx.exec_params(on ? "SELECT pg_advisory_lock($1)" : "SELECT pg_advisory_unlock($1)",
                 migration_lock_key);
}

} // namespace

int migrate(const std::string& database_url) {
  std::unique_ptr<pqxx::connection> c;
  try {
    c = std::make_unique<pqxx::connection>(database_url);
  } catch (const std::exception& e) {
    throw std::runtime_error("migrate: cannot connect to the database: " + first_line(e));
  }
  const char* current = "schema_migrations";
  try {
    lock(*c, true);
    std::set<int> applied;
    {
      pqxx::work tx{*c};
      // Under the lock: CREATE TABLE IF NOT EXISTS is not safe concurrently.
      tx.exec(create_schema_migrations);
      for (auto row : tx.exec("SELECT version FROM schema_migrations"))
        applied.insert(row[0].as<int>());
      tx.commit();
    }
    int count = 0;
    for (auto& m : migrations()) {
      if (applied.count(m.version) > 0)
        continue;
      current = m.name;
      pqxx::work tx{*c};
      tx.exec(m.sql);
      tx.exec_params("INSERT INTO schema_migrations (version) VALUES ($1)", m.version);
      tx.commit();
      ++count;
      log::info("migration_applied", {{"version", m.version}, {"name", m.name}});
    }
    lock(*c, false);
    return count;
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string{"migrate: "} + current + " failed: " + first_line(e));
  }
}

} // namespace chat::persistence
