// Crash safety and shutdown: what a user keeps when chatd dies (kill -9) or
// is stopped while a reply is being generated.

#include <signal.h>

#include <doctest/doctest.h>

#include "common/ids.hpp"
#include "tests/integration/harness.hpp"

using namespace chat::test;

namespace {

/// Settings for a chatd that can be killed and started again on the same
/// database and node id (restart_chatd()).
service::options one_node(std::map<std::string, std::string> extra_env = {}) {
  service::options opts;
  opts.node_id = "node-" + chat::new_uuid().substr(0, 8);
  opts.chatd_env = std::move(extra_env);
  return opts;
}

} // namespace

TEST_CASE("crash: kill -9 mid-reply, restart: every acked message is there, the reply is "
          "interrupted, a queued message is answered") {
  service svc{one_node()};
  auto user = unique_user();
  std::string conv;
  std::string reply_prefix;
  {
    ws_client ws;
    REQUIRE(ws.connect(svc.port, svc.ws_path(user)) == 101);
    ws.send_text(send_frame("k-1", "quick [[mock tokens=3]]"));
    auto ack1 = ws.read_until("ack");
    conv = str(ack1, "conversationId");
    ws.read_until("done");
    ws.send_text(send_frame("k-2", "slow [[mock delay_ms=60 tokens=200]]", conv));
    CHECK(num(ws.read_until("ack"), "seq") == 3);
    // A second question, acked at once, waits for the reply in progress.
    ws.send_text(send_frame("k-2b", "queued question [[mock tokens=4]]", conv));
    bool queued_acked = false;
    // Stream for well over one checkpoint interval (1 s).
    auto until = std::chrono::steady_clock::now() + 1800ms;
    while (std::chrono::steady_clock::now() < until) {
      auto f = ws.read_json();
      if (str(f, "type") == "ack") {
        CHECK(num(f, "seq") == 5);
        queued_acked = true;
        continue;
      }
      REQUIRE(str(f, "type") == "chunk");
      reply_prefix += str(f, "delta");
    }
    REQUIRE(queued_acked);
    svc.chatd->signal(SIGKILL);
    CHECK(svc.chatd->wait(10s) == -2);
  }
  svc.restart_chatd();
  CHECK(svc.chatd->log().find("replies_interrupted_recovered") != std::string::npos);
  ws_client ws;
  REQUIRE(ws.connect(svc.port, svc.ws_path(user)) == 101);
  ws.send_text(subscribe_frame(conv, 0));
  std::vector<rapidjson::Document> msgs;
  for (int i = 0; i < 5; ++i) {
    msgs.push_back(ws.read_json());
    CHECK(str(msgs.back(), "type") == "message");
    CHECK(num(msgs.back(), "seq") == i + 1);
  }
  CHECK(str(msgs[2], "content") == "slow [[mock delay_ms=60 tokens=200]]");
  auto& interrupted = msgs[3];
  CHECK(str(interrupted, "role") == "assistant");
  CHECK(str(interrupted, "finishReason") == "interrupted");
  auto kept = str(interrupted, "content");
  CHECK_FALSE(kept.empty());               // the checkpoint
  CHECK(reply_prefix.rfind(kept, 0) == 0); // a prefix of what was streamed
  // The queued question, acked before the crash, is answered now (seq 6).
  CHECK(str(msgs[4], "clientMsgId") == "k-2b");
  auto answer = read_reply_of(ws, str(msgs[4], "messageId"));
  CHECK(answer.complete());
  CHECK(answer.seq == 6);
  CHECK(answer.reply_to == str(msgs[4], "messageId"));
  CHECK(answer.content() == mock_reply("queued question", 4));
  // The conversation goes on with the next seqs.
  ws.send_text(send_frame("k-3", "after the crash", conv));
  CHECK(num(ws.read_until("ack"), "seq") == 7);
  CHECK(str(ws.read_until("done"), "finishReason") == "stop");
}

TEST_CASE("crash: a reply that outlives the drain timeout is stored interrupted, chatd exits 0") {
  service svc{one_node({{"CHAT_DRAIN_TIMEOUT", "1"}})};
  auto user = unique_user();
  ws_client ws;
  REQUIRE(ws.connect(svc.port, svc.ws_path(user)) == 101);
  ws.send_text(send_frame("t-1", "endless [[mock delay_ms=50 tokens=1000]]"));
  auto conv = str(ws.read_until("ack"), "conversationId");
  ws.read_until("chunk");
  auto t0 = std::chrono::steady_clock::now();
  svc.chatd->signal(SIGTERM);
  auto done = ws.read_until("done", nullptr, 15s);
  CHECK(str(done, "finishReason") == "interrupted");
  CHECK_FALSE(ws.read(10s).has_value());
  CHECK(ws.close_code() == 1001);
  CHECK(svc.chatd->wait(15s) == 0);
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now()
                                                                    - t0);
  MESSAGE("SIGTERM to exit with a reply cut at the 1 s drain timeout: " << took.count() << " ms");
  auto row = db_query1(
      "SELECT finish_reason, length(content) FROM messages WHERE conversation_id = $1 AND seq = 2",
      conv);
  CHECK(row[0].as<std::string>() == "interrupted");
  CHECK(row[1].as<int>() > 0);
}

TEST_CASE("drain: sends get unavailable once draining, no queued reply starts after the drain "
          "timeout, and the next process answers it") {
  service svc{one_node({{"CHAT_DRAIN_TIMEOUT", "1"}})};
  auto user = unique_user();
  ws_client ws;
  REQUIRE(ws.connect(svc.port, svc.ws_path(user)) == 101);
  ws.send_text(send_frame("d-1", "endless [[mock delay_ms=50 tokens=1000]]"));
  auto conv = str(ws.read_until("ack"), "conversationId");
  ws.send_text(send_frame("d-2", "queued question [[mock tokens=3]]", conv));
  auto queued = ws.read_until("ack");
  CHECK(num(queued, "seq") == 3);
  svc.chatd->signal(SIGTERM);
  svc.chatd->wait_for_line("\"event\":\"drain_started\"");
  ws.send_text(send_frame("d-3", "while draining", conv));
  bool refused = false;
  bool interrupted = false;
  for (;;) {
    auto text = ws.read(15s);
    if (!text)
      break; // closed with 1001
    auto f = parse(*text);
    auto type = str(f, "type");
    if (type == "error" && str(f, "clientMsgId") == "d-3") {
      CHECK(str(f, "code") == "unavailable");
      refused = true;
    } else if (type == "done") {
      CHECK(str(f, "replyTo") != str(queued, "messageId")); // never started
      interrupted = str(f, "finishReason") == "interrupted";
    } else if (type == "chunk") {
      CHECK(str(f, "replyTo") != str(queued, "messageId"));
    }
  }
  CHECK(refused);
  CHECK(interrupted);
  CHECK(ws.close_code() == 1001);
  CHECK(svc.chatd->wait(15s) == 0);
  // The queued message is still unanswered, and d-3 was never stored.
  CHECK(db_query1("SELECT count(*) FROM messages WHERE conversation_id = $1", conv)[0].as<int>()
        == 3);
  svc.restart_chatd();
  ws_client again;
  REQUIRE(again.connect(svc.port, svc.ws_path(user)) == 101);
  again.send_text(subscribe_frame(conv, 3));
  auto answer = read_reply_of(again, str(queued, "messageId"));
  CHECK(answer.complete());
  CHECK(answer.seq == 4);
  // The refused send goes again, to the new process, with its clientMsgId.
  again.send_text(send_frame("d-3", "while draining", conv));
  auto ack = again.read_until("ack");
  CHECK(num(ack, "seq") == 5);
  CHECK(read_reply_of(again, str(ack, "messageId")).complete());
  CHECK(check_history_whole(conv) == 6);
}
