// Cluster membership: chatd nodes on one database, each with a cluster
// port, agree on the live set; a node that dies (kill -9) or leaves
// (SIGTERM) is out of it within seconds; /readyz is 200 only once joined.

#include <signal.h>

#include <sstream>
#include <thread>

#include <doctest/doctest.h>

#include "tests/integration/harness.hpp"

using namespace chat::test;

namespace {

using clock_type = std::chrono::steady_clock;

service::options cluster_node() {
  service::options opts;
  opts.chatd_env = {{"CHAT_CLUSTER_LISTEN", "127.0.0.1:0"}};
  return opts;
}

} // namespace

TEST_CASE("cluster: nodes on one database agree on the live set, a dead or leaving node is out "
          "within seconds") {
  service a{cluster_node()};
  service b{cluster_node()};
  service c{cluster_node()};
  for (auto* node : {&a, &b, &c}) {
    wait_live_nodes(node->port, 3);
    CHECK(gauge(node->port, "chat_cluster_joined") == 1);
    CHECK(http_request(node->port, "GET", "/readyz").status == 200);
  }
  CHECK(c.chatd->log().find("cluster_port_unauthenticated") != std::string::npos);

  // kill -9: its liveness lock goes with its connection.
  c.chatd->signal(SIGKILL);
  CHECK(c.chatd->wait(10s) == -2);
  auto t_a = wait_live_nodes(a.port, 2);
  auto t_b = wait_live_nodes(b.port, 2);
  MESSAGE("kill -9: out of the live set after " << t_a << " ms (node a), " << t_b
                                                << " ms (node b)");
  CHECK(a.chatd->log().find("cluster_member_gone") != std::string::npos);

  // SIGTERM: it leaves first, then drains and exits 0.
  b.chatd->signal(SIGTERM);
  auto t_leave = wait_live_nodes(a.port, 1);
  MESSAGE("SIGTERM: out of the live set after " << t_leave << " ms");
  CHECK(b.chatd->wait(15s) == 0);

  // The survivor still serves.
  auto user = unique_user();
  ws_client ws;
  REQUIRE(ws.connect(a.port, a.ws_path(user)) == 101);
  ws.send_text(send_frame("m-1", "still here [[mock tokens=3]]"));
  auto ack = ws.read_until("ack");
  CHECK(read_reply_of(ws, str(ack, "messageId")).complete());
  CHECK(check_history_whole(str(ack, "conversationId")) == 2);
}

TEST_CASE("cluster: a single node has no cluster port and counts no members") {
  service single;
  CHECK(gauge(single.port, "chat_cluster_live_nodes") == 0);
  CHECK(gauge(single.port, "chat_cluster_joined") == 0);
  CHECK(http_request(single.port, "GET", "/readyz").status == 200);
}

TEST_CASE("cluster: a bad CHAT_CLUSTER_LISTEN stops chatd at once with one line naming it") {
  auto env = std::map<std::string, std::string>{{"DATABASE_URL", database_url()},
                                                {"CHAT_JWT_SECRET", std::string(40, 'x')},
                                                {"CHAT_LISTEN", "127.0.0.1:0"},
                                                {"CHAT_CLUSTER_LISTEN", "no-port-here"}};
  process chatd{bin_dir() + "/chatd", {}, env};
  CHECK(chatd.wait(10s) == 2);
  CHECK(chatd.log().find("CHAT_CLUSTER_LISTEN") != std::string::npos);
}

TEST_CASE("cluster: a conversation used from connections on two nodes: both get every event, in "
          "order, once") {
  service a{cluster_node()};
  service b{cluster_node()};
  wait_live_nodes(a.port, 2);
  wait_live_nodes(b.port, 2);
  std::this_thread::sleep_for(300ms); // the directories have the view too
  auto user = unique_user();
  ws_client on_a;
  REQUIRE(on_a.connect(a.port, a.ws_path(user)) == 101);
  on_a.send_text(send_frame("x-1", "first [[mock tokens=4]]"));
  auto ack1 = on_a.read_until("ack");
  auto conv = str(ack1, "conversationId");
  CHECK(read_reply_of(on_a, str(ack1, "messageId")).complete());

  // Node b finds the conversation on the node that owns it.
  INFO("node a: " << a.chatd->log());
  INFO("node b: " << b.chatd->log());
  ws_client on_b;
  REQUIRE(on_b.connect(b.port, b.ws_path(user)) == 101);
  on_b.send_text(subscribe_frame(conv, 0));
  auto m1 = on_b.read_until("message");
  CHECK(num(m1, "seq") == 1);
  auto m2 = on_b.read_until("message");
  CHECK(num(m2, "seq") == 2);

  // A send through node b: acked there, seen on a, one reply to both.
  on_b.send_text(send_frame("x-2", "from b [[mock tokens=6]]", conv));
  auto ack2 = on_b.read_until("ack");
  CHECK(num(ack2, "seq") == 3);
  auto seen_on_a = on_a.read_until("message");
  CHECK(str(seen_on_a, "clientMsgId") == "x-2");
  auto reply_a = read_reply_of(on_a, str(ack2, "messageId"));
  auto reply_b = read_reply_of(on_b, str(ack2, "messageId"));
  CHECK(reply_a.complete());
  CHECK(reply_b.complete());
  CHECK(reply_a.duplicates == 0);
  CHECK(reply_b.duplicates == 0);
  CHECK(reply_a.out_of_order == 0);
  CHECK(reply_b.out_of_order == 0);
  CHECK(reply_a.content() == reply_b.content());
  CHECK(reply_a.content() == mock_reply("from b", 6));

  // And back: a send on a reaches b.
  on_a.send_text(send_frame("x-3", "from a [[mock tokens=3]]", conv));
  auto ack3 = on_a.read_until("ack");
  CHECK(num(ack3, "seq") == 5);
  CHECK(str(on_b.read_until("message"), "clientMsgId") == "x-3");
  CHECK(read_reply_of(on_b, str(ack3, "messageId")).complete());
  CHECK(read_reply_of(on_a, str(ack3, "messageId")).complete());
  CHECK(check_history_whole(conv) == 6);
  // It went across: b reached a's directory; only a generated replies.
  CHECK(b.chatd->log().find("cluster_peer_connected") != std::string::npos);
  CHECK(b.chatd->log().find("reply_started") == std::string::npos);
}

TEST_CASE("cluster: the owner of a conversation killed mid-reply: a connection on another node "
          "follows it, the reply is interrupted, a new send works within seconds") {
  service a{cluster_node()};
  service b{cluster_node()};
  wait_live_nodes(a.port, 2);
  wait_live_nodes(b.port, 2);
  std::this_thread::sleep_for(300ms);
  auto user = unique_user();
  ws_client on_a;
  REQUIRE(on_a.connect(a.port, a.ws_path(user)) == 101);
  on_a.send_text(send_frame("y-1", "first [[mock tokens=3]]"));
  auto ack1 = on_a.read_until("ack");
  auto conv = str(ack1, "conversationId"); // created on a: a owns it
  CHECK(read_reply_of(on_a, str(ack1, "messageId")).complete());

  ws_client on_b;
  REQUIRE(on_b.connect(b.port, b.ws_path(user)) == 101);
  on_b.send_text(send_frame("y-2", "slow [[mock delay_ms=50 tokens=400]]", conv));
  auto ack2 = on_b.read_until("ack");
  CHECK(num(ack2, "seq") == 3);
  read_chunks(on_b, str(ack2, "messageId"), 10);
  std::this_thread::sleep_for(1200ms); // past a checkpoint
  auto t0 = clock_type::now();
  a.chatd->signal(SIGKILL);
  CHECK(a.chatd->wait(10s) == -2);

  // b's session follows the conversation to its new owner (b) and gets the
  // reply as it was kept: interrupted, with its checkpoint.
  rapidjson::Document interrupted;
  for (;;) {
    auto text = on_b.read(20s);
    REQUIRE(text.has_value());
    auto f = parse(*text);
    if (str(f, "type") == "message" && num(f, "seq") == 4) {
      interrupted = std::move(f);
      break;
    }
  }
  auto followed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0);
  CHECK(str(interrupted, "finishReason") == "interrupted");
  CHECK_FALSE(str(interrupted, "content").empty());
  CHECK(b.chatd->log().find("conversation_followed") != std::string::npos);

  on_b.send_text(send_frame("y-3", "after the owner died [[mock tokens=3]]", conv));
  auto ack3 = on_b.read_until("ack");
  CHECK(num(ack3, "seq") == 5);
  CHECK(read_reply_of(on_b, str(ack3, "messageId")).complete());
  auto answered_ms = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0);
  MESSAGE("owner killed mid-reply: the other node's connection had the interrupted reply after "
          << followed_ms.count() << " ms, a new send answered whole after " << answered_ms.count()
          << " ms");
  CHECK(check_history_whole(conv) == 6);
}
