#include "gateway/frame_budget.hpp"

#include <doctest/doctest.h>

using chat::gateway::frame_budget;
using chat::gateway::frame_rate;

namespace {

/// Frames taken at `now_ms` until the budget says no (at most `limit`).
int take_all(frame_budget& b, const frame_rate& r, int64_t now_ms, int limit = 100000) {
  int n = 0;
  while (n < limit && b.take(r, now_ms))
    ++n;
  return n;
}

} // namespace

TEST_CASE("frame budget: a full budget takes a burst, then nothing until time passes") {
  frame_rate r{10, 20};
  frame_budget b{r, 1000};
  CHECK(take_all(b, r, 1000) == 20);
  CHECK_FALSE(b.take(r, 1000));
  CHECK_FALSE(b.take(r, 1050)); // half a token back
  CHECK(b.take(r, 1100));       // one
  CHECK_FALSE(b.take(r, 1100));
}

TEST_CASE("frame budget: the sustained rate goes on forever, faster does not") {
  frame_rate r{10, 20};
  frame_budget b{r, 0};
  take_all(b, r, 0);
  // One frame every 100 ms (10/s) for a minute: every one is taken.
  int refused = 0;
  for (int64_t t = 100; t <= 60000; t += 100)
    refused += b.take(r, t) ? 0 : 1;
  CHECK(refused == 0);
  // Twice as fast: about half are refused.
  int taken = 0;
  for (int64_t t = 60050; t <= 70000; t += 50)
    taken += b.take(r, t) ? 1 : 0;
  CHECK(taken >= 99);
  CHECK(taken <= 101);
}

TEST_CASE("frame budget: idle time refills up to the burst, never beyond") {
  frame_rate r{10, 20};
  frame_budget b{r, 0};
  take_all(b, r, 0);
  CHECK(take_all(b, r, 3600 * 1000) == 20); // an hour idle: still 20
  CHECK(take_all(b, r, 3600 * 1000 + 500) == 5);
}

TEST_CASE("frame budget: a clock that does not move forward takes nothing back") {
  frame_rate r{10, 2};
  frame_budget b{r, 1000};
  CHECK(take_all(b, r, 1000) == 2);
  CHECK_FALSE(b.take(r, 900)); // earlier: no refill, no harm
  CHECK(b.take(r, 1100));
}

TEST_CASE("frame budget: a rate of 0 is no limit") {
  frame_rate r{0, 1};
  frame_budget b{r, 0};
  CHECK(take_all(b, r, 0, 100000) == 100000);
}
