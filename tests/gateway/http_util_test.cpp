#include "gateway/http_util.hpp"

#include <doctest/doctest.h>

using chat::gateway::find_token;
using chat::gateway::parse_target;

TEST_CASE("gateway: the Authorization scheme is case-insensitive, the query is the fallback") {
  auto none = parse_target("/api/v1/conversations");
  CHECK(find_token("Bearer abc.def.ghi", none) == "abc.def.ghi");
  CHECK(find_token("bearer abc.def.ghi", none) == "abc.def.ghi");
  CHECK(find_token("BEARER   abc.def.ghi", none) == "abc.def.ghi");
  CHECK(find_token("Basic abc", none).empty());
  CHECK(find_token("Bearer", none).empty());
  CHECK(find_token("Bearer ", none).empty());
  CHECK(find_token("Bearerabc", none).empty());
  auto query = parse_target("/api/v1/chat/ws?token=q.r.s");
  CHECK(find_token("", query) == "q.r.s");
  CHECK(find_token("bearer h.e.a", query) == "h.e.a"); // the header wins
}
