#include "persistence/store.hpp"

#include <memory>
#include <stdexcept>

#include <pqxx/pqxx>

#include "common/log.hpp"
#include "persistence/queries.hpp"
#include "persistence/session.hpp"

namespace chat::persistence {

int recover_interrupted(const std::string& database_url, const std::string& node_id) {
  // An empty id would match rows of no node (and none of ours).
  if (node_id.empty())
    throw std::invalid_argument("recover_interrupted: empty node id");
  std::unique_ptr<pqxx::connection> c;
  try {
    c = std::make_unique<pqxx::connection>(database_url);
  } catch (const std::exception& e) {
    throw std::runtime_error("recover_interrupted: cannot connect to the database: "
                             + first_line(e));
  }
  try {
    pqxx::work tx{*c};
    auto n = tx.exec_params1(sql::recover_interrupted.text, node_id)[0].as<int64_t>();
    tx.commit();
    log::info("replies_interrupted_recovered", {{"node", node_id}, {"count", n}});
    return static_cast<int>(n);
  } catch (const std::exception& e) {
    throw std::runtime_error("recover_interrupted failed: " + first_line(e));
  }
}

} // namespace chat::persistence
