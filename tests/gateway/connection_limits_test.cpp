#include "gateway/connection_limits.hpp"

#include <doctest/doctest.h>

#include "common/metrics.hpp"

using chat::gateway::connection_limits;

TEST_CASE("gateway: the node's connections stop at the limit and come back when released") {
  auto limits = connection_limits::make(2, 32);
  auto gauge_before = chat::metrics::global().node_connections_open.load();
  auto a = limits->try_connection();
  auto b = limits->try_connection();
  CHECK(a);
  CHECK(b);
  CHECK(limits->open() == 2);
  CHECK(chat::metrics::global().node_connections_open == gauge_before + 2);
  CHECK_FALSE(limits->try_connection()); // full
  CHECK(limits->open() == 2);            // a refusal takes nothing
  {
    auto moved = std::move(a); // e.g. from the HTTP to the WebSocket session
    CHECK_FALSE(a);
    CHECK(limits->open() == 2);
  } // released here, once
  CHECK(limits->open() == 1);
  auto c = limits->try_connection();
  CHECK(c);
  c = connection_limits::slot{}; // assigning over a slot releases it
  b = {};
  CHECK(limits->open() == 0);
  CHECK(chat::metrics::global().node_connections_open == gauge_before);
}

TEST_CASE("gateway: each user's WebSocket connections stop at the per-user limit") {
  auto limits = connection_limits::make(100, 2);
  auto a1 = limits->try_user_connection("alice");
  auto a2 = limits->try_user_connection("alice");
  CHECK(a1);
  CHECK(a2);
  CHECK_FALSE(limits->try_user_connection("alice"));
  auto b1 = limits->try_user_connection("bob"); // others are not affected
  CHECK(b1);
  CHECK(limits->open_of("alice") == 2);
  CHECK(limits->open() == 0); // user slots do not count as node connections
  a1 = {};
  CHECK(limits->open_of("alice") == 1);
  CHECK(limits->try_user_connection("alice"));
  CHECK(limits->open_of("alice") == 1); // that one was released at once
}

TEST_CASE("gateway: slots keep their limits alive") {
  connection_limits::slot s;
  {
    auto limits = connection_limits::make(1, 1);
    s = limits->try_user_connection("u");
  }
  CHECK(s);
  s = {}; // releases into the limits it kept alive: no crash
  CHECK_FALSE(s);
}

TEST_CASE("gateway: a user's connections on other nodes count against the per-user limit") {
  auto elsewhere = std::make_shared<chat::cluster_usage>();
  auto limits = connection_limits::make(100, 3, elsewhere);
  elsewhere->replace({{"alice", {2, 0}}});
  auto first = limits->try_user_connection("alice");
  CHECK(first);
  CHECK_FALSE(limits->try_user_connection("alice")); // 1 here + 2 elsewhere
  CHECK(limits->try_user_connection("bob"));
  auto counts = limits->connections_by_user();
  CHECK(counts["alice"].connections == 1); // only this node's go out
  elsewhere->replace({});
  CHECK(limits->try_user_connection("alice"));
}
