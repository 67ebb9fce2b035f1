// Before CAF's test DSL, whose `allow` macro breaks actors/rate_limiter.hpp.
#include "actors/rate_limiter.hpp"

#include <doctest/doctest.h>

#include <memory>

using chat::cluster_usage;
using chat::rate_limiter;

TEST_CASE("rate limiter: a user's sends per minute stop at the limit, per user") {
  rate_limiter limiter{3};
  CHECK(limiter.allow("alice"));
  CHECK(limiter.allow("alice"));
  CHECK(limiter.allow("alice"));
  CHECK_FALSE(limiter.allow("alice"));
  CHECK(limiter.allow("bob"));
  CHECK(limiter.recent_sends()["alice"].sends == 3);
  rate_limiter off{0};
  for (int i = 0; i < 100; ++i)
    CHECK(off.allow("alice"));
}

TEST_CASE("rate limiter: sends on other nodes count against the limit") {
  auto elsewhere = std::make_shared<cluster_usage>();
  rate_limiter limiter{5, elsewhere};
  elsewhere->replace({{"alice", {0, 4}}});
  CHECK(limiter.allow("alice"));
  CHECK_FALSE(limiter.allow("alice")); // 1 here + 4 elsewhere
  CHECK(limiter.allow("bob"));
  CHECK(limiter.recent_sends()["alice"].sends == 1); // only this node's go out
  elsewhere->replace({});
  CHECK(limiter.allow("alice"));
}
