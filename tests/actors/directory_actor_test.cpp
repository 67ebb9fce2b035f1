#include "actors/directory_actor.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <string>

#include <caf/test/dsl.hpp>

#include "actors/errors.hpp"
#include "actors/placement.hpp"
#include "common/ids.hpp"
#include "tests/actors/stand_ins.hpp"

// The directory's placement and hand-over under CAF's deterministic test
// coordinator. There is no middleman here, so the directory never connects
// to another member (it skips that without one): what is tested is what
// this node decides from a view, not the lookups it forwards.

using namespace chat;
using namespace chat::actor_tests;

namespace {

const cluster_member node_a{"00000000-0000-4000-8000-00000000000a", "a", "127.0.0.1:9001"};
const cluster_member node_b{"00000000-0000-4000-8000-00000000000b", "b", "127.0.0.1:9002"};

/// A conversation id that `owner` owns under `view`.
std::string id_owned_by(const cluster_member& owner, const cluster_members& view) {
  for (;;) {
    auto id = new_uuid();
    if (owner_of(id, view) == owner.process_id)
      return id;
  }
}

struct fixture : test_coordinator_fixture<test_config> {
  fake_store_actor store;
  ai_actor ai;
  conversation_config cfg;
  directory_actor dir;

  fixture() {
    store = sys.spawn(fake_store);
    ai = sys.spawn(fake_ai);
    cfg.store = caf::actor_cast<persistence_actor>(store);
    cfg.ai = ai;
    cfg.idle_timeout = std::chrono::seconds{60};
    dir = spawn_directory(sys, cfg);
    consume_messages();
  }

  ~fixture() {
    caf::anon_send_exit(dir, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(ai, caf::exit_reason::user_shutdown);
    consume_messages();
  }

  fake_store_state& store_state() {
    return state_of<fake_store_actor::stateful_base<fake_store_state>>(store).state;
  }

  /// A conversation that exists in the database, owned by alice.
  std::string stored_conversation(std::string id) {
    store_state().owners[id] = "alice";
    store_state().epochs[id] = 1;
    return id;
  }

  void view(cluster_members members, const cluster_member& me) {
    caf::anon_send(dir, cluster_view_atom::value, std::move(members), me.process_id);
    consume_messages();
  }

  caf::expected<conversation_actor> lookup(const std::string& id, bool local = false) {
    caf::expected<conversation_actor> result{caf::sec::request_timeout};
    auto on_answer = [&](conversation_actor& c) { result = c; };
    auto on_error = [&](caf::error& e) { result = e; };
    if (local) {
      auto h = self->request(dir, caf::infinite, lookup_local_atom::value, id);
      consume_messages();
      h.receive(on_answer, on_error);
    } else {
      auto h = self->request(dir, caf::infinite, lookup_atom::value, id);
      consume_messages();
      h.receive(on_answer, on_error);
    }
    return result;
  }

  std::pair<std::string, conversation_actor> create(const std::string& user) {
    auto h = self->request(dir, caf::infinite, create_atom::value, user);
    consume_messages();
    std::pair<std::string, conversation_actor> out;
    h.receive(
        [&](std::string& id, conversation_actor& c) {
          out = {id, c};
        },
        [&](caf::error& e) { FAIL("create failed: " << sys.render(e)); });
    return out;
  }

  /// The exit reason of a monitored actor that went down, if one did.
  std::optional<caf::error> down_reason() {
    std::optional<caf::error> reason;
    self->receive([&](caf::down_msg& dm) { reason = dm.reason; },
                  caf::after(std::chrono::seconds{0}) >> [] {});
    return reason;
  }

  bool self_has_message() {
    bool got = false;
    self->receive([&](caf::message&) { got = true; }, caf::after(std::chrono::seconds{0}) >> [] {});
    return got;
  }
};

} // namespace

TEST_CASE_FIXTURE(fixture, "directory: with no view, or a view of this node alone, a lookup "
                           "spawns a local conversation and the next lookup answers the same one") {
  auto first = stored_conversation(new_uuid());
  auto c1 = lookup(first);
  REQUIRE(c1);
  CHECK(*c1);
  auto again = lookup(first);
  REQUIRE(again);
  CHECK(*again == *c1);
  view({node_a}, node_a);
  auto after_view = lookup(first);
  REQUIRE(after_view);
  CHECK(*after_view == *c1); // still served here, not spawned anew
  auto second = stored_conversation(new_uuid());
  auto c2 = lookup(second);
  REQUIRE(c2);
  CHECK(*c2 != *c1);
}

TEST_CASE_FIXTURE(fixture, "directory: an id that is not a UUID is not found") {
  auto r = lookup("not-a-uuid");
  REQUIRE_FALSE(r);
  CHECK(to_error_frame(r.error()).code == protocol::error_code::not_found);
  auto local = lookup("not-a-uuid", true);
  REQUIRE_FALSE(local);
  CHECK(to_error_frame(local.error()).code == protocol::error_code::not_found);
}

TEST_CASE_FIXTURE(fixture, "directory: a view that places a live conversation on another member "
                           "hands it over: it stops as moved, and is no longer served here") {
  view({node_a}, node_a);
  auto id = stored_conversation(id_owned_by(node_b, {node_a, node_b}));
  auto conv = lookup(id);
  REQUIRE(conv);
  self->monitor(*conv);
  view({node_a, node_b}, node_a);
  auto reason = down_reason();
  REQUIRE(reason);
  CHECK(is_conversation_moved(*reason));
  // A lookup now waits for node b's directory (never connected here: no
  // middleman), instead of being answered with a local actor.
  self->send(dir, lookup_atom::value, id);
  consume_messages();
  CHECK_FALSE(self_has_message());
  // A lookup forwarded by b (views that disagree for a moment) is served
  // here, by a new actor.
  auto forwarded = lookup(id, true);
  REQUIRE(forwarded);
  CHECK(*forwarded != *conv);
}

TEST_CASE_FIXTURE(fixture, "directory: a conversation this node keeps under a new view is not "
                           "handed over") {
  view({node_a}, node_a);
  auto id = stored_conversation(id_owned_by(node_a, {node_a, node_b}));
  auto conv = lookup(id);
  REQUIRE(conv);
  self->monitor(*conv);
  view({node_a, node_b}, node_a);
  CHECK_FALSE(down_reason());
  auto again = lookup(id);
  REQUIRE(again);
  CHECK(*again == *conv);
  self->demonitor(conv->address());
}

TEST_CASE_FIXTURE(fixture, "directory: a conversation placed back on this node (the other "
                           "member gone) is served by a new actor") {
  view({node_a}, node_a);
  auto id = stored_conversation(id_owned_by(node_b, {node_a, node_b}));
  auto conv = lookup(id);
  REQUIRE(conv);
  self->monitor(*conv);
  view({node_a, node_b}, node_a);
  auto reason = down_reason();
  REQUIRE(reason);
  CHECK(is_conversation_moved(*reason));
  view({node_a}, node_a); // b left
  auto back = lookup(id);
  REQUIRE(back);
  CHECK(*back != *conv);
}

TEST_CASE_FIXTURE(fixture, "directory: create places new conversations on this node, whatever "
                           "the view, and serves them to later lookups") {
  view({node_a, node_b}, node_a);
  for (int i = 0; i < 16; ++i) {
    auto [id, conv] = create("alice");
    REQUIRE(conv);
    CHECK(looks_like_uuid(id));
    CHECK(owner_of(id, {node_a, node_b}) == node_a.process_id);
    auto found = lookup(id);
    REQUIRE(found);
    CHECK(*found == conv);
  }
}

namespace {

/// Another member's directory: answers forwarded lookups with `conv`.
struct remote_directory_state {
  int lookups = 0;
  conversation_actor conv;
};

directory_actor::behavior_type
fake_remote_directory(directory_actor::stateful_pointer<remote_directory_state> self,
                      conversation_actor conv) {
  self->state.conv = std::move(conv);
  return {
      [=](lookup_atom, const std::string&) { return self->state.conv; },
      [=](lookup_local_atom, const std::string&) {
        ++self->state.lookups;
        return self->state.conv;
      },
      [=](create_atom, const std::string&) -> caf::result<std::string, conversation_actor> {
        return {std::string{}, self->state.conv};
      },
      [=](drain_atom) {},
      [=](cluster_view_atom, cluster_members&, std::string&) {},
      [=](reconnect_atom, const std::string&) {},
      [=](hello_atom, const std::string&, const caf::actor&) {},
  };
}

} // namespace

TEST_CASE_FIXTURE(fixture, "directory: a member's hello gives this node its directory, even "
                           "before the view names it: lookups of its conversations go there") {
  // node_a's id is the smaller: a opens the link to b and says hello; this
  // directory is b's, which never connects to a itself.
  auto remote_conv = spawn_new_conversation(sys, new_uuid(), "alice", cfg);
  auto remote = sys.spawn(fake_remote_directory, remote_conv);
  caf::anon_send(dir, hello_atom::value, node_a.process_id, caf::actor_cast<caf::actor>(remote));
  consume_messages();
  view({node_a, node_b}, node_b);
  auto id = id_owned_by(node_a, {node_a, node_b});
  auto found = lookup(id);
  REQUIRE(found);
  CHECK(*found == remote_conv);
  CHECK(state_of<directory_actor::stateful_base<remote_directory_state>>(remote).state.lookups
        == 1);
  caf::anon_send_exit(remote_conv, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(remote, caf::exit_reason::user_shutdown);
}
