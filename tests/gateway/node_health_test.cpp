#include "gateway/node_health.hpp"

// Before CAF's test DSL, whose `allow` macro breaks actors/rate_limiter.hpp.
#include "actors/type_registry.hpp"
#include "gateway/rest.hpp"

#include <doctest/doctest.h>

#include <caf/test/dsl.hpp>

// The health flag behind /healthz and /readyz: watched actors that die make
// the node unhealthy, under CAF's deterministic coordinator (no sleeps).

using namespace chat;
using gateway::node_health;

namespace {

struct config : caf::actor_system_config {
  config() {
    register_message_types(*this);
  }
};

struct fixture : test_coordinator_fixture<config> {
  caf::actor idle() {
    return sys.spawn([]() -> caf::behavior { return {[](int) {}}; });
  }
};

} // namespace

TEST_CASE("gateway: a watched actor that dies makes the node unhealthy, and says which") {
  fixture f;
  auto health = std::make_shared<node_health>();
  auto store = f.idle();
  auto ai_pool = f.idle();
  gateway::watch(caf::actor_cast<caf::strong_actor_ptr>(store), "store", health);
  gateway::watch(caf::actor_cast<caf::strong_actor_ptr>(ai_pool), "ai_pool", health);
  f.run();
  CHECK(health->healthy());

  gateway::gateway_services services;
  services.health = health;
  CHECK(gateway::healthz_reply(services).status == 200);

  caf::anon_send_exit(ai_pool, caf::exit_reason::kill);
  f.run();
  CHECK_FALSE(health->healthy());
  CHECK(health->dead() == "ai_pool");
  auto reply = gateway::healthz_reply(services);
  CHECK(reply.status == 503);
  CHECK(reply.body == R"({"status":"failed","dead":"ai_pool"})");

  // /readyz says the same, without asking the (maybe dead) store.
  int readyz_status = 0;
  gateway::handle_readyz(services, false, [&](gateway::http_reply r) { readyz_status = r.status; });
  CHECK(readyz_status == 503);

  caf::anon_send_exit(store, caf::exit_reason::user_shutdown); // any reason counts
  f.run();
  CHECK(health->dead() == "ai_pool,store");
}

TEST_CASE("gateway: actors stopped on purpose at shutdown are not failures") {
  fixture f;
  auto health = std::make_shared<node_health>();
  auto directory = f.idle();
  gateway::watch(caf::actor_cast<caf::strong_actor_ptr>(directory), "directory", health);
  health->stop_watching();
  caf::anon_send_exit(directory, caf::exit_reason::user_shutdown);
  f.run();
  CHECK(health->healthy());
  CHECK(health->dead().empty());
}

TEST_CASE("gateway: an actor already gone when watched counts as dead") {
  fixture f;
  auto health = std::make_shared<node_health>();
  auto store = f.idle();
  caf::anon_send_exit(store, caf::exit_reason::kill);
  f.run();
  gateway::watch(caf::actor_cast<caf::strong_actor_ptr>(store), "store", health);
  CHECK_FALSE(health->healthy());
  gateway::watch(nullptr, "directory", health);
  CHECK(health->dead() == "store,directory");
}

TEST_CASE("gateway: no health flag means healthy (services not watched)") {
  gateway::gateway_services services;
  CHECK(gateway::healthz_reply(services).status == 200);
}
