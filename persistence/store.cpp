#include "persistence/store.hpp"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include <caf/all.hpp>

#include "common/log.hpp"
#include "persistence/reader.hpp"
#include "persistence/session.hpp"
#include "persistence/store_stats.hpp"
#include "persistence/writer.hpp"

namespace chat::persistence {

namespace {

/// The handle callers see: forwards each request, with its sender, to the
/// writer or to the reader pool, which answer the caller directly.
store_actor::behavior_type router(store_actor::pointer self, writer_actor writer,
                                  reader_actor readers) {
  // Linked: if one part dies the store dies whole, visibly, and when the
  // router goes away it takes the writer and the readers with it.
  self->link_to(writer);
  self->link_to(readers);
  return {
      [=](append_user_atom a, user_message_write& w) {
        return self->delegate(writer, a, std::move(w));
      },
      [=](checkpoint_atom a, stored_message& m, std::string& process, int64_t epoch) {
        return self->delegate(writer, a, std::move(m), std::move(process), epoch);
      },
      [=](db_check_atom a, std::string& conv, std::string& id) {
        return self->delegate(writer, a, std::move(conv), std::move(id));
      },
      [=](append_reply_atom a, stored_message& m, int64_t epoch) {
        return self->delegate(writer, a, std::move(m), epoch);
      },
      [=](remove_conv_atom a, std::string& user, std::string& conv) {
        return self->delegate(writer, a, std::move(user), std::move(conv));
      },
      [=](db_stats_atom a) { return self->delegate(writer, a); },
      [=](load_conv_atom a, std::string& conv) {
        return self->delegate(readers, a, std::move(conv));
      },
      [=](history_atom a, std::string& user, std::string& conv, int64_t after, int32_t limit) {
        return self->delegate(readers, a, std::move(user), std::move(conv), after, limit);
      },
      [=](list_conv_atom a, std::string& user, std::string& before, int32_t limit) {
        return self->delegate(readers, a, std::move(user), std::move(before), limit);
      },
      [=](find_msg_atom a, std::string& user, std::string& client_msg_id) {
        return self->delegate(readers, a, std::move(user), std::move(client_msg_id));
      },
      [=](db_ping_atom a) { return self->delegate(readers, a); },
  };
}

} // namespace

chat::persistence_actor spawn_store(caf::actor_system& sys, const store_config& cfg) {
  // Open every connection first, so that an unreachable database is an
  // exception here and not a half-started store.
  std::unique_ptr<session> writer_db;
  std::vector<std::unique_ptr<session>> reader_dbs;
  try {
    writer_db = std::make_unique<session>(cfg.database_url, cfg.connection);
    for (size_t i = 0; i < std::max<size_t>(1, cfg.readers); ++i)
      reader_dbs.push_back(std::make_unique<session>(cfg.database_url, cfg.connection));
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot connect to the database: " + first_line(e));
  }
  auto writer = spawn_writer(sys, std::move(writer_db), cfg.max_batch);
  size_t next = 0;
  auto pool = caf::actor_pool::make(
      sys.dummy_execution_unit(), reader_dbs.size(),
      [&] { return caf::actor_cast<caf::actor>(spawn_reader(sys, std::move(reader_dbs[next++]))); },
      caf::actor_pool::round_robin());
  log::info("store_started", {{"readers", static_cast<uint64_t>(reader_dbs.size())},
                              {"max_batch", static_cast<uint64_t>(cfg.max_batch)}});
  return sys.spawn(router, writer, caf::actor_cast<reader_actor>(pool));
}

} // namespace chat::persistence
