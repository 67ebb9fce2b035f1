#include "persistence/store.hpp"

#include <memory>
#include <stdexcept>

#include <pqxx/pqxx>

#include "common/log.hpp"
#include "persistence/queries.hpp"
#include "persistence/session.hpp"

namespace chat::persistence {

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
