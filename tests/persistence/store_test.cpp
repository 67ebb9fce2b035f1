#include "persistence/store.hpp"

#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <future>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include <caf/all.hpp>
#include <pqxx/pqxx>

#include "actors/errors.hpp"
#include "common/ids.hpp"
#include "persistence/membership.hpp"
#include "persistence/migrations.hpp"
#include "persistence/store_stats.hpp"

using namespace chat;
using namespace std::chrono_literals;
using persistence::db_stats_atom;
using persistence::store_actor;

namespace {

constexpr auto timeout = std::chrono::seconds(30);

std::string database_url() {
  if (auto url = std::getenv("CHAT_TEST_DATABASE_URL"))
    return url;
#ifdef CHAT_TEST_DATABASE_URL_FALLBACK
  return CHAT_TEST_DATABASE_URL_FALLBACK;
#else
  FAIL("CHAT_TEST_DATABASE_URL is not set");
  return {};
#endif
}

/// The test URL with one more query parameter (ours always has a '?').
std::string with_param(const std::string& url, const std::string& param) {
  return url + (url.find('?') == std::string::npos ? "?" : "&") + param;
}

/// A running store on a migrated database, one per test case; each test
/// uses fresh user ids, since all cases share the database.
struct store_fixture {
  store_fixture() : url(database_url()) {
    persistence::migrate(url);
    store = persistence::spawn_store(sys, {url, 2, 512, {}});
    registration = persistence::register_process(url, "store-test");
    live = registration.process_id;
  }

  ~store_fixture() {
    caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
  }

  /// Asks the store and waits; a caf::error fails the test.
  template<class T, class... Ts>
  T ask(Ts&&... xs) {
    auto res = try_ask<T>(std::forward<Ts>(xs)...);
    REQUIRE_MESSAGE(res, sys.render(res.error()));
    return std::move(*res);
  }

  template<class T, class... Ts>
  caf::expected<T> try_ask(Ts&&... xs) {
    caf::expected<T> out{caf::sec::request_timeout};
    self->request(store, timeout, std::forward<Ts>(xs)...)
        .receive([&](T& x) { out = std::move(x); }, [&](caf::error& e) { out = std::move(e); });
    return out;
  }

  /// (transactions, writes, largest batch) of the writer so far.
  std::tuple<int64_t, int64_t, int64_t> stats() {
    std::tuple<int64_t, int64_t, int64_t> out;
    self->request(caf::actor_cast<store_actor>(store), timeout, db_stats_atom::value)
        .receive(
            [&](int64_t tx, int64_t w, int64_t largest) { out = std::make_tuple(tx, w, largest); },
            [&](caf::error& e) { FAIL(sys.render(e)); });
    return out;
  }

  append_result append(const user_message_write& w) {
    return ask<append_result>(append_user_atom::value, with_epoch(w));
  }

  /// Loads (and so claims) a conversation: the test's writes to it carry
  /// the new epoch from then on.
  conversation_snapshot load(const std::string& conv) {
    auto s = ask<conversation_snapshot>(load_conv_atom::value, conv);
    if (s.found)
      epochs[conv] = s.epoch;
    return s;
  }

  /// The fencing token this test writes `m`'s conversation with: 0 (what
  /// user_msg creates conversations with) until the test loads it.
  int64_t epoch_of(const stored_message& m) {
    return epochs[m.conversation_id];
  }

  user_message_write with_epoch(user_message_write w) {
    w.epoch = epochs[w.message.conversation_id];
    return w;
  }

  message_page history(const std::string& user, const std::string& conv, int64_t after,
                       int32_t limit) {
    return ask<message_page>(history_atom::value, user, conv, after, limit);
  }

  conversation_page list(const std::string& user, const std::string& before, int32_t limit) {
    return ask<conversation_page>(list_conv_atom::value, user, before, limit);
  }

  /// A value straight from the database, behind the store's back.
  int64_t count(const std::string& query) {
    pqxx::connection c{url};
    pqxx::nontransaction tx{c};
    return tx.exec1(query)[0].as<int64_t>();
  }

  /// A text value (NULL as "<null>") straight from the database.
  std::string text(const std::string& query) {
    pqxx::connection c{url};
    pqxx::nontransaction tx{c};
    return tx.exec1(query)[0].as<std::string>("<null>");
  }

  bool checkpoint(const stored_message& m, const std::string& node) {
    return ask<bool>(checkpoint_atom::value, m, node, epoch_of(m));
  }

  std::map<std::string, int64_t> epochs; // conversation -> this test's token
  std::string url;
  std::string live; // a process id that is alive while the test runs
  persistence::process_registration registration;
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  persistence_actor store;
};

user_message_write user_msg(const std::string& user, const std::string& conv, int64_t seq,
                            const std::string& client_msg_id, bool create,
                            const std::string& content = "hello") {
  user_message_write w;
  w.message.id = new_uuid();
  w.message.conversation_id = conv;
  w.message.seq = seq;
  w.message.role = "user";
  w.message.content = content;
  w.message.user_id = user;
  w.message.client_msg_id = client_msg_id;
  w.message.created_at = now_ms();
  w.create_conversation = create;
  w.title = content;
  return w;
}

stored_message reply_msg(const std::string& user, const std::string& conv, int64_t seq,
                         const std::string& reply_to) {
  stored_message m;
  m.id = new_uuid();
  m.conversation_id = conv;
  m.seq = seq;
  m.role = "assistant";
  m.content = "an answer";
  m.user_id = user;
  m.reply_to = reply_to;
  m.model = "gpt-4o-mini";
  m.finish_reason = "stop";
  m.prompt_tokens = 9;
  m.completion_tokens = 12;
  m.created_at = now_ms();
  return m;
}

/// What a conversation checkpoints of a reply being generated.
stored_message in_progress(const std::string& user, const std::string& conv, int64_t seq,
                           const std::string& reply_to, const std::string& content) {
  auto m = reply_msg(user, conv, seq, reply_to);
  m.content = content;
  m.finish_reason.clear();
  m.prompt_tokens = -1;
  m.completion_tokens = -1;
  return m;
}

/// A node id of its own for each test (all cases share the database).
/// The id of a process that is not alive (never registered): its
/// in-progress replies are recoverable by anyone.
std::string test_node() {
  return new_uuid();
}

std::string sql_literal(const std::string& s) {
  return "'" + s + "'"; // only for our own uuids
}

} // namespace

TEST_CASE("persistence: migrate twice is idempotent") {
  auto url = database_url();
  persistence::migrate(url);
  CHECK(persistence::migrate(url) == 0);
}

TEST_CASE("persistence: migrate on a fresh database, from two nodes at once") {
  auto url = database_url();
  auto at = url.find("/chat?");
  if (at == std::string::npos) {
    MESSAGE("database URL not of the test cluster's shape, skipped");
    return;
  }
  auto db = "chat_migrate_" + new_uuid().substr(0, 8);
  auto fresh = url;
  fresh.replace(at, 6, "/" + db + "?");
  {
    pqxx::connection c{url};
    pqxx::nontransaction{c}.exec("CREATE DATABASE " + db);
  }
  auto n = static_cast<int>(persistence::migrations().size());
  auto a = std::async(std::launch::async, [&] { return persistence::migrate(fresh); });
  auto b = std::async(std::launch::async, [&] { return persistence::migrate(fresh); });
  auto applied_a = a.get();
  auto applied_b = b.get();
  CHECK(applied_a + applied_b == n); // one did the work, the other waited
  CHECK(persistence::migrate(fresh) == 0);
  {
    pqxx::connection c{fresh};
    pqxx::nontransaction tx{c};
    CHECK(tx.exec1("SELECT count(*) FROM schema_migrations")[0].as<int>() == n);
  }
  pqxx::connection c{url};
  pqxx::nontransaction{c}.exec("DROP DATABASE " + db);
}

TEST_CASE("persistence: migrate reports an unreachable database clearly") {
  try {
    persistence::migrate("postgresql:///nope?host=/nonexistent&port=1");
    FAIL("no exception");
  } catch (const std::runtime_error& e) {
    CHECK(std::string{e.what()}.find("cannot connect") != std::string::npos);
  }
}

TEST_CASE("persistence: spawn_store throws when the database cannot be reached") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  CHECK_THROWS_AS(
      persistence::spawn_store(sys, {"postgresql:///nope?host=/nonexistent&port=1", 2, 512, {}}),
      std::runtime_error);
}

TEST_CASE_FIXTURE(store_fixture, "persistence: db_ping answers true") {
  CHECK(ask<bool>(db_ping_atom::value));
}

TEST_CASE_FIXTURE(store_fixture, "persistence: append a user message to a new conversation, "
                                 "then load it") {
  auto user = new_uuid();
  auto conv = new_uuid();
  auto w = user_msg(user, conv, 1, "c1", true, "Hello there");
  auto ack = append(w);
  CHECK_FALSE(ack.duplicate);
  CHECK(ack.conversation_id == conv);
  CHECK(ack.message_id == w.message.id);
  CHECK(ack.seq == 1);

  auto snap = load(conv);
  CHECK(snap.found);
  CHECK(snap.owner == user);
  CHECK(snap.last_seq == 1);
  REQUIRE(snap.recent.size() == 1);
  auto& m = snap.recent[0];
  CHECK(m.id == w.message.id);
  CHECK(m.conversation_id == conv);
  CHECK(m.role == "user");
  CHECK(m.content == "Hello there");
  CHECK(m.user_id == user);
  CHECK(m.client_msg_id == "c1");
  CHECK(m.reply_to.empty());
  CHECK(m.prompt_tokens == -1);
  CHECK(m.created_at == w.message.created_at); // ms survive the round trip

  auto page = list(user, "", 10);
  REQUIRE(page.conversations.size() == 1);
  CHECK(page.conversations[0].id == conv);
  CHECK(page.conversations[0].title == "Hello there");
  CHECK(page.next_before.empty());

  CHECK_FALSE(load(new_uuid()).found);
}

TEST_CASE_FIXTURE(store_fixture, "persistence: append_reply stores an assistant message") {
  auto user = new_uuid();
  auto conv = new_uuid();
  auto w = user_msg(user, conv, 1, "c1", true);
  append(w);
  auto before = list(user, "", 1).conversations.at(0).updated_at;
  std::this_thread::sleep_for(5ms); // so that updated_at visibly moves
  auto r = reply_msg(user, conv, 2, w.message.id);
  CHECK(ask<bool>(append_reply_atom::value, r, epoch_of(r)));
  auto r2 = reply_msg("", conv, 3, w.message.id); // owner filled in by SQL
  r2.model.clear();
  r2.finish_reason = "error";
  r2.prompt_tokens = -1;
  r2.completion_tokens = -1;
  r2.created_at = 0; // the database's now()
  CHECK(ask<bool>(append_reply_atom::value, r2, epoch_of(r2)));

  auto snap = load(conv);
  CHECK(snap.last_seq == 3);
  REQUIRE(snap.recent.size() == 3);
  auto& a = snap.recent[1];
  CHECK(a.id == r.id);
  CHECK(a.role == "assistant");
  CHECK(a.content == "an answer");
  CHECK(a.reply_to == w.message.id);
  CHECK(a.model == "gpt-4o-mini");
  CHECK(a.finish_reason == "stop");
  CHECK(a.prompt_tokens == 9);
  CHECK(a.completion_tokens == 12);
  CHECK(a.client_msg_id.empty());
  CHECK(a.created_at == r.created_at);
  auto& b = snap.recent[2];
  CHECK(b.user_id == user);
  CHECK(b.model.empty());
  CHECK(b.finish_reason == "error");
  CHECK(b.prompt_tokens == -1);
  CHECK(b.completion_tokens == -1);
  CHECK(b.created_at > 0);
  CHECK(list(user, "", 1).conversations.at(0).updated_at > before);

  // The same reply again (a retry whose answer was lost) changes nothing;
  // another end for it is an error, no crash.
  CHECK(ask<bool>(append_reply_atom::value, r, epoch_of(r)));
  auto other_end = r;
  other_end.finish_reason = "length";
  CHECK_FALSE(try_ask<bool>(append_reply_atom::value, other_end, epoch_of(other_end)));
  other_end = r;
  other_end.content = "another answer";
  CHECK_FALSE(try_ask<bool>(append_reply_atom::value, other_end, epoch_of(other_end)));
  // Its id at another seq, or a user message's id: errors too.
  other_end = r;
  other_end.seq = 4;
  CHECK_FALSE(try_ask<bool>(append_reply_atom::value, other_end, epoch_of(other_end)));
  other_end = reply_msg(user, conv, 4, w.message.id);
  other_end.id = w.message.id;
  CHECK_FALSE(try_ask<bool>(append_reply_atom::value, other_end, epoch_of(other_end)));
  CHECK(count("SELECT count(*) FROM messages WHERE conversation_id = " + sql_literal(conv)) == 3);
  CHECK(text("SELECT content FROM messages WHERE id = " + sql_literal(r.id)) == "an answer");
  // Without a finish_reason it would read as in progress: refused.
  auto unfinished = reply_msg(user, conv, 4, w.message.id);
  unfinished.finish_reason.clear();
  auto refused = try_ask<bool>(append_reply_atom::value, unfinished, epoch_of(unfinished));
  REQUIRE_FALSE(refused);
  CHECK(refused.error() == caf::sec::invalid_argument);
  CHECK(load(conv).last_seq == 3);
}

TEST_CASE_FIXTURE(store_fixture, "persistence: a repeated clientMsgId answers the original "
                                 "and writes nothing") {
  auto user = new_uuid();
  auto conv_a = new_uuid();
  auto first = user_msg(user, conv_a, 1, "dup-1", true, "first");
  auto ack = append(first);
  CHECK_FALSE(ack.duplicate);

  // Same conversation, next seq, other content.
  auto same = append(user_msg(user, conv_a, 2, "dup-1", false, "again"));
  CHECK(same.duplicate);
  CHECK(same.conversation_id == conv_a);
  CHECK(same.message_id == first.message.id);
  CHECK(same.seq == 1);

  // As the first message of a new conversation: no empty one stays behind.
  auto conv_b = new_uuid();
  auto fresh = append(user_msg(user, conv_b, 1, "dup-1", true, "new conv"));
  CHECK(fresh.duplicate);
  CHECK(fresh.conversation_id == conv_a);
  CHECK(fresh.message_id == first.message.id);
  CHECK_FALSE(load(conv_b).found);

  // Into another existing conversation of the user.
  auto conv_c = new_uuid();
  append(user_msg(user, conv_c, 1, "other", true));
  auto other = append(user_msg(user, conv_c, 2, "dup-1", false));
  CHECK(other.duplicate);
  CHECK(other.conversation_id == conv_a);
  CHECK(load(conv_c).last_seq == 1);

  CHECK(load(conv_a).last_seq == 1);
  CHECK(count("SELECT count(*) FROM messages WHERE user_id = " + sql_literal(user)) == 2);
  CHECK(count("SELECT count(*) FROM conversations WHERE user_id = " + sql_literal(user)) == 2);

  // Another user may use the same clientMsgId.
  auto stranger = append(user_msg(new_uuid(), new_uuid(), 1, "dup-1", true));
  CHECK_FALSE(stranger.duplicate);
}

TEST_CASE_FIXTURE(store_fixture, "persistence: a repeated clientMsgId within one batch") {
  auto user = new_uuid();
  std::vector<user_message_write> writes;
  for (int i = 0; i < 5; ++i)
    writes.push_back(user_msg(user, new_uuid(), 1, "same", true));
  // Sent together, so they land in one batch (or few).
  std::vector<decltype(self->request(store, timeout, append_user_atom::value, with_epoch(writes[0])))> pending;
  for (auto& w : writes)
    pending.push_back(self->request(store, timeout, append_user_atom::value, with_epoch(w)));
  std::set<std::string> ids;
  int originals = 0;
  for (auto& p : pending)
    p.receive(
        [&](append_result& r) {
          originals += r.duplicate ? 0 : 1;
          ids.insert(r.message_id);
        },
        [&](caf::error& e) { FAIL(sys.render(e)); });
  CHECK(originals == 1);
  CHECK(ids.size() == 1);
  CHECK(count("SELECT count(*) FROM conversations WHERE user_id = " + sql_literal(user)) == 1);
}

TEST_CASE_FIXTURE(store_fixture, "persistence: the database enforces unique seqs, a bad write "
                                 "fails only itself, permanently") {
  auto user = new_uuid();
  auto conv = new_uuid();
  auto first = append(user_msg(user, conv, 1, "s1", true));
  // Sequentially: seq 1 again is refused, with the last seq to try after.
  auto clash
      = try_ask<append_result>(append_user_atom::value, user_msg(user, conv, 1, "s2", false));
  REQUIRE(clash);
  CHECK(clash->seq_taken);
  CHECK(clash->seq == 1);
  // The refused send did not use up its clientMsgId.
  auto ok = append(user_msg(user, conv, 2, "s2", false));
  CHECK_FALSE(ok.duplicate);
  CHECK_FALSE(ok.seq_taken);

  // In one batch with good writes: only the bad one (a reply that would
  // overwrite a user message) fails, as permanent.
  auto [tx_before, w_before, l_before] = stats();
  std::vector<user_message_write> writes;
  for (int i = 0; i < 10; ++i)
    writes.push_back(user_msg(user, new_uuid(), 1, "b" + std::to_string(i), true));
  auto bad = reply_msg(user, conv, 3, first.message_id);
  bad.id = first.message_id;
  auto bad_reply = self->request(store, timeout, append_reply_atom::value, bad, epoch_of(bad));
  std::vector<decltype(self->request(store, timeout, append_user_atom::value, with_epoch(writes[0])))> pending;
  for (auto& w : writes)
    pending.push_back(self->request(store, timeout, append_user_atom::value, with_epoch(w)));
  int acked = 0;
  int failed = 0;
  for (auto& p : pending)
    p.receive([&](append_result&) { ++acked; }, [&](caf::error&) { ++failed; });
  store_failure kind = store_failure::transient;
  bad_reply.receive([&](bool) { FAIL("a reply overwrote a user message"); },
                    [&](caf::error& e) { kind = classify_store_error(e); });
  CHECK(acked == 10);
  CHECK(failed == 0);
  CHECK(kind == store_failure::permanent);
  auto [tx_after, w_after, l_after] = stats();
  MESSAGE("11 writes with one bad: ", tx_after - tx_before, " transactions");
  CHECK(w_after - w_before == 11);
  CHECK(load(conv).last_seq == 2);
}

TEST_CASE_FIXTURE(store_fixture, "persistence: concurrent appends are group-committed") {
  constexpr int n = 200;
  auto [tx_before, w_before, l_before] = stats();
  std::vector<user_message_write> writes;
  for (int i = 0; i < n; ++i)
    writes.push_back(user_msg(new_uuid(), new_uuid(), 1, "g" + std::to_string(i), true));
  auto start = std::chrono::steady_clock::now();
  std::vector<decltype(self->request(store, timeout, append_user_atom::value, with_epoch(writes[0])))> pending;
  for (auto& w : writes)
    pending.push_back(self->request(store, timeout, append_user_atom::value, with_epoch(w)));
  int acked = 0;
  for (auto& p : pending)
    p.receive([&](append_result& r) { acked += r.duplicate ? 0 : 1; },
              [&](caf::error& e) { FAIL(sys.render(e)); });
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now()
                                                                  - start)
                .count();
  CHECK(acked == n);
  auto [tx_after, w_after, l_after] = stats();
  auto transactions = tx_after - tx_before;
  MESSAGE(n, " concurrent appends: ", transactions,
          " transactions, largest "
          "batch ",
          l_after, ", ", ms, " ms");
  CHECK(w_after - w_before == n);
  CHECK(transactions < n);
  CHECK(l_after > 1);
  for (auto& w : writes) // every ack was committed
    CHECK(load(w.message.conversation_id).last_seq == 1);
}

TEST_CASE_FIXTURE(store_fixture, "persistence: history pages in seq order, for the owner "
                                 "only") {
  auto user = new_uuid();
  auto conv = new_uuid();
  auto q = user_msg(user, conv, 1, "h1", true);
  append(q);
  ask<bool>(append_reply_atom::value, reply_msg(user, conv, 2, q.message.id), epochs[conv]);
  append(user_msg(user, conv, 3, "h3", false));
  ask<bool>(append_reply_atom::value, reply_msg(user, conv, 4, q.message.id), epochs[conv]);
  append(user_msg(user, conv, 5, "h5", false));

  auto seqs = [](const message_page& p) {
    std::vector<int64_t> out;
    for (auto& m : p.messages)
      out.push_back(m.seq);
    return out;
  };
  auto p1 = history(user, conv, 0, 2);
  CHECK(p1.found);
  CHECK(seqs(p1) == std::vector<int64_t>{1, 2});
  CHECK(p1.messages[1].role == "assistant");
  CHECK(seqs(history(user, conv, 2, 2)) == std::vector<int64_t>{3, 4});
  CHECK(seqs(history(user, conv, 4, 100)) == std::vector<int64_t>{5});
  auto end = history(user, conv, 5, 100);
  CHECK(end.found);
  CHECK(end.messages.empty());

  // Another user's conversation is answered like a missing one.
  auto theirs = history(new_uuid(), conv, 0, 100);
  CHECK_FALSE(theirs.found);
  CHECK(theirs.messages.empty());
  CHECK_FALSE(history(user, new_uuid(), 0, 100).found);
}

TEST_CASE_FIXTURE(store_fixture, "persistence: list_conv pages newest first with a "
                                 "cursor") {
  auto user = new_uuid();
  std::vector<std::string> convs; // oldest first
  for (int i = 0; i < 5; ++i) {
    convs.push_back(new_uuid());
    append(user_msg(user, convs.back(), 1, "l" + std::to_string(i), true));
  }
  // A new message moves the oldest to the top.
  append(user_msg(user, convs[0], 2, "l-again", false));
  std::vector<std::string> expected{convs[0], convs[4], convs[3], convs[2], convs[1]};

  std::vector<std::string> seen;
  std::string cursor;
  int pages = 0;
  do {
    auto page = list(user, cursor, 2);
    ++pages;
    CHECK(page.conversations.size() <= 2);
    for (auto& c : page.conversations)
      seen.push_back(c.id);
    cursor = page.next_before;
  } while (!cursor.empty() && pages < 10);
  CHECK(pages == 3);
  CHECK(seen == expected);

  // A page that ends exactly at the last conversation is the last page.
  auto all = list(user, "", 5);
  CHECK(all.conversations.size() == 5);
  CHECK(all.next_before.empty());
  for (size_t i = 1; i < all.conversations.size(); ++i)
    CHECK(all.conversations[i - 1].updated_at >= all.conversations[i].updated_at);

  CHECK(list(new_uuid(), "", 10).conversations.empty());

  // A cursor we did not make is a client error.
  auto bad
      = try_ask<conversation_page>(list_conv_atom::value, user, std::string{"not-a-cursor"}, 2);
  REQUIRE_FALSE(bad);
  CHECK(bad.error() == caf::sec::invalid_argument);
}

TEST_CASE_FIXTURE(store_fixture, "persistence: list_conv pages through equal updated_at") {
  // Created in one batch, they share one transaction time: only the id
  // orders them, and the cursor must still see each exactly once.
  auto user = new_uuid();
  std::vector<user_message_write> writes;
  for (int i = 0; i < 6; ++i)
    writes.push_back(user_msg(user, new_uuid(), 1, "t" + std::to_string(i), true));
  std::vector<decltype(self->request(store, timeout, append_user_atom::value, with_epoch(writes[0])))> pending;
  for (auto& w : writes)
    pending.push_back(self->request(store, timeout, append_user_atom::value, with_epoch(w)));
  for (auto& p : pending)
    p.receive([](append_result&) {}, [&](caf::error& e) { FAIL(sys.render(e)); });
  std::vector<std::string> seen;
  std::string cursor;
  for (int i = 0; i < 10; ++i) {
    auto page = list(user, cursor, 1);
    for (auto& c : page.conversations)
      seen.push_back(c.id);
    cursor = page.next_before;
    if (cursor.empty())
      break;
  }
  CHECK(seen.size() == 6);
  CHECK(std::set<std::string>(seen.begin(), seen.end()).size() == 6);
  CHECK(seen == [&] {
    std::vector<std::string> ids;
    for (auto& c : list(user, "", 10).conversations)
      ids.push_back(c.id);
    return ids;
  }());
}

TEST_CASE_FIXTURE(store_fixture, "persistence: remove_conv deletes only the owner's "
                                 "conversation") {
  auto user = new_uuid();
  auto conv = new_uuid();
  auto q = user_msg(user, conv, 1, "r1", true);
  append(q);
  ask<bool>(append_reply_atom::value, reply_msg(user, conv, 2, q.message.id), epochs[conv]);

  CHECK_FALSE(ask<bool>(remove_conv_atom::value, new_uuid(), std::string{conv}));
  CHECK(load(conv).found);

  CHECK(ask<bool>(remove_conv_atom::value, user, std::string{conv}));
  CHECK_FALSE(load(conv).found);
  CHECK_FALSE(history(user, conv, 0, 100).found);
  CHECK(count("SELECT count(*) FROM messages WHERE conversation_id = " + sql_literal(conv)) == 0);
  CHECK_FALSE(ask<bool>(remove_conv_atom::value, user, std::string{conv}));
  // The clientMsgId went with it.
  CHECK_FALSE(append(user_msg(user, new_uuid(), 1, "r1", true)).duplicate);
}

TEST_CASE_FIXTURE(store_fixture, "persistence: ids that are not UUIDs are not found") {
  auto user = new_uuid();
  for (std::string id :
       {"", "abc", "'; DROP TABLE messages; --", "0b6a2f4e-7c1d-4f5e-9a3b-2c4d6e8f0a1"}) {
    CHECK_FALSE(load(id).found);
    CHECK_FALSE(history(user, id, 0, 10).found);
    CHECK_FALSE(ask<bool>(remove_conv_atom::value, user, id));
  }
  CHECK(ask<bool>(db_ping_atom::value)); // and nothing broke
}

TEST_CASE("persistence: the store reconnects when its connections are killed") {
  // Our own application_name, so we kill only this test's connections.
  auto tag = "chat_test_" + new_uuid().substr(0, 8);
  auto url = with_param(database_url(), "application_name=" + tag);
  persistence::migrate(url);
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  auto store = persistence::spawn_store(sys, {url, 1, 512, {}});
  auto user = new_uuid();
  auto conv = new_uuid();
  auto write = [&](int64_t seq) {
    bool ok = false;
    self->request(store, timeout, append_user_atom::value,
                  user_msg(user, conv, seq, "k" + std::to_string(seq), seq == 1))
        .receive([&](append_result&) { ok = true; }, [&](caf::error& e) { FAIL(sys.render(e)); });
    return ok;
  };
  CHECK(write(1));
  {
    pqxx::connection c{database_url()};
    pqxx::nontransaction tx{c};
    auto killed = tx.exec_params("SELECT pg_terminate_backend(pid) FROM "
                                 "pg_stat_activity WHERE application_name = $1",
                                 tag);
    CHECK(killed.size() == 2); // the writer and the reader
  }
  CHECK(write(2));
  conversation_snapshot snap;
  self->request(store, timeout, load_conv_atom::value, conv)
      .receive([&](conversation_snapshot& s) { snap = std::move(s); },
               [&](caf::error& e) { FAIL(sys.render(e)); });
  CHECK(snap.last_seq == 2);
  caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
}

// -- reply checkpoints --------------------------------------------------------

TEST_CASE_FIXTURE(store_fixture, "persistence: checkpoints insert, then update, and "
                                 "append_reply completes the row") {
  auto user = new_uuid();
  auto conv = new_uuid();
  auto node = live;
  auto q = user_msg(user, conv, 1, "cp1", true);
  append(q);
  auto before = list(user, "", 1).conversations.at(0).updated_at;
  auto cp = in_progress("", conv, 2, q.message.id, "Hel"); // owner by SQL
  CHECK(checkpoint(cp, node));
  auto row = [&](const std::string& col) {
    return text("SELECT " + col + "::text FROM messages WHERE id = " + sql_literal(cp.id));
  };
  CHECK(row("content") == "Hel");
  CHECK(row("role") == "assistant");
  CHECK(row("finish_reason") == "<null>");
  CHECK(row("generating_process") == node);
  CHECK(row("user_id") == user);
  CHECK(row("reply_to") == q.message.id);
  CHECK(row("model") == "gpt-4o-mini");
  CHECK(row("seq") == "2");

  cp.content = "Hello, wor";
  CHECK(checkpoint(cp, node));
  CHECK(row("content") == "Hello, wor");
  CHECK(row("generating_process") == node);
  std::this_thread::sleep_for(5ms); // so that updated_at visibly moves

  auto done = cp;
  done.user_id = user;
  done.content = "Hello, world!";
  done.finish_reason = "stop";
  done.prompt_tokens = 9;
  done.completion_tokens = 4;
  done.created_at = cp.created_at + 1000; // the row keeps its first one
  CHECK(ask<bool>(append_reply_atom::value, done, epoch_of(done)));
  CHECK(count("SELECT count(*) FROM messages WHERE conversation_id = " + sql_literal(conv)) == 2);
  CHECK(row("content") == "Hello, world!");
  CHECK(row("finish_reason") == "stop");
  CHECK(row("generating_process") == "<null>");
  CHECK(row("prompt_tokens") == "9");
  CHECK(row("completion_tokens") == "4");
  CHECK(list(user, "", 1).conversations.at(0).updated_at > before);

  auto snap = load(conv);
  CHECK(snap.last_seq == 2);
  REQUIRE(snap.recent.size() == 2);
  CHECK(snap.recent[1].id == cp.id);
  CHECK(snap.recent[1].content == "Hello, world!");
  CHECK(snap.recent[1].finish_reason == "stop");
  CHECK(snap.recent[1].created_at == cp.created_at);

  // A late checkpoint never undoes the end: nothing written, `false`.
  auto late = cp;
  late.content = "Hel";
  CHECK_FALSE(checkpoint(late, node));
  CHECK(row("content") == "Hello, world!");
  CHECK(row("finish_reason") == "stop");
  CHECK(row("generating_process") == "<null>");

  // A checkpoint without a process could never be recovered: refused.
  auto no_node = try_ask<bool>(checkpoint_atom::value,
                               in_progress(user, conv, 3, q.message.id, "x"), std::string{},
                               epochs[conv]);
  REQUIRE_FALSE(no_node);
  CHECK(no_node.error() == caf::sec::invalid_argument);
  // Another message's id (the user message's) is an error, and changes
  // nothing.
  auto clash = in_progress(user, conv, 3, q.message.id, "x");
  clash.id = q.message.id;
  CHECK_FALSE(try_ask<bool>(checkpoint_atom::value, clash, node, epoch_of(clash)));
  CHECK(load(conv).last_seq == 2);
  CHECK(load(conv).recent.at(0).content == "hello");

  // A reply that was never checkpointed is still a plain insert.
  auto plain = reply_msg(user, conv, 3, q.message.id);
  CHECK(ask<bool>(append_reply_atom::value, plain, epoch_of(plain)));
  CHECK(text("SELECT coalesce(generating_process::text, '<null>') FROM messages "
             "WHERE id = "
             + sql_literal(plain.id))
        == "<null>");
}

TEST_CASE_FIXTURE(store_fixture, "persistence: in-progress replies are not messages but "
                                 "count for last_seq") {
  auto user = new_uuid();
  auto conv = new_uuid();
  auto node = live;
  auto q1 = user_msg(user, conv, 1, "ip1", true);
  append(q1);
  ask<bool>(append_reply_atom::value, reply_msg(user, conv, 2, q1.message.id), epochs[conv]);
  auto q3 = user_msg(user, conv, 3, "ip3", false);
  append(q3);
  auto cp = in_progress(user, conv, 4, q3.message.id, "partial");
  CHECK(checkpoint(cp, node));

  auto seqs = [](const std::vector<stored_message>& ms) {
    std::vector<int64_t> out;
    for (auto& m : ms)
      out.push_back(m.seq);
    return out;
  };
  // (Loading would claim the conversation and close the reply: the last
  // seq is read as the writer's check reads it.)
  auto last_seq = [&] {
    return ask<write_check>(db_check_atom::value, conv, std::string{}).last_seq;
  };
  CHECK(last_seq() == 4);
  CHECK(seqs(history(user, conv, 0, 100).messages) == std::vector<int64_t>{1, 2, 3});
  CHECK(history(user, conv, 3, 100).messages.empty());

  // A user message after the in-progress reply is shown; the reply is not.
  append(user_msg(user, conv, 5, "ip5", false));
  CHECK(last_seq() == 5);
  CHECK(seqs(history(user, conv, 0, 100).messages) == std::vector<int64_t>{1, 2, 3, 5});
  // Limits count shown messages only.
  CHECK(seqs(history(user, conv, 2, 2).messages) == std::vector<int64_t>{3, 5});

  // Once finished it is a message like any other.
  auto done = cp;
  done.content = "partial and the rest";
  done.finish_reason = "length";
  CHECK(ask<bool>(append_reply_atom::value, done, epoch_of(done)));
  CHECK(seqs(history(user, conv, 0, 100).messages) == std::vector<int64_t>{1, 2, 3, 4, 5});
  auto snap = load(conv);
  CHECK(seqs(snap.recent) == std::vector<int64_t>{1, 2, 3, 4, 5});
  CHECK(snap.recent.at(3).content == "partial and the rest");
  CHECK(snap.recent.at(3).finish_reason == "length");
}

TEST_CASE_FIXTURE(store_fixture, "persistence: replies of processes that are gone are "
                                 "recovered as interrupted by start-up, a live process's are "
                                 "never touched, loading closes any (it claims the conversation)") {
  auto user = new_uuid();
  auto gone = test_node(); // never registered: no liveness lock
  // A process that is alive (holds its lock) while this test runs.
  auto live_registration = persistence::register_process(url, "test-live");
  auto live = live_registration.process_id;
  // conv 0 and 1: replies of the gone process; conv 2: the live one's;
  // conv 3: the gone one's, but finished; conv 4: the gone one's, found
  // by loading the conversation.
  std::vector<std::string> convs;
  std::vector<stored_message> cps;
  for (int i = 0; i < 5; ++i) {
    convs.push_back(new_uuid());
    auto q = user_msg(user, convs.back(), 1, "ri" + std::to_string(i), true);
    append(q);
    cps.push_back(
        in_progress(user, convs.back(), 2, q.message.id, "streamed " + std::to_string(i)));
  }
  CHECK(checkpoint(cps[0], gone));
  CHECK(checkpoint(cps[1], gone));
  CHECK(checkpoint(cps[2], live));
  CHECK(checkpoint(cps[3], gone));
  auto finished = cps[3];
  finished.finish_reason = "stop";
  CHECK(ask<bool>(append_reply_atom::value, finished, epoch_of(finished)));
  auto updated = [&](const std::string& conv) {
    for (auto& c : list(user, "", 10).conversations)
      if (c.id == conv)
        return c.updated_at;
    FAIL("conversation not listed");
    return timestamp_ms{0};
  };
  auto before_a = updated(convs[0]);
  auto before_c = updated(convs[2]);
  std::this_thread::sleep_for(5ms);

  // Loading a conversation recovers it, whoever the process was.
  CHECK(checkpoint(cps[4], gone));
  auto snap = load(convs[4]);
  REQUIRE(snap.recent.size() == 2);
  CHECK(snap.recent[1].finish_reason == "interrupted");
  CHECK(snap.recent[1].content == "streamed 4");

  // Start-up recovery: every conversation (other tests' leftovers too).
  CHECK(persistence::recover_interrupted(url) >= 2);
  for (int i : {0, 1}) {
    auto h = history(user, convs[static_cast<size_t>(i)], 0, 100);
    REQUIRE(h.messages.size() == 2);
    CHECK(h.messages[1].id == cps[static_cast<size_t>(i)].id);
    CHECK(h.messages[1].finish_reason == "interrupted");
    CHECK(h.messages[1].content == "streamed " + std::to_string(i));
    CHECK(text("SELECT coalesce(generating_process::text, '<null>') FROM messages "
               "WHERE id = "
               + sql_literal(cps[static_cast<size_t>(i)].id))
          == "<null>");
  }
  CHECK(updated(convs[0]) > before_a);
  // The live process's reply is still its own, in progress, also on load.
  CHECK(history(user, convs[2], 0, 100).messages.size() == 1);
  CHECK(text("SELECT generating_process::text FROM messages WHERE id = " + sql_literal(cps[2].id))
        == live);
  CHECK(updated(convs[2]) == before_c);
  // The finished one kept its end.
  auto d = history(user, convs[3], 0, 100);
  REQUIRE(d.messages.size() == 2);
  CHECK(d.messages[1].finish_reason == "stop");

  // An interrupted reply takes no checkpoint: its writer lost it.
  CHECK_FALSE(checkpoint(cps[0], gone));

  // Once the live process is gone (its lock's connection closed), start-up
  // recovery closes its reply too.
  CHECK(count("SELECT count(*) FROM chat_processes WHERE id = " + sql_literal(live)) == 1);
  live_registration.lock.reset(); // its connection closes, as at exit
  auto held = [&] {
    return count("SELECT count(*) FROM pg_locks l JOIN chat_processes p "
                 "ON l.objid = p.lock_key::oid WHERE l.locktype = 'advisory' "
                 "AND l.classid = 1667785076::oid AND p.id = "
                 + sql_literal(live));
  };
  for (int i = 0; i < 100 && held() > 0; ++i)
    std::this_thread::sleep_for(20ms); // the backend notices the close
  CHECK(held() == 0);
  CHECK(persistence::recover_interrupted(url) >= 1);
  auto after = history(user, convs[2], 0, 100);
  REQUIRE(after.messages.size() == 2);
  CHECK(after.messages[1].finish_reason == "interrupted");

  try {
    persistence::recover_interrupted("postgresql:///nope?host=/nonexistent&port=1");
    FAIL("no exception");
  } catch (const std::runtime_error& e) {
    CHECK(std::string{e.what()}.find("cannot connect") != std::string::npos);
  }
}

TEST_CASE_FIXTURE(store_fixture, "persistence: a user message at a seq another message holds "
                                 "is refused with the last seq, db_check reads after writes") {
  auto user = new_uuid();
  auto conv = new_uuid();
  auto q1 = user_msg(user, conv, 1, "st1", true);
  append(q1);
  auto q2 = user_msg(user, conv, 1, "st2", false); // a stale next seq
  auto r = ask<append_result>(append_user_atom::value, with_epoch(q2));
  CHECK(r.seq_taken);
  CHECK_FALSE(r.duplicate);
  CHECK(r.seq == 1);
  CHECK(count("SELECT count(*) FROM messages WHERE conversation_id = " + sql_literal(conv)) == 1);
  // The same clientMsgId is still free: the write was refused, not used.
  q2.message.seq = 3;
  CHECK_FALSE(ask<append_result>(append_user_atom::value, with_epoch(q2)).seq_taken);
  auto c = ask<write_check>(db_check_atom::value, conv, q2.message.id);
  CHECK(c.last_seq == 3);
  CHECK(c.found);
  auto none = ask<write_check>(db_check_atom::value, conv, new_uuid());
  CHECK(none.last_seq == 3);
  CHECK_FALSE(none.found);
  CHECK_FALSE(ask<write_check>(db_check_atom::value, conv, std::string{}).found);
}

TEST_CASE_FIXTURE(store_fixture, "persistence: concurrent checkpoints are group-committed") {
  constexpr int convs = 50;
  constexpr int rounds = 4; // checkpoints of each reply, sent back to back
  auto user = new_uuid();
  auto node = live;
  std::vector<stored_message> replies;
  for (int i = 0; i < convs; ++i) {
    auto q = user_msg(user, new_uuid(), 1, "gc" + std::to_string(i), true);
    append(q);
    replies.push_back(in_progress(user, q.message.conversation_id, 2, q.message.id, ""));
  }
  auto [tx_before, w_before, l_before] = stats();
  std::vector<decltype(self->request(store, timeout, checkpoint_atom::value, replies[0], node, epoch_of(replies[0])))>
      pending;
  for (int round = 0; round < rounds; ++round)
    for (auto& r : replies) {
      r.content += "t" + std::to_string(round) + " ";
      pending.push_back(self->request(store, timeout, checkpoint_atom::value, r, node, epoch_of(r)));
    }
  int saved = 0;
  for (auto& p : pending)
    p.receive([&](bool ok) { saved += ok ? 1 : 0; }, [&](caf::error& e) { FAIL(sys.render(e)); });
  CHECK(saved == convs * rounds);
  auto [tx_after, w_after, l_after] = stats();
  auto transactions = tx_after - tx_before;
  MESSAGE((convs * rounds), " concurrent checkpoints: ", transactions,
          " transactions, largest batch ", l_after);
  CHECK(w_after - w_before == convs * rounds);
  CHECK(transactions < convs * rounds);
  CHECK(l_after > 1);
  // One row per reply, with the last checkpoint's content (order kept).
  CHECK(count("SELECT count(*) FROM messages WHERE role = 'assistant' AND "
              "generating_process = "
              + sql_literal(node) + "::uuid")
        == convs);
  for (auto& r : replies) {
    CHECK(text("SELECT content FROM messages WHERE id = " + sql_literal(r.id)) == "t0 t1 t2 t3 ");
    CHECK(ask<write_check>(db_check_atom::value, r.conversation_id, std::string{}).last_seq == 2);
  }
  // They belong to a live process: start-up recovery leaves them alone.
  persistence::recover_interrupted(url);
  CHECK(count("SELECT count(*) FROM messages WHERE finish_reason IS NULL AND "
              "generating_process = "
              + sql_literal(node) + "::uuid")
        == convs);
}

TEST_CASE_FIXTURE(store_fixture, "persistence: loading claims a conversation: writes under the "
                                 "old epoch are refused as fenced and write nothing, its reply in "
                                 "progress is closed, a fenced write fails only itself") {
  auto user = new_uuid();
  auto conv = new_uuid();
  auto other = new_uuid();
  auto q1 = user_msg(user, conv, 1, "fe1", true);
  append(q1);
  append(user_msg(user, other, 1, "fe-other", true));
  auto cp = in_progress(user, conv, 2, q1.message.id, "half");
  CHECK(checkpoint(cp, live)); // epoch 0: the creator's
  auto old_epoch = epochs[conv];

  // Another owner loads it: a new epoch, and the reply it cannot finish
  // is closed.
  auto snap = load(conv);
  CHECK(snap.epoch == old_epoch + 1);
  REQUIRE(snap.recent.size() == 2);
  CHECK(snap.recent[1].finish_reason == "interrupted");
  CHECK(snap.recent[1].content == "half");
  CHECK(load(conv).epoch == old_epoch + 2); // every load claims

  // The old owner's writes: refused, nothing written.
  auto stale_user = user_msg(user, conv, 3, "fe2", false);
  stale_user.epoch = old_epoch;
  auto refused = try_ask<append_result>(append_user_atom::value, stale_user);
  REQUIRE_FALSE(refused);
  CHECK(classify_store_error(refused.error()) == store_failure::fenced);
  auto stale_cp = try_ask<bool>(checkpoint_atom::value, cp, live, old_epoch);
  REQUIRE_FALSE(stale_cp);
  CHECK(classify_store_error(stale_cp.error()) == store_failure::fenced);
  auto done = cp;
  done.finish_reason = "stop";
  auto stale_done = try_ask<bool>(append_reply_atom::value, done, old_epoch);
  REQUIRE_FALSE(stale_done);
  CHECK(classify_store_error(stale_done.error()) == store_failure::fenced);
  CHECK(count("SELECT count(*) FROM messages WHERE conversation_id = " + sql_literal(conv)) == 2);
  CHECK(text("SELECT finish_reason FROM messages WHERE id = " + sql_literal(cp.id))
        == "interrupted");

  // In one batch with a good write: the fenced one fails alone.
  auto good = user_msg(user, other, 3, "fe-good", false);
  good.epoch = epochs[other];
  auto h1 = self->request(store, timeout, append_user_atom::value, stale_user);
  auto h2 = self->request(store, timeout, append_user_atom::value, good);
  bool fenced = false;
  bool stored = false;
  h1.receive([](append_result&) {},
             [&](caf::error& e) { fenced = classify_store_error(e) == store_failure::fenced; });
  h2.receive([&](append_result& r) { stored = !r.duplicate && !r.seq_taken; },
             [&](caf::error& e) { FAIL(sys.render(e)); });
  CHECK(fenced);
  CHECK(stored);

  // The new owner writes under its epoch.
  auto fresh = user_msg(user, conv, 3, "fe3", false);
  auto ok = append(fresh);
  CHECK(ok.seq == 3);
  CHECK_FALSE(ok.seq_taken);
}
