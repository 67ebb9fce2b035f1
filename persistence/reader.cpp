#include "persistence/reader.hpp"

#include <algorithm>

#include <caf/all.hpp>

#include "actors/errors.hpp"
#include "common/ids.hpp"
#include "common/log.hpp"
#include "persistence/cursor.hpp"
#include "persistence/queries.hpp"
#include "persistence/session.hpp"

namespace chat::persistence {

namespace {

/// Messages a conversation loads as provider context.
constexpr int32_t recent_context = 50;

/// Upper bound on any page, whatever the caller asks.
constexpr int32_t max_page = 1000;

int32_t clamp_limit(int32_t limit) {
  return std::clamp<int32_t>(limit, 1, max_page);
}

/// A row in CHAT_MESSAGE_COLUMNS order (queries.hpp).
stored_message to_message(const pqxx::row& r) {
  stored_message m;
  m.id = r[0].as<std::string>();
  m.conversation_id = r[1].as<std::string>();
  m.seq = r[2].as<int64_t>();
  m.role = r[3].as<std::string>();
  m.content = r[4].as<std::string>();
  m.user_id = r[5].as<std::string>();
  m.client_msg_id = r[6].as<std::string>(std::string{});
  m.reply_to = r[7].as<std::string>(std::string{});
  m.model = r[8].as<std::string>(std::string{});
  m.finish_reason = r[9].as<std::string>(std::string{});
  m.prompt_tokens = r[10].as<int64_t>(-1);
  m.completion_tokens = r[11].as<int64_t>(-1);
  m.created_at = r[12].as<int64_t>();
  return m;
}

/// Claims `conv` (a new epoch: writes under older ones are refused from
/// now on), closes the replies it had in progress (counted in `recovered`:
/// their writers are fenced off), then reads its snapshot.
conversation_snapshot load_conv(pqxx::work& tx, const std::string& conv, int64_t& recovered) {
  conversation_snapshot s;
  auto claimed = tx.exec_prepared(sql::claim_conversation.name, conv);
  if (claimed.empty())
    return s;
  s.found = true;
  s.owner = claimed[0][0].as<std::string>();
  s.epoch = claimed[0][1].as<int64_t>();
  recovered = tx.exec_prepared1(sql::recover_conversation.name, conv)[0].as<int64_t>();
  s.last_seq = tx.exec_prepared1(sql::last_seq.name, conv)[0].as<int64_t>();
  for (const auto& row : tx.exec_prepared(sql::recent_messages.name, conv, recent_context))
    s.recent.push_back(to_message(row));
  return s;
}

message_page history(pqxx::read_transaction& tx, const std::string& user, const std::string& conv,
                     int64_t after_seq, int32_t limit) {
  message_page page;
  auto owner = tx.exec_prepared(sql::conversation_owner.name, conv);
  // Another user's conversation looks exactly like a missing one.
  if (owner.empty() || owner[0][0].as<std::string>() != user)
    return page;
  page.found = true;
  for (const auto& row : tx.exec_prepared(sql::message_page.name, conv,
                                          std::max<int64_t>(after_seq, 0), clamp_limit(limit)))
    page.messages.push_back(to_message(row));
  return page;
}

conversation_page list_conv(pqxx::read_transaction& tx, const std::string& user,
                            const std::optional<list_cursor>& before, int32_t limit) {
  limit = clamp_limit(limit);
  // One row more than asked tells whether there is a next page.
  auto rows = before ? tx.exec_prepared(sql::next_conversations.name, user, before->updated_us,
                                        before->id, limit + 1)
                     : tx.exec_prepared(sql::first_conversations.name, user, limit + 1);
  conversation_page page;
  auto shown = std::min<size_t>(rows.size(), static_cast<size_t>(limit));
  for (size_t i = 0; i < shown; ++i) {
    auto r = rows[static_cast<pqxx::result::size_type>(i)];
    page.conversations.push_back(
        {r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<int64_t>(), r[3].as<int64_t>()});
  }
  if (rows.size() > shown) {
    auto last = rows[static_cast<pqxx::result::size_type>(shown - 1)];
    page.next_before = encode_cursor({last[4].as<int64_t>(), last[0].as<std::string>()});
  }
  return page;
}

class reader_impl : public reader_actor::base {
public:
  reader_impl(caf::actor_config& cfg, std::unique_ptr<session> db)
      : reader_actor::base(cfg), db_(std::move(db)) {}

  const char* name() const override {
    return "chat.persistence.reader";
  }

  behavior_type make_behavior() override {
    return {
        [this](load_conv_atom, const std::string& conv) -> caf::result<conversation_snapshot> {
          if (!looks_like_uuid(conv))
            return conversation_snapshot{};
          int64_t recovered = 0;
          auto res = run<pqxx::work>([&](auto& tx) {
            auto s = load_conv(tx, conv, recovered);
            tx.commit();
            return s;
          });
          if (recovered > 0)
            log::info("replies_interrupted_recovered",
                      {{"conversationId", conv}, {"count", recovered}});
          return res;
        },
        [this](history_atom, const std::string& user, const std::string& conv, int64_t after_seq,
               int32_t limit) -> caf::result<message_page> {
          if (!looks_like_uuid(conv))
            return message_page{};
          return read([&](auto& tx) { return history(tx, user, conv, after_seq, limit); });
        },
        [this](list_conv_atom, const std::string& user, const std::string& before,
               int32_t limit) -> caf::result<conversation_page> {
          std::optional<list_cursor> cursor;
          if (!before.empty() && !(cursor = decode_cursor(before)))
            return caf::make_error(caf::sec::invalid_argument, "invalid conversation list cursor");
          return read([&](auto& tx) { return list_conv(tx, user, cursor, limit); });
        },
        [this](find_msg_atom, const std::string& user,
               const std::string& client_msg_id) -> caf::result<append_result> {
          return read([&](auto& tx) {
            append_result r;
            auto rows = tx.exec_prepared(sql::find_client_msg.name, user, client_msg_id);
            if (!rows.empty()) {
              r.duplicate = true;
              r.conversation_id = rows[0][0].template as<std::string>();
              r.message_id = rows[0][1].template as<std::string>();
              r.seq = rows[0][2].template as<int64_t>();
            }
            return r;
          });
        },
        [this](db_ping_atom) -> caf::result<bool> {
          auto res = read([](auto& tx) {
            tx.exec_prepared1(sql::ping.name);
            return true;
          });
          // Readiness wants a yes or no, not an error.
          return res.flag == caf::rt_value;
        },
    };
  }

private:
  /// Runs `fn` in a read-only transaction.
  template<class F>
  auto read(F fn) -> caf::result<decltype(fn(std::declval<pqxx::read_transaction&>()))> {
    return run<pqxx::read_transaction>(std::move(fn));
  }

  /// Runs `fn` in a transaction of type Tx. A lost connection is reopened
  /// and `fn` tried once more: reads have no effects to worry about, and
  /// the one write here (load's recovery) is idempotent. Failures are
  /// transient store errors: nothing was done.
  template<class Tx, class F>
  auto run(F fn) -> caf::result<decltype(fn(std::declval<Tx&>()))> {
    std::string err;
    for (int attempt = 0; attempt < 2; ++attempt) {
      try {
        Tx tx{db_->conn()};
        return fn(tx);
      } catch (const pqxx::broken_connection& e) {
        err = first_line(e);
        db_->drop(name(), e);
      } catch (const std::exception& e) {
        log::error("db_read_failed", {{"error", first_line(e)}});
        return make_store_error(store_failure::transient, "database read failed: " + first_line(e));
      }
    }
    log::error("db_read_failed", {{"error", err}});
    return make_store_error(store_failure::transient, "database unavailable");
  }

  std::unique_ptr<session> db_;
};

} // namespace

reader_actor spawn_reader(caf::actor_system& sys, std::unique_ptr<session> db) {
  return sys.spawn<reader_impl, caf::detached>(std::move(db));
}

} // namespace chat::persistence
