// Per-user limits across the cluster: CHAT_MAX_CONNECTIONS_PER_USER and
// CHAT_USER_SENDS_PER_MIN count what the user holds on every node (each
// node reports its counts through the membership table once a second,
// common/cluster_usage.hpp).

#include <memory>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "tests/integration/harness.hpp"

using namespace chat::test;

namespace {

service::options limited_node() {
  service::options opts;
  opts.chatd_env = {{"CHAT_CLUSTER_LISTEN", "127.0.0.1:0"},
                    {"CHAT_MAX_CONNECTIONS_PER_USER", "3"},
                    {"CHAT_USER_SENDS_PER_MIN", "5"}};
  return opts;
}

/// Past two report ticks (1 s each): the other node has seen the counts.
void let_nodes_exchange_counts() {
  std::this_thread::sleep_for(2500ms);
}

} // namespace

TEST_CASE("cluster: a user's connections and sends are limited across nodes, not per node") {
  service a{limited_node()};
  service b{limited_node()};
  wait_live_nodes(a.port, 2);
  wait_live_nodes(b.port, 2);
  INFO("node a: " << a.chatd->log());
  INFO("node b: " << b.chatd->log());
  auto user = unique_user();

  // Connections: 2 on a, then b has room for 1 only.
  std::vector<std::unique_ptr<ws_client>> on_a;
  for (int i = 0; i < 2; ++i) {
    on_a.push_back(std::make_unique<ws_client>());
    REQUIRE(on_a.back()->connect(a.port, a.ws_path(user)) == 101);
  }
  let_nodes_exchange_counts();
  ws_client on_b;
  CHECK(on_b.connect(b.port, b.ws_path(user)) == 101);
  ws_client fourth;
  CHECK(fourth.connect(b.port, b.ws_path(user)) == 429);
  // One closes on a: room again once b hears of it.
  on_a.pop_back();
  let_nodes_exchange_counts();
  ws_client again;
  CHECK(again.connect(b.port, b.ws_path(user)) == 101);

  // Sends: 3 through a, then b accepts 2 more of the 5 a minute.
  auto& ws_a = *on_a.front();
  for (int i = 0; i < 3; ++i) {
    auto id = "lim-a-" + std::to_string(i);
    ws_a.send_text(send_frame(id, "on a [[mock tokens=1]]"));
    CHECK(str(ws_a.read_until("ack"), "clientMsgId") == id);
  }
  let_nodes_exchange_counts();
  for (int i = 0; i < 2; ++i) {
    auto id = "lim-b-" + std::to_string(i);
    on_b.send_text(send_frame(id, "on b [[mock tokens=1]]"));
    CHECK(str(on_b.read_until("ack"), "clientMsgId") == id);
  }
  on_b.send_text(send_frame("lim-b-2", "one too many"));
  auto e = on_b.read_until("error");
  CHECK(str(e, "code") == "rate_limited");
  CHECK(str(e, "clientMsgId") == "lim-b-2");
  // Another user is not affected.
  ws_client other;
  REQUIRE(other.connect(b.port, b.ws_path(unique_user())) == 101);
  other.send_text(send_frame("lim-o", "someone else [[mock tokens=1]]"));
  CHECK(str(other.read_until("ack"), "clientMsgId") == "lim-o");
}
