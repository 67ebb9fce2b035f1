#include "persistence/writer.hpp"

#include <algorithm>
#include <chrono>
#include <functional>
#include <optional>
#include <stdexcept>
#include <vector>

#include <caf/all.hpp>

#include "actors/errors.hpp"
#include "common/ids.hpp"
#include "common/log.hpp"
#include "common/metrics.hpp"
#include "persistence/queries.hpp"
#include "persistence/session.hpp"

namespace chat::persistence {

namespace {

// -- SQL of each write --------------------------------------------------------

std::optional<int64_t> ms_or_null(timestamp_ms ms) {
  return ms > 0 ? std::optional<int64_t>{ms} : std::nullopt;
}

std::optional<int64_t> count_or_null(int64_t n) {
  return n >= 0 ? std::optional<int64_t>{n} : std::nullopt;
}

std::optional<std::string> text_or_null(const std::string& s) {
  return s.empty() ? std::nullopt : std::optional<std::string>{s};
}

/// A write that can never succeed as asked (it would overwrite another
/// message, or end a finished reply differently): a permanent failure.
struct write_conflict : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// A write under an epoch that is no longer the conversation's: someone
/// else claimed it (migrations/005_fencing.sql). Nothing was written.
struct fenced_write : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// After a fenced statement took nothing: throws when the fence refused
/// it (returns when the fence let it through and something else did).
void check_fence(pqxx::work& tx, const std::string& conv, int64_t epoch) {
  auto r = tx.exec_prepared(sql::conversation_epoch.name, conv);
  if (r.empty())
    throw write_conflict("conversation " + conv + " does not exist");
  auto current = r[0][0].as<int64_t>();
  if (current != epoch)
    throw fenced_write("conversation " + conv + " is owned under epoch " + std::to_string(current)
                       + ", not " + std::to_string(epoch));
}

write_check check_writes(pqxx::work& tx, const std::string& conv, const std::string& message_id) {
  auto id = looks_like_uuid(message_id) ? std::optional<std::string>{message_id} : std::nullopt;
  auto r = tx.exec_prepared1(sql::check_writes.name, conv, id);
  return {r[0].as<int64_t>(), r[1].as<bool>()};
}

append_result append_user(pqxx::work& tx, const user_message_write& w) {
  auto& m = w.message;
  bool created = false;
  if (w.create_conversation)
    created = !tx.exec_prepared(sql::insert_conversation.name, m.conversation_id, m.user_id,
                                w.title, w.epoch)
                   .empty();
  auto inserted = tx.exec_prepared(sql::insert_user_message.name, m.conversation_id, m.seq, m.id,
                                   m.content, m.user_id, m.client_msg_id, ms_or_null(m.created_at),
                                   text_or_null(m.model), w.epoch);
  if (!inserted.empty()) {
    tx.exec_prepared0(sql::touch_conversation.name, m.conversation_id);
    return {false, m.conversation_id, m.id, m.seq, false};
  }
  check_fence(tx, m.conversation_id, w.epoch);
  // A unique key is taken. The clientMsgId: answer the original and leave
  // no trace.
  if (created)
    tx.exec_prepared0(sql::delete_conversation.name, m.conversation_id);
  auto orig = tx.exec_prepared(sql::find_client_msg.name, m.user_id, m.client_msg_id);
  if (!orig.empty()) {
    append_result r{true, orig[0][0].as<std::string>(), orig[0][1].as<std::string>(),
                    orig[0][2].as<int64_t>(), false};
    // Finding our own id means this is a retry of a write whose commit we
    // could not confirm: it did commit, and it is no duplicate.
    if (r.message_id == m.id)
      r.duplicate = false;
    return r;
  }
  // The seq: another message holds it. The database decides what the next
  // one is; the caller asks again with it.
  append_result r;
  r.conversation_id = m.conversation_id;
  r.seq_taken = true;
  r.seq = check_writes(tx, m.conversation_id, {}).last_seq;
  return r;
}

/// After an upsert took nothing, the row holding `m.id`: it must be m's
/// reply, finished already (an in-progress one would have been taken);
/// anything else (another message's id, another place) throws.
pqxx::row finished_reply(pqxx::work& tx, const stored_message& m, const char* what) {
  auto r = tx.exec_prepared1(sql::find_reply.name, m.id);
  if (r[0].as<std::string>() != m.conversation_id || r[1].as<int64_t>() != m.seq
      || r[2].as<std::string>() != "assistant" || r[3].is_null())
    throw write_conflict(std::string{what} + ": message id " + m.id
                         + " is already used by another message");
  return r;
}

/// Saves what was streamed so far of a reply. `false` (nothing written)
/// when that reply is already finished: a checkpoint never undoes its end.
bool checkpoint(pqxx::work& tx, const stored_message& m, const std::string& process,
                int64_t epoch) {
  auto res = tx.exec_prepared(sql::checkpoint_reply.name, m.conversation_id, m.seq, m.id, m.content,
                              m.user_id, text_or_null(m.reply_to), text_or_null(m.model),
                              ms_or_null(m.created_at), process, epoch);
  if (!res.empty())
    return true;
  check_fence(tx, m.conversation_id, epoch);
  finished_reply(tx, m, "checkpoint");
  return false;
}

/// Inserts a finished reply or completes its checkpointed row. Writing the
/// same finished reply again (a retry whose first answer was lost) is a
/// no-op answered true; another end for a finished reply is an error.
bool append_reply(pqxx::work& tx, const stored_message& m, int64_t epoch) {
  auto res = tx.exec_prepared(sql::upsert_reply.name, m.conversation_id, m.seq, m.id, m.content,
                              m.user_id, text_or_null(m.reply_to), text_or_null(m.model),
                              text_or_null(m.finish_reason), count_or_null(m.prompt_tokens),
                              count_or_null(m.completion_tokens), ms_or_null(m.created_at), epoch);
  if (res.empty()) {
    check_fence(tx, m.conversation_id, epoch);
    auto r = finished_reply(tx, m, "append_reply");
    if (r[3].as<std::string>() != m.finish_reason || r[4].as<std::string>() != m.content)
      throw write_conflict("append_reply: reply " + m.id + " is already stored with another end");
    return true; // stored before, identically; updated_at was bumped then
  }
  tx.exec_prepared0(sql::touch_conversation.name, m.conversation_id);
  return true;
}

bool remove_conv(pqxx::work& tx, const std::string& user, const std::string& conv) {
  auto res = tx.exec_prepared(sql::remove_conversation.name, conv, user);
  return res.affected_rows() > 0;
}

// -- pending writes -----------------------------------------------------------

/// A write waiting for its batch: runs its SQL inside a given transaction,
/// keeps the answer, and delivers it only once told the batch committed.
class pending_write {
public:
  virtual ~pending_write() = default;
  virtual void apply(pqxx::work& tx) = 0;
  virtual void deliver() = 0;
  virtual void fail(caf::error err) = 0;
};

template<class T>
class write_op final : public pending_write {
public:
  using sql_fn = std::function<T(pqxx::work&)>;

  write_op(caf::typed_response_promise<T> rp, sql_fn fn) : rp_(std::move(rp)), fn_(std::move(fn)) {}

  void apply(pqxx::work& tx) override {
    result_ = fn_(tx);
  }

  void deliver() override {
    rp_.deliver(std::move(result_));
  }

  void fail(caf::error err) override {
    rp_.deliver(std::move(err));
  }

private:
  caf::typed_response_promise<T> rp_;
  sql_fn fn_;
  T result_{};
};

using batch = std::vector<std::unique_ptr<pending_write>>;

// -- the actor ----------------------------------------------------------------

/// How a write transaction ended.
enum class outcome {
  committed,
  bad_write, // rolled back because of a write that can never succeed
  fenced,    // rolled back because of a write under a stale epoch
  transient, // rolled back, or never reached the database
  in_doubt,  // COMMIT was sent and its answer lost
};

/// Which failures are the writes' own fault (retrying them is pointless)
/// and which are the database's state (a timeout, a lock, a restart).
outcome classify(const std::exception& e) {
  if (dynamic_cast<const fenced_write*>(&e) != nullptr)
    return outcome::fenced;
  if (dynamic_cast<const write_conflict*>(&e) != nullptr
      || dynamic_cast<const pqxx::usage_error*>(&e) != nullptr
      || dynamic_cast<const pqxx::conversion_error*>(&e) != nullptr
      || dynamic_cast<const pqxx::argument_error*>(&e) != nullptr)
    return outcome::bad_write;
  if (auto* sql = dynamic_cast<const pqxx::sql_error*>(&e)) {
    auto cls = sql->sqlstate().substr(0, 2);
    // 22 data exception (e.g. invalid text), 23 integrity constraint,
    // 42 syntax or access rule: the same write fails again.
    if (cls == "22" || cls == "23" || cls == "42")
      return outcome::bad_write;
  }
  // Statement timeout (57014), lock or deadlock (55P03, 40P01),
  // serialization (40001), shutdown (57P01), resources (53xxx), ...
  return outcome::transient;
}

store_failure failure_of(outcome o) {
  switch (o) {
    case outcome::bad_write:
      return store_failure::permanent;
    case outcome::fenced:
      return store_failure::fenced;
    case outcome::in_doubt:
      return store_failure::unknown;
    default:
      return store_failure::transient;
  }
}

class writer_impl : public writer_actor::base {
public:
  writer_impl(caf::actor_config& cfg, std::unique_ptr<session> db, size_t max_batch)
      : writer_actor::base(cfg), db_(std::move(db)), max_batch_(std::max<size_t>(1, max_batch)) {}

  const char* name() const override {
    return "chat.persistence.writer";
  }

  behavior_type make_behavior() override {
    return {
        [this](append_user_atom, user_message_write& w) -> caf::result<append_result> {
          return enqueue<append_result>(
              [w{std::move(w)}](pqxx::work& tx) { return append_user(tx, w); });
        },
        [this](append_reply_atom, stored_message& m, int64_t epoch) -> caf::result<bool> {
          // Without one the row would read as in progress: never shown.
          if (m.finish_reason.empty())
            return caf::make_error(caf::sec::invalid_argument,
                                   "append_reply without a finish_reason");
          return enqueue<bool>(
              [m{std::move(m)}, epoch](pqxx::work& tx) { return append_reply(tx, m, epoch); });
        },
        [this](checkpoint_atom, stored_message& m, std::string& process,
               int64_t epoch) -> caf::result<bool> {
          // Without its process the row could never be recovered after a
          // crash.
          if (!looks_like_uuid(process))
            return caf::make_error(caf::sec::invalid_argument, "checkpoint without a process id");
          return enqueue<bool>(
              [m{std::move(m)}, process{std::move(process)}, epoch](pqxx::work& tx) {
                return checkpoint(tx, m, process, epoch);
              });
        },
        [this](db_check_atom, std::string& conv, std::string& id) -> caf::result<write_check> {
          if (!looks_like_uuid(conv))
            return write_check{};
          // In the writer's order: every write sent before this has ended.
          return enqueue<write_check>([conv{std::move(conv)}, id{std::move(id)}](pqxx::work& tx) {
            return check_writes(tx, conv, id);
          });
        },
        [this](remove_conv_atom, std::string& user, std::string& conv) -> caf::result<bool> {
          if (!looks_like_uuid(conv))
            return false;
          return enqueue<bool>([user{std::move(user)}, conv{std::move(conv)}](pqxx::work& tx) {
            return remove_conv(tx, user, conv);
          });
        },
        [this](db_stats_atom) -> caf::result<int64_t, int64_t, int64_t> {
          return {transactions_, writes_, largest_batch_};
        },
        [this](flush_atom) { flush(); },
    };
  }

private:
  template<class T>
  caf::typed_response_promise<T> enqueue(typename write_op<T>::sql_fn fn) {
    auto rp = make_response_promise<T>();
    pending_.push_back(std::make_unique<write_op<T>>(rp, std::move(fn)));
    request_flush();
    return rp;
  }

  // The flush lands behind every write already in the mailbox, so those
  // join this batch; writes arriving while it commits form the next one.
  void request_flush() {
    if (flush_queued_)
      return;
    flush_queued_ = true;
    send(caf::actor_cast<writer_actor>(this), flush_atom::value);
  }

  void flush() {
    flush_queued_ = false;
    auto n = std::min(pending_.size(), max_batch_);
    batch current;
    current.reserve(n);
    std::move(pending_.begin(), pending_.begin() + n, std::back_inserter(current));
    pending_.erase(pending_.begin(), pending_.begin() + n);
    if (!pending_.empty())
      request_flush();
    writes_ += static_cast<int64_t>(n);
    largest_batch_ = std::max(largest_batch_, static_cast<int64_t>(n));
    auto start = std::chrono::steady_clock::now();
    std::string err;
    auto result = transact(current, err);
    if (result == outcome::committed) {
      auto& m = metrics::global();
      m.db_commit.observe(std::chrono::steady_clock::now() - start);
      m.db_batch_size.observe(static_cast<int64_t>(n));
      for (auto& w : current)
        w->deliver();
      log::debug("db_batch_committed",
                 {{"writes", static_cast<int64_t>(n)}, {"ms", elapsed_ms(start)}});
      return;
    }
    bool one_write_failed = result == outcome::bad_write || result == outcome::fenced;
    if (!one_write_failed || n == 1) {
      // The database's state, not one write, failed the batch (or the
      // batch is that one write): each write is told how.
      log::warn(
          "db_batch_failed",
          {{"writes", static_cast<int64_t>(n)}, {"error", err}, {"outcome", to_string(result)}});
      for (auto& w : current)
        w->fail(make_store_error(failure_of(result), "database write failed: " + err));
      return;
    }
    log::warn("db_batch_failed",
              {{"writes", static_cast<int64_t>(n)}, {"error", err}, {"retry", "one by one"}});
    // One bad write must not fail the others: each alone in its own
    // transaction.
    for (auto& w : current) {
      batch one;
      one.push_back(std::move(w));
      std::string one_err;
      auto one_result = transact(one, one_err);
      if (one_result == outcome::committed) {
        one.front()->deliver();
      } else {
        log::warn("db_write_failed", {{"error", one_err}, {"outcome", to_string(one_result)}});
        one.front()->fail(
            make_store_error(failure_of(one_result), "database write failed: " + one_err));
      }
    }
  }

  static const char* to_string(outcome o) {
    switch (o) {
      case outcome::committed:
        return "committed";
      case outcome::bad_write:
        return "bad_write";
      case outcome::fenced:
        return "fenced";
      case outcome::transient:
        return "transient";
      case outcome::in_doubt:
        return "in_doubt";
    }
    return "?";
  }

  /// Runs all of `writes` in one transaction. A connection lost before
  /// COMMIT rolled everything back, so it reconnects and tries once more.
  outcome transact(batch& writes, std::string& err) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      try {
        auto& conn = db_->conn();
        ++transactions_;
        pqxx::work tx{conn};
        for (auto& w : writes)
          w->apply(tx);
        tx.commit();
        return outcome::committed;
      } catch (const pqxx::in_doubt_error& e) {
        // The commit may or may not have happened: the callers find out
        // by reading (db_check), never by assuming.
        err = first_line(e);
        db_->drop(name(), e);
        return outcome::in_doubt;
      } catch (const pqxx::broken_connection& e) {
        err = first_line(e);
        db_->drop(name(), e);
      } catch (const std::exception& e) {
        err = first_line(e);
        return classify(e);
      }
    }
    return outcome::transient;
  }

  static int64_t elapsed_ms(std::chrono::steady_clock::time_point start) {
    using namespace std::chrono;
    return duration_cast<milliseconds>(steady_clock::now() - start).count();
  }

  std::unique_ptr<session> db_;
  size_t max_batch_;
  batch pending_;
  bool flush_queued_ = false;
  int64_t transactions_ = 0;
  int64_t writes_ = 0;
  int64_t largest_batch_ = 0;
};

} // namespace

writer_actor spawn_writer(caf::actor_system& sys, std::unique_ptr<session> db, size_t max_batch) {
  return sys.spawn<writer_impl, caf::detached>(std::move(db), max_batch);
}

} // namespace chat::persistence
