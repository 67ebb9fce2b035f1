// PostgreSQL stopped and started again under load, for real: 100 users chat
// continuously against a private PostgreSQL (its own directory, durable
// defaults), which is stopped for `outage` and started again. What must
// hold: no ack for a message that is not in the database; every send is
// answered (an ack or an error, never silence), and those made while the
// database is down get `unavailable`; chatd reconnects by itself, and soon
// after the database is back every user's sends are acked and answered
// whole again; every conversation's history is whole in the end.
//
// The suite's shared PostgreSQL is left alone: this test starts its own, so
// that stopping it cannot disturb another test. Timings are printed, never
// asserted (shared machines); the bounds below only turn silence into a
// failure.

#include <stdio.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <random>
#include <thread>

#include <doctest/doctest.h>

#include "tests/integration/harness.hpp"

using namespace chat::test;

namespace {

using clock_type = std::chrono::steady_clock;

/// How long PostgreSQL stays down (the hardening issue's 10 s).
constexpr auto outage = 10s;
constexpr int users = 100;
/// A user's pause after each answer: continuous, but not a benchmark.
constexpr auto think = 200ms;
/// An answer to a send (ack or error) later than this counts as silence.
/// chatd answers within CHAT_STORE_TIMEOUT (2 s here) of the write it
/// waits for; this only has to be far above that.
constexpr auto answer_bound = 30s;

double ms_between(clock_type::time_point a, clock_type::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

/// Runs a shell command; returns its first line of output.
std::string run(const std::string& cmd) {
  std::string out;
  if (auto* p = ::popen(cmd.c_str(), "r")) {
    char buf[512];
    if (::fgets(buf, sizeof buf, p) != nullptr)
      out = buf;
    REQUIRE_MESSAGE(::pclose(p) == 0, "failed: " << cmd);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r'))
    out.pop_back();
  return out;
}

/// A PostgreSQL cluster of this test's own, in a fresh directory under /tmp
/// (deploy/postgres.sh: Unix socket only, so the port only names the
/// socket file and cannot clash with another cluster).
class private_postgres {
public:
  private_postgres() {
    char tmpl[] = "/tmp/chat-dbrestart-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir_ = tmpl;
    url_ = start();
  }
  ~private_postgres() {
    std::system((script() + " stop " + dir_ + " >/dev/null 2>&1").c_str());
    std::system(("rm -rf " + dir_).c_str());
  }
  std::string start() {
    return run(script() + " start " + dir_ + " 55499");
  }
  /// `immediate`: as a crash would (no shutdown checkpoint; commits in
  /// flight may be lost to the client yet durable, the start recovers).
  void stop(bool immediate) {
    run(script() + " stop " + dir_ + (immediate ? " --immediate" : ""));
  }
  const std::string& url() const {
    return url_;
  }

private:
  static std::string script() {
    return std::string{CHAT_SOURCE_DIR} + "/deploy/postgres.sh";
  }
  std::string dir_;
  std::string url_;
};

/// One acked send, as the client saw it.
struct acked_send {
  std::string client_msg_id;
  std::string conversation_id;
  std::string message_id;
  int64_t seq = 0;
  clock_type::time_point sent_at; // first attempt of this clientMsgId
  clock_type::time_point answered;
};

/// What one user saw. Written by its thread only; read after the join.
struct user_record {
  std::vector<acked_send> acks;
  std::vector<std::pair<clock_type::time_point, clock_type::time_point>>
      unavailable;                       // sent, answered
  std::vector<std::string> other_errors; // error codes other than unavailable
  std::vector<std::string> problems;     // silence, cut connections, broken replies
  double longest_answer_ms = 0;
  int retried_acks = 0; // acks of a clientMsgId sent again after unavailable
  std::string conversation;
  clock_type::time_point first_ack_after_restart{};
  // For the main thread while this one runs.
  std::atomic<bool> chatting{false}; // had an ack
  std::atomic<bool> acked_after_restart{false};
  std::atomic<bool> failed{false}; // see problems
};

/// The time PostgreSQL answered again: sends made after it count as "after
/// the restart". Zero until then.
std::atomic<int64_t> restarted_at_ns{0};

clock_type::time_point restarted_at() {
  return clock_type::time_point{clock_type::duration{restarted_at_ns.load()}};
}

/// Reads frames until the answer to `client_msg_id` (its ack or error);
/// frames before it go to `before`. (A message answered `unavailable` that
/// committed after all is answered by chatd when it finds it: the
/// connection, subscribed to the conversation, gets the message and the
/// start of its reply before the ack of the retry.)
std::optional<rapidjson::Document> answer_to(ws_client& ws, const std::string& client_msg_id,
                                             std::vector<std::string>& before) {
  auto deadline = clock_type::now() + answer_bound;
  for (;;) {
    auto left = left_until(deadline);
    if (left.count() <= 0)
      return std::nullopt;
    auto text = ws.read(left);
    if (!text)
      return std::nullopt;
    rapidjson::Document d;
    d.Parse(text->c_str());
    if (d.HasParseError() || !d.IsObject())
      continue;
    auto type = str(d, "type");
    if ((type == "ack" || type == "error") && str(d, "clientMsgId") == client_msg_id)
      return d;
    before.push_back(*text);
  }
}

/// Reads the reply to `reply_to` without failing the test from this thread:
/// returns what was assembled and whether it ended.
bool reply_of(ws_client& ws, const std::string& reply_to, assembled& r) {
  r.reply_to = reply_to;
  auto deadline = clock_type::now() + answer_bound;
  for (;;) {
    auto left = left_until(deadline);
    if (left.count() <= 0)
      return false;
    auto text = ws.read(left);
    if (!text)
      return false;
    if (r.feed(*text))
      return true;
  }
}

/// One user chatting until `stop`: send, answer, whole reply, a pause. A
/// send answered `unavailable` goes again with the same clientMsgId, as the
/// protocol tells clients to.
void chat_loop(const service& svc, const std::string& user, user_record& rec,
               const std::atomic<bool>& stop) {
  try {
    ws_client ws;
    if (ws.connect(svc.port, svc.ws_path(user)) != 101) {
      rec.problems.push_back("upgrade refused");
      rec.failed = true;
      return;
    }
    std::mt19937 rng{std::random_device{}()};
    int n = 0;
    std::string retry_id;
    clock_type::time_point first_sent{};
    bool retried = false;
    while (!stop) {
      auto id = retry_id.empty() ? user + "-" + std::to_string(n++) : retry_id;
      auto sent = clock_type::now();
      retried = !retry_id.empty();
      if (!retried)
        first_sent = sent;
      ws.send_text(send_frame(id, "message " + id + " [[mock tokens=4]]", rec.conversation));
      std::vector<std::string> before;
      auto answer = answer_to(ws, id, before);
      auto answered = clock_type::now();
      if (!answer) {
        rec.problems.push_back("no answer to " + id + " (close code "
                               + std::to_string(ws.close_code()) + ")");
        rec.failed = true;
        return;
      }
      rec.longest_answer_ms = std::max(rec.longest_answer_ms, ms_between(sent, answered));
      retry_id.clear();
      if (str(*answer, "type") == "error") {
        auto code = str(*answer, "code");
        if (code == "unavailable") {
          rec.unavailable.emplace_back(sent, answered);
          retry_id = id;
        } else {
          rec.other_errors.push_back(code);
        }
      } else {
        acked_send a{id,
                     str(*answer, "conversationId"),
                     str(*answer, "messageId"),
                     num(*answer, "seq"),
                     first_sent,
                     answered};
        // After unavailable the message may have committed after all:
        // then this is its original ack (the same clientMsgId never makes
        // a second message; the database check below sees either way).
        rec.retried_acks += retried;
        rec.conversation = a.conversation_id;
        rec.acks.push_back(a);
        rec.chatting = true;
        assembled reply;
        reply.reply_to = a.message_id;
        bool ended = false;
        for (auto& f : before)
          ended = ended || reply.feed(f);
        if (!ended && !reply_of(ws, a.message_id, reply)) {
          rec.problems.push_back("the reply to " + id + " did not end (close code "
                                 + std::to_string(ws.close_code()) + ")");
          rec.failed = true;
          return;
        }
        if (!reply.complete() || reply.finish_reason != "stop")
          rec.problems.push_back("the reply to " + id + " (seq " + std::to_string(a.seq)
                                 + ") is not whole: " + reply.finish_reason + ", "
                                 + std::to_string(reply.dones) + " done, "
                                 + std::to_string(reply.chunks.size()) + " chunks of "
                                 + std::to_string(reply.done_chunks) + ", errors "
                                 + std::to_string(reply.errors.size()));
        auto up = restarted_at();
        if (up != clock_type::time_point{} && sent >= up && !rec.acked_after_restart) {
          rec.first_ack_after_restart = answered;
          rec.acked_after_restart = true;
        }
      }
      std::uniform_int_distribution<int> jitter{0, 100};
      std::this_thread::sleep_for(think + std::chrono::milliseconds{jitter(rng)});
    }
  } catch (const std::exception& e) { // a failed REQUIRE must not escape the thread
    rec.problems.push_back(std::string{"exception: "} + e.what());
    rec.failed = true;
  } catch (...) {
    rec.problems.push_back("a failed check in the user's thread");
    rec.failed = true;
  }
}

template<class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds timeout) {
  auto deadline = clock_type::now() + timeout;
  while (!pred()) {
    if (clock_type::now() >= deadline)
      return false;
    std::this_thread::sleep_for(50ms);
  }
  return true;
}

double percentile(std::vector<double> v, double q) {
  if (v.empty())
    return -1;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1))];
}

/// The whole scenario; `immediate` picks how PostgreSQL goes down.
void restart_under_load(bool immediate) {
  restarted_at_ns = 0;
  private_postgres pg;
  // The harness's database helpers (and chatd's DATABASE_URL) use this
  // process's CHAT_TEST_DATABASE_URL: point it at the private cluster.
  REQUIRE(::setenv("CHAT_TEST_DATABASE_URL", pg.url().c_str(), 1) == 0);

  service::options opts;
  opts.chatd_env = {
      // Seconds, not the production minutes, so the test stays short.
      {"CHAT_STORE_TIMEOUT", "2"},
      {"CHAT_DB_CONNECT_TIMEOUT", "1"},
      {"CHAT_DB_STATEMENT_TIMEOUT", "2"},
      {"CHAT_USER_SENDS_PER_MIN", "0"},
  };
  service svc{opts};

  std::vector<std::unique_ptr<user_record>> records;
  std::atomic<bool> stop{false};
  // Joined however this function ends (a failed REQUIRE throws).
  struct user_threads : std::vector<std::thread> {
    std::atomic<bool>& stop;
    explicit user_threads(std::atomic<bool>& s) : stop(s) {}
    ~user_threads() {
      stop = true;
      for (auto& t : *this)
        if (t.joinable())
          t.join();
    }
  } threads{stop};
  for (int i = 0; i < users; ++i) {
    records.push_back(std::make_unique<user_record>());
    threads.emplace_back(chat_loop, std::cref(svc), unique_user(), std::ref(*records.back()),
                         std::cref(stop));
  }
  auto stop_users = [&] {
    stop = true;
    for (auto& t : threads)
      t.join();
  };

  // Everyone has a conversation before the database goes.
  auto everyone_chats = wait_until(
      [&] {
        return std::all_of(records.begin(), records.end(),
                           [](auto& r) { return r->chatting || r->failed; });
      },
      60s);
  std::this_thread::sleep_for(2s);

  auto t_stop = clock_type::now();
  pg.stop(immediate);
  auto t_down = clock_type::now();
  std::this_thread::sleep_for(outage);
  auto t_start = clock_type::now();
  pg.start();
  auto t_up = clock_type::now();
  restarted_at_ns = t_up.time_since_epoch().count();

  auto recovered = wait_until(
      [&] {
        return std::all_of(records.begin(), records.end(),
                           [](auto& r) { return r->acked_after_restart || r->failed; });
      },
      60s);
  // A little more chatting once everyone is back.
  std::this_thread::sleep_for(1s);
  stop_users();
  REQUIRE(everyone_chats);

  // What the users saw.
  int64_t acks = 0, acks_before = 0, acks_during = 0, acks_after = 0, retried_acks = 0;
  int64_t unavailable = 0, unavailable_during = 0, unavailable_after = 0;
  std::vector<double> recovery_ms;
  double longest_answer = 0;
  std::vector<std::string> problems;
  std::vector<std::string> other_errors;
  for (auto& r : records) {
    for (auto& a : r->acks) {
      ++acks;
      if (a.sent_at >= t_down && a.answered < t_start)
        ++acks_during; // sent and answered while PostgreSQL was down: false
      else if (a.sent_at >= t_up)
        ++acks_after;
      else
        ++acks_before;
    }
    for (auto& [sent, answered] : r->unavailable) {
      ++unavailable;
      if (sent >= t_stop && sent < t_up)
        ++unavailable_during;
      else if (sent >= t_up)
        ++unavailable_after;
    }
    retried_acks += r->retried_acks;
    longest_answer = std::max(longest_answer, r->longest_answer_ms);
    if (r->acked_after_restart)
      recovery_ms.push_back(ms_between(t_up, r->first_ack_after_restart));
    problems.insert(problems.end(), r->problems.begin(), r->problems.end());
    other_errors.insert(other_errors.end(), r->other_errors.begin(), r->other_errors.end());
  }
  MESSAGE("postgres.sh stop took "
          << ms_between(t_stop, t_down) << " ms, start " << ms_between(t_start, t_up)
          << " ms; acks " << acks << " (before the stop " << acks_before << ", after the start "
          << acks_after << ", of a send retried after unavailable " << retried_acks
          << "); unavailable " << unavailable << " (sent during the outage " << unavailable_during
          << ", after the start " << unavailable_after << "); longest answer to a send "
          << longest_answer << " ms");
  MESSAGE("from the start of PostgreSQL to each user's first ack of a send made after it: p50 "
          << percentile(recovery_ms, 0.5) << " ms, max " << percentile(recovery_ms, 1.0) << " ms ("
          << recovery_ms.size() << " of " << users << " users)");

  for (auto& p : problems)
    FAIL_CHECK(p);
  CHECK(problems.empty());
  CHECK(other_errors.empty());
  CHECK(recovered);
  CHECK(recovery_ms.size() == static_cast<size_t>(users));
  CHECK(acks_during == 0);
  CHECK(unavailable_during > 0);

  // Every ack names a message the database holds, as acked.
  pqxx::connection db{pg.url()};
  int64_t missing = 0;
  {
    pqxx::read_transaction tx{db};
    for (auto& r : records)
      for (auto& a : r->acks) {
        auto row = tx.exec_params("SELECT conversation_id::text, seq, client_msg_id FROM messages "
                                  "WHERE id = $1 AND role = 'user'",
                                  a.message_id);
        bool ok = row.size() == 1 && row[0][0].as<std::string>() == a.conversation_id
                  && row[0][1].as<int64_t>() == a.seq
                  && row[0][2].as<std::string>() == a.client_msg_id;
        if (!ok && ++missing <= 5)
          FAIL_CHECK("ack of " << a.client_msg_id << " (seq " << a.seq
                               << ") has no such message in the database");
      }
  }
  CHECK(missing == 0);

  // Replies that ended while the database was down are stored in the
  // background once it is back (their seqs stay reserved meanwhile, so a
  // later message may land first); then every history is whole: no reply
  // left unfinished, no seq missing.
  auto settled = wait_until(
      [&] {
        pqxx::read_transaction tx{db};
        auto unfinished = tx.exec1("SELECT count(*) FROM messages WHERE role = 'assistant' AND "
                                   "finish_reason IS NULL")[0]
                              .as<int64_t>();
        auto with_gaps = tx.exec1("SELECT count(*) FROM (SELECT conversation_id FROM messages "
                                  "GROUP BY conversation_id HAVING max(seq) <> count(*)) g")[0]
                             .as<int64_t>();
        return unfinished == 0 && with_gaps == 0;
      },
      30s);
  CHECK(settled);
  for (auto& r : records) {
    if (r->conversation.empty())
      continue;
    // Each acked message and its reply (and maybe one more: a message
    // answered unavailable that committed after all, whose retry the end
    // of the test cut short; it is answered too).
    auto n = check_history_whole(r->conversation);
    CHECK(n >= 2 * static_cast<int64_t>(r->acks.size()));
    CHECK(n <= 2 * static_cast<int64_t>(r->acks.size()) + 2);
  }
  CHECK(http_request(svc.port, "GET", "/readyz").status == 200);
  // It reconnected by itself, and took its liveness lock again (a restart
  // drops every lock; without it other nodes would count this one gone).
  auto log = svc.chatd->log();
  CHECK(log.find("\"event\":\"db_reconnected\"") != std::string::npos);
  CHECK(log.find("\"event\":\"process_lock_taken_again\"") != std::string::npos);
}

} // namespace

TEST_CASE("database restart: PostgreSQL stopped (fast shutdown) for 10 s under 100 chatting "
          "users: no false ack, sends answered unavailable, chatd reconnects, every user chats "
          "again") {
  restart_under_load(false);
}

TEST_CASE("database restart: PostgreSQL crashed (immediate shutdown) for 10 s under 100 chatting "
          "users: no false ack, sends answered unavailable, chatd reconnects, every user chats "
          "again") {
  restart_under_load(true);
}
