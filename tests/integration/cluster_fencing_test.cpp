// Cluster ownership over time: a paused owner that comes back after the
// others counted it out (fencing keeps seqs whole), and a node that rejoins
// and takes its share of the conversations back (hand-over).

#include <signal.h>

#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <doctest/doctest.h>

#include "tests/integration/harness.hpp"

using namespace chat::test;

namespace {

using clock_type = std::chrono::steady_clock;

service::options cluster_node() {
  service::options opts;
  // A member that stops beating is out after 1.5 s (default 5 s).
  opts.chatd_env = {{"CHAT_CLUSTER_LISTEN", "127.0.0.1:0"}, {"CHAT_CLUSTER_SUSPECT_TIMEOUT", "1.5"}};
  return opts;
}

int64_t ms_since(clock_type::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0).count();
}

struct acked {
  std::string message_id;
  int64_t seq = 0;
};

/// Sends until acked, as clients do: an `unavailable` answer (the
/// conversation is moving between nodes) is retried with the same
/// clientMsgId after a moment. Other frames are skipped.
acked send_until_acked(ws_client& ws, const std::string& client_msg_id, const std::string& content,
                       const std::string& conv, std::chrono::seconds timeout = 30s) {
  auto deadline = clock_type::now() + timeout;
  ws.send_text(send_frame(client_msg_id, content, conv));
  for (;;) {
    REQUIRE(clock_type::now() < deadline);
    auto text = ws.read(std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - clock_type::now()));
    REQUIRE(text.has_value());
    auto f = parse(*text);
    auto type = str(f, "type");
    if (type == "error" && str(f, "clientMsgId") == client_msg_id) {
      CHECK(str(f, "code") == "unavailable");
      std::this_thread::sleep_for(200ms);
      ws.send_text(send_frame(client_msg_id, content, conv));
    } else if (type == "ack" && str(f, "clientMsgId") == client_msg_id) {
      return {str(f, "messageId"), num(f, "seq")};
    }
  }
}

/// Waits until every message of `conv` is finished and there are `n`.
void wait_history(const std::string& conv, int64_t n) {
  auto deadline = clock_type::now() + 30s;
  for (;;) {
    auto row = db_query1("SELECT count(*), count(*) FILTER (WHERE role = 'assistant' AND "
                         "finish_reason IS NULL) FROM messages WHERE conversation_id = $1",
                         conv);
    if (row[0].as<int64_t>() >= n && row[1].as<int64_t>() == 0)
      return;
    REQUIRE_MESSAGE(clock_type::now() < deadline,
                    "conversation " << conv << " has " << row[0].as<int64_t>() << " of " << n
                                    << " messages, " << row[1].as<int64_t>() << " unfinished");
    std::this_thread::sleep_for(100ms);
  }
}

/// Whether a line of `log` contains both `a` and `b`.
bool has_line(const std::string& log, const std::string& a, const std::string& b) {
  std::istringstream in{log};
  for (std::string line; std::getline(in, line);)
    if (line.find(a) != std::string::npos && line.find(b) != std::string::npos)
      return true;
  return false;
}

} // namespace

TEST_CASE("cluster: a paused owner is counted out, the survivor serves its conversation, and "
          "once resumed the two never give two messages one seq") {
  service a{cluster_node()};
  service b{cluster_node()};
  wait_live_nodes(a.port, 2);
  wait_live_nodes(b.port, 2);
  std::this_thread::sleep_for(300ms); // the directories have the view too
  INFO("node a: " << a.chatd->log());
  INFO("node b: " << b.chatd->log());
  auto user = unique_user();
  std::map<std::string, int64_t> acks; // clientMsgId -> acked seq

  ws_client on_a;
  REQUIRE(on_a.connect(a.port, a.ws_path(user)) == 101);
  on_a.send_text(send_frame("p-1", "first [[mock tokens=3]]"));
  auto ack1 = on_a.read_until("ack");
  auto conv = str(ack1, "conversationId"); // created on a: a owns it
  acks["p-1"] = num(ack1, "seq");
  CHECK(read_reply_of(on_a, str(ack1, "messageId")).complete());

  ws_client on_b;
  REQUIRE(on_b.connect(b.port, b.ws_path(user)) == 101);
  on_b.send_text(send_frame("p-2", "slow [[mock delay_ms=50 tokens=400]]", conv));
  auto ack2 = on_b.read_until("ack");
  acks["p-2"] = num(ack2, "seq");
  read_chunks(on_b, str(ack2, "messageId"), 5);
  std::this_thread::sleep_for(1200ms); // past a checkpoint

  // SIGSTOP: a keeps its sockets and its database lock, but stops beating.
  auto t0 = clock_type::now();
  a.chatd->signal(SIGSTOP);
  auto out_ms = wait_live_nodes(b.port, 1);
  // b's connection follows the conversation to b, which claims it: the
  // reply a was generating is kept as it was checkpointed, interrupted.
  for (;;) {
    auto text = on_b.read(20s);
    REQUIRE(text.has_value());
    auto f = parse(*text);
    if (str(f, "type") == "message" && num(f, "seq") == 4) {
      CHECK(str(f, "finishReason") == "interrupted");
      break;
    }
  }
  auto followed_ms = ms_since(t0);
  auto r3 = send_until_acked(on_b, "p-3", "while a is paused [[mock tokens=3]]", conv);
  acks["p-3"] = r3.seq;
  CHECK(r3.seq == 5);
  CHECK(read_reply_of(on_b, r3.message_id).complete());
  auto answered_ms = ms_since(t0);

  // SIGCONT: a's conversation actor still believes it owns the
  // conversation, with a reply in progress; both connections send at once.
  a.chatd->signal(SIGCONT);
  auto t1 = clock_type::now();
  auto r4 = send_until_acked(on_a, "p-4", "a after resuming [[mock tokens=3]]", conv);
  auto r5 = send_until_acked(on_b, "p-5", "b after resuming [[mock tokens=3]]", conv);
  acks["p-4"] = r4.seq;
  acks["p-5"] = r5.seq;
  auto resumed_ms = ms_since(t1);
  MESSAGE("owner paused mid-reply (suspect timeout 1.5 s): out of b's view after "
          << out_ms << " ms, b's connection had the interrupted reply after " << followed_ms
          << " ms, a new send answered whole after " << answered_ms
          << " ms; after resuming, both sends acked within " << resumed_ms << " ms");

  // Every ack names what the database holds, no seq twice.
  std::set<int64_t> seqs;
  for (auto& [client_msg_id, seq] : acks) {
    CHECK(seqs.insert(seq).second);
    auto row = db_query1("SELECT seq FROM messages WHERE user_id = $1 AND client_msg_id = $2",
                         user, client_msg_id);
    CHECK_MESSAGE(row[0].as<int64_t>() == seq, client_msg_id << " acked at " << seq);
  }
  wait_history(conv, 10);
  CHECK(check_history_whole(conv) == 10);
  // The resumed node's actor was refused by the fence, and handed over.
  CHECK(a.chatd->log().find("conversation_fenced") != std::string::npos);
}

TEST_CASE("cluster: a node restarted rejoins and takes its share of the conversations back") {
  service a{cluster_node()};
  service b{cluster_node()};
  wait_live_nodes(a.port, 2);
  wait_live_nodes(b.port, 2);
  b.chatd->signal(SIGKILL);
  CHECK(b.chatd->wait(10s) == -2);
  wait_live_nodes(a.port, 1);

  // While a is alone, it owns every conversation.
  auto user = unique_user();
  ws_client ws;
  REQUIRE(ws.connect(a.port, a.ws_path(user)) == 101);
  std::vector<std::string> convs;
  for (int i = 0; i < 10; ++i) {
    auto id = "j-" + std::to_string(i);
    ws.send_text(send_frame(id, "alone " + std::to_string(i) + " [[mock tokens=2]]"));
    auto ack = ws.read_until("ack");
    convs.push_back(str(ack, "conversationId"));
    CHECK(read_reply_of(ws, str(ack, "messageId")).complete());
  }

  // b comes back (a new process: its own place in the hash) and the
  // conversations it now owns move to it: a hands them over.
  b.restart_chatd();
  wait_live_nodes(a.port, 2);
  wait_live_nodes(b.port, 2);
  std::this_thread::sleep_for(500ms);
  INFO("node a: " << a.chatd->log());
  INFO("node b: " << b.chatd->log());
  for (size_t i = 0; i < convs.size(); ++i) {
    auto r = send_until_acked(ws, "k-" + std::to_string(i),
                              "back " + std::to_string(i) + " [[mock tokens=2]]", convs[i]);
    CHECK(r.seq == 3);
    CHECK(read_reply_of(ws, r.message_id).complete());
  }
  int on_b = 0;
  auto b_log = b.chatd->log();
  for (auto& conv : convs) {
    CHECK(check_history_whole(conv) == 4);
    if (has_line(b_log, "\"reply_started\"", conv))
      ++on_b;
  }
  MESSAGE("after rejoining, node b serves " << on_b << " of " << convs.size()
                                            << " conversations created while it was away");
  CHECK(on_b > 0);
  CHECK(a.chatd->log().find("conversations_handed_over") != std::string::npos);
  CHECK(gauge(b.port, "chat_conversations_live") >= on_b);
}

TEST_CASE("cluster: a send in flight to an owner that stops answering goes again to the new "
          "owner at once, not after the request timeout") {
  service a{cluster_node()};
  service b{cluster_node()};
  wait_live_nodes(a.port, 2);
  wait_live_nodes(b.port, 2);
  std::this_thread::sleep_for(300ms);
  INFO("node a: " << a.chatd->log());
  INFO("node b: " << b.chatd->log());
  auto user = unique_user();
  ws_client on_a;
  REQUIRE(on_a.connect(a.port, a.ws_path(user)) == 101);
  on_a.send_text(send_frame("q-1", "first [[mock tokens=2]]"));
  auto ack1 = on_a.read_until("ack");
  auto conv = str(ack1, "conversationId"); // a owns it
  CHECK(read_reply_of(on_a, str(ack1, "messageId")).complete());

  // A connection on b follows the conversation (its session holds a's
  // actor); the owner freezes just as it sends: the send is in flight to an
  // actor that will never answer.
  ws_client on_b;
  REQUIRE(on_b.connect(b.port, b.ws_path(user)) == 101);
  on_b.send_text(subscribe_frame(conv, 0));
  CHECK(num(on_b.read_until("message"), "seq") == 1);
  CHECK(num(on_b.read_until("message"), "seq") == 2);
  a.chatd->signal(SIGSTOP);
  auto t0 = clock_type::now();
  on_b.send_text(send_frame("q-2", "into a frozen owner [[mock tokens=2]]", conv));
  // Once b counts a out (suspect timeout 1.5 s, the link's heartbeat too)
  // the send goes again, to b: acked long before the 60 s request timeout.
  auto ack2 = on_b.read_until("ack", nullptr, 15s);
  auto acked_ms = ms_since(t0);
  CHECK(str(ack2, "clientMsgId") == "q-2");
  CHECK(num(ack2, "seq") == 3);
  CHECK(read_reply_of(on_b, str(ack2, "messageId")).complete());
  MESSAGE("a send in flight when its owner froze was acked by the new owner after " << acked_ms
                                                                                   << " ms");
  CHECK(b.chatd->log().find("message_resent") != std::string::npos);
  a.chatd->signal(SIGCONT);
  wait_history(conv, 4);
  CHECK(check_history_whole(conv) == 4);
}
