#include "actors/placement.hpp"

#include <doctest/doctest.h>

#include <map>

#include "common/ids.hpp"

using namespace chat;

namespace {

cluster_members members(int n) {
  cluster_members out;
  for (int i = 0; i < n; ++i)
    out.push_back({"00000000-0000-4000-8000-00000000000" + std::to_string(i),
                   "node" + std::to_string(i), "127.0.0.1:" + std::to_string(9000 + i)});
  return out;
}

} // namespace

TEST_CASE("placement: no members, no owner (a single node owns everything)") {
  CHECK(owner_of(new_uuid(), {}).empty());
}

TEST_CASE("placement: every node computes the same owner, whatever the order of its view") {
  auto view = members(3);
  auto reversed = cluster_members{view.rbegin(), view.rend()};
  for (int i = 0; i < 200; ++i) {
    auto id = new_uuid();
    CHECK(owner_of(id, view) == owner_of(id, reversed));
  }
}

TEST_CASE("placement: conversations spread over the members") {
  auto view = members(3);
  std::map<std::string, int> count;
  for (int i = 0; i < 3000; ++i)
    ++count[owner_of(new_uuid(), view)];
  REQUIRE(count.size() == 3);
  for (auto& [owner, n] : count)
    CHECK(n > 800); // ~1000 each
}

TEST_CASE("placement: a member that goes moves only its own conversations") {
  auto three = members(3);
  auto two = cluster_members{three[0], three[1]};
  int moved = 0;
  for (int i = 0; i < 2000; ++i) {
    auto id = new_uuid();
    auto before = owner_of(id, three);
    auto after = owner_of(id, two);
    if (before != three[2].process_id)
      CHECK(after == before); // nothing else moves
    else
      ++moved;
  }
  CHECK(moved > 0);
}

TEST_CASE("placement: the hash is stable across builds and runs") {
  CHECK(stable_hash("") == stable_hash(""));
  CHECK(stable_hash("a") != stable_hash("b"));
  // Pinned: a change here re-places every conversation of a running cluster.
  CHECK(stable_hash("chat") == 18402969570443564118ull);
}
