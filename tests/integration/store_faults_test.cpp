// Faults of the process and the database, staged for real: chatd killed and
// restarted under another name, a second chatd on the same database, the
// messages table locked while a send is in flight. Each ends with a new send
// into the same conversation answered whole, and a whole history.

#include <signal.h>

#include <atomic>
#include <thread>

#include <doctest/doctest.h>

#include "common/ids.hpp"
#include "tests/integration/harness.hpp"

using namespace chat::test;

namespace {

using clock_type = std::chrono::steady_clock;

int64_t ms_since(clock_type::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0).count();
}

/// Sends `content` into `conv` and reads its ack and whole reply.
assembled chat_once(ws_client& ws, const std::string& client_msg_id, const std::string& content,
                    const std::string& conv, int64_t expected_seq) {
  ws.send_text(send_frame(client_msg_id, content, conv));
  std::vector<std::string> before;
  auto ack = ws.read_until("ack", &before, 20s);
  CHECK(str(ack, "conversationId") == conv);
  CHECK(num(ack, "seq") == expected_seq);
  auto reply = read_reply_of(ws, str(ack, "messageId"), 30s);
  CHECK(reply.complete());
  CHECK(reply.finish_reason == "stop");
  CHECK(reply.seq == expected_seq + 1);
  return reply;
}

/// Holds an ACCESS EXCLUSIVE lock on `messages` (every read and write of
/// it waits) from construction for `hold`, on a thread of its own.
class table_lock {
public:
  explicit table_lock(std::chrono::milliseconds hold) {
    std::atomic<bool> locked{false};
    thread_ = std::thread{[hold, &locked, this] {
      pqxx::connection c{database_url()};
      pqxx::work tx{c};
      tx.exec("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE");
      locked = true;
      std::this_thread::sleep_for(hold);
      tx.abort();
      released_at_ = clock_type::now();
    }};
    while (!locked)
      std::this_thread::sleep_for(5ms);
  }

  ~table_lock() {
    if (thread_.joinable())
      thread_.join();
  }

  /// Waits for the release; returns when it happened.
  clock_type::time_point released() {
    thread_.join();
    return released_at_;
  }

private:
  std::thread thread_;
  clock_type::time_point released_at_;
};

} // namespace

TEST_CASE("store faults: kill -9 mid-reply, restarted under another node name: the reply is "
          "interrupted, the next send is answered, the history is whole") {
  service::options opts;
  opts.node_id = "node-before-" + chat::new_uuid().substr(0, 8);
  service svc{opts};
  auto user = unique_user();
  std::string conv;
  {
    ws_client ws;
    REQUIRE(ws.connect(svc.port, svc.ws_path(user)) == 101);
    ws.send_text(send_frame("r-1", "quick [[mock tokens=3]]"));
    auto ack = ws.read_until("ack");
    conv = str(ack, "conversationId");
    ws.read_until("done");
    ws.send_text(send_frame("r-2", "slow [[mock delay_ms=50 tokens=400]]", conv));
    CHECK(num(ws.read_until("ack"), "seq") == 3);
    // Past the first checkpoint interval (1 s), so something is saved.
    read_chunks(ws, "", 25);
    std::this_thread::sleep_for(1200ms);
    svc.chatd->signal(SIGKILL);
    CHECK(svc.chatd->wait(10s) == -2);
  }
  auto t0 = clock_type::now();
  svc.restart_chatd({{"CHAT_NODE_ID", "node-after-" + chat::new_uuid().substr(0, 8)}});
  ws_client ws;
  REQUIRE(ws.connect(svc.port, svc.ws_path(user)) == 101);
  chat_once(ws, "r-3", "after the crash [[mock tokens=4]]", conv, 5);
  MESSAGE("kill -9 + restart under a new name: restart to the next complete reply " << ms_since(t0)
                                                                                    << " ms");
  auto row = db_query1("SELECT finish_reason, length(content) FROM messages "
                       "WHERE conversation_id = $1 AND seq = 4",
                       conv);
  CHECK(row[0].as<std::string>() == "interrupted");
  CHECK(row[1].as<int>() > 0); // the checkpoint kept
  CHECK(check_history_whole(conv) == 6);
}

TEST_CASE("store faults: a second chatd on the same database, under the same name, never "
          "touches the first one's reply in progress") {
  service::options opts;
  opts.node_id = "node-shared-" + chat::new_uuid().substr(0, 8);
  service first{opts};
  auto user = unique_user();
  ws_client ws;
  REQUIRE(ws.connect(first.port, first.ws_path(user)) == 101);
  ws.send_text(send_frame("t-1", "long [[mock delay_ms=20 tokens=150]]"));
  auto ack = ws.read_until("ack");
  auto conv = str(ack, "conversationId");
  auto so_far = read_chunks(ws, str(ack, "messageId"), 5);
  // The second process starts (and runs its start-up recovery) while the
  // first one's reply streams: same node name, same database.
  service second{opts};
  auto reply = read_reply_of(ws, str(ack, "messageId"), 30s, so_far);
  CHECK(reply.complete());
  CHECK(reply.finish_reason == "stop");
  // The second one serves the same conversation too: seqs stay whole.
  ws_client ws2;
  REQUIRE(ws2.connect(second.port, second.ws_path(user)) == 101);
  chat_once(ws2, "t-2", "from the second [[mock tokens=3]]", conv, 3);
  chat_once(ws, "t-3", "from the first [[mock tokens=3]]", conv, 5);
  CHECK(check_history_whole(conv) == 6);
}

TEST_CASE("store faults: a write stuck behind a table lock past the store timeout commits "
          "later, the conversation finds it, answers it and goes on") {
  // The conversation gives up waiting after 1 s; the statement itself waits
  // for the lock (statement timeout 30 s) and commits once it is released.
  service::options opts;
  opts.chatd_env = {{"CHAT_STORE_TIMEOUT", "1"}, {"CHAT_DB_STATEMENT_TIMEOUT", "30"}};
  service svc{opts};
  auto user = unique_user();
  ws_client ws;
  REQUIRE(ws.connect(svc.port, svc.ws_path(user)) == 101);
  ws.send_text(send_frame("l-1", "before [[mock tokens=3]]"));
  auto conv = str(ws.read_until("ack"), "conversationId");
  ws.read_until("done");

  std::string message_id;
  std::vector<std::string> frames;
  int unavailable = 0;
  {
    table_lock lock{4s};
    ws.send_text(send_frame("l-2", "during the lock [[mock tokens=5]]", conv));
    // The client retries with the same clientMsgId, as clients do, until
    // it is acked.
    auto deadline = clock_type::now() + 30s;
    while (message_id.empty()) {
      REQUIRE(clock_type::now() < deadline);
      // Every send is answered: unavailable while the database is stuck.
      auto text = ws.read(20s);
      REQUIRE(text.has_value());
      auto f = parse(*text);
      auto type = str(f, "type");
      if (type == "error" && str(f, "clientMsgId") == "l-2") {
        CHECK(str(f, "code") == "unavailable");
        ++unavailable;
        std::this_thread::sleep_for(200ms);
        ws.send_text(send_frame("l-2", "during the lock [[mock tokens=5]]", conv));
      } else if (type == "ack") {
        CHECK(num(f, "seq") == 3);
        message_id = str(f, "messageId");
      } else {
        frames.push_back(*text);
      }
    }
    auto released = lock.released();
    assembled start;
    start.reply_to = message_id;
    for (auto& f : frames)
      start.feed(f);
    auto reply = read_reply_of(ws, message_id, 30s, start);
    CHECK(reply.complete());
    CHECK(reply.seq == 4);
    MESSAGE("messages locked 4 s, store timeout 1 s: lock release to the stuck message's "
            "complete reply "
            << ms_since(released) << " ms; " << unavailable << " sends answered unavailable");
  }
  CHECK(unavailable >= 1);
  auto t0 = clock_type::now();
  chat_once(ws, "l-3", "after the lock [[mock tokens=3]]", conv, 5);
  MESSAGE("next send to its complete reply: " << ms_since(t0) << " ms");
  CHECK(svc.chatd->log().find("message_committed_late") != std::string::npos);
  CHECK(check_history_whole(conv) == 6);
}

TEST_CASE("store faults: a write cancelled by the statement timeout behind a lock is retried "
          "by the client and stored once, the seq is not lost") {
  service::options opts;
  opts.chatd_env = {{"CHAT_STORE_TIMEOUT", "5"}, {"CHAT_DB_STATEMENT_TIMEOUT", "0.5"}};
  service svc{opts};
  auto user = unique_user();
  ws_client ws;
  REQUIRE(ws.connect(svc.port, svc.ws_path(user)) == 101);
  ws.send_text(send_frame("m-1", "before [[mock tokens=3]]"));
  auto conv = str(ws.read_until("ack"), "conversationId");
  ws.read_until("done");
  int unavailable = 0;
  std::string message_id;
  clock_type::time_point released;
  {
    table_lock lock{3s};
    auto deadline = clock_type::now() + 30s;
    ws.send_text(send_frame("m-2", "during the lock [[mock tokens=4]]", conv));
    while (message_id.empty()) {
      REQUIRE(clock_type::now() < deadline);
      auto f = ws.read_json(20s);
      if (str(f, "type") == "error") {
        CHECK(str(f, "code") == "unavailable");
        ++unavailable;
        std::this_thread::sleep_for(300ms);
        ws.send_text(send_frame("m-2", "during the lock [[mock tokens=4]]", conv));
      } else if (str(f, "type") == "ack") {
        message_id = str(f, "messageId");
        CHECK(num(f, "seq") == 3);
      }
    }
    released = lock.released();
  }
  CHECK(unavailable >= 1);
  auto reply = read_reply_of(ws, message_id, 30s);
  CHECK(reply.complete());
  MESSAGE("statement timeout 0.5 s behind a 3 s lock: " << unavailable
                                                        << " sends answered unavailable, then "
                                                           "acked; release to complete reply "
                                                        << ms_since(released) << " ms");
  chat_once(ws, "m-3", "after the lock [[mock tokens=3]]", conv, 5);
  CHECK(check_history_whole(conv) == 6);
  CHECK(db_query1("SELECT count(*) FROM messages WHERE client_msg_id = 'm-2' AND user_id = $1",
                  user)[0]
            .as<int>()
        == 1);
}

TEST_CASE("store faults: a connection waits CHAT_CONVERSATION_TIMEOUT for an ack, then the "
          "client hears unavailable and its retry is acked once") {
  // The conversation would wait 30 s for the database; the connection
  // gives up on it after 1 s, so the client hears about a stuck database
  // while it is still stuck, and its retry with the same clientMsgId is
  // answered once the database is back, with one message stored.
  service::options opts;
  opts.chatd_env = {{"CHAT_STORE_TIMEOUT", "30"},
                    {"CHAT_DB_STATEMENT_TIMEOUT", "30"},
                    {"CHAT_CONVERSATION_TIMEOUT", "1"}};
  service svc{opts};
  auto user = unique_user();
  ws_client ws;
  REQUIRE(ws.connect(svc.port, svc.ws_path(user)) == 101);
  ws.send_text(send_frame("t-1", "before [[mock tokens=3]]"));
  auto conv = str(ws.read_until("ack"), "conversationId");
  ws.read_until("done");
  clock_type::time_point first_unavailable{};
  clock_type::time_point released{};
  std::string message_id;
  {
    table_lock lock{3s};
    ws.send_text(send_frame("t-2", "during the lock [[mock tokens=3]]", conv));
    auto deadline = clock_type::now() + 30s;
    std::vector<std::string> frames;
    while (message_id.empty()) {
      REQUIRE(clock_type::now() < deadline);
      auto text = ws.read(20s);
      REQUIRE(text.has_value());
      auto f = parse(*text);
      if (str(f, "type") == "error" && str(f, "clientMsgId") == "t-2") {
        CHECK(str(f, "code") == "unavailable");
        if (first_unavailable == clock_type::time_point{})
          first_unavailable = clock_type::now();
        std::this_thread::sleep_for(300ms);
        ws.send_text(send_frame("t-2", "during the lock [[mock tokens=3]]", conv));
      } else if (str(f, "type") == "ack") {
        CHECK(num(f, "seq") == 3);
        message_id = str(f, "messageId");
      }
    }
    released = lock.released();
    CHECK(read_reply_of(ws, message_id, 30s).complete());
  }
  // The first answer came while the table was still locked.
  REQUIRE(first_unavailable != clock_type::time_point{});
  CHECK(first_unavailable < released);
  CHECK(db_query1("SELECT count(*) FROM messages WHERE user_id = $1 AND client_msg_id = 't-2'",
                  user)[0]
            .as<int64_t>()
        == 1);
}
