// A node whose store, directory or AI pool actor died must not look healthy:
// /healthz and /readyz answer 503 so that an orchestrator replaces it. The
// actors are killed through chatd's test-only hook (CHAT_TEST_SIGUSR2_KILLS:
// SIGUSR2 kills the named actor), as a crash would end them.

#include <signal.h>

#include <doctest/doctest.h>

#include "tests/integration/harness.hpp"

using namespace chat::test;

TEST_CASE("integration: when the store, directory or AI pool dies, /healthz and /readyz fail") {
  for (std::string victim : {"store", "directory", "ai_pool"}) {
    CAPTURE(victim);
    service::options opts;
    opts.chatd_env["CHAT_TEST_SIGUSR2_KILLS"] = victim;
    service svc{opts};
    REQUIRE(http_request(svc.port, "GET", "/healthz").status == 200);
    REQUIRE(http_request(svc.port, "GET", "/readyz").status == 200);

    svc.chatd->signal(SIGUSR2);
    auto died = svc.chatd->wait_for_line(R"("event":"actor_died")");
    CHECK(died.find(R"("actor":")" + victim + "\"") != std::string::npos);
    auto health = http_request(svc.port, "GET", "/healthz");
    CHECK(health.status == 503);
    CHECK(health.body == R"({"status":"failed","dead":")" + victim + "\"}");
    CHECK(http_request(svc.port, "GET", "/readyz").status == 503);
    CHECK(http_request(svc.port, "GET", "/metrics").body.find("\nchat_actors_dead 1\n")
          != std::string::npos);
  }
}

TEST_CASE("integration: stopping chatd on purpose is not reported as actors dying") {
  service svc;
  svc.chatd->signal(SIGTERM);
  CHECK(svc.chatd->wait(20s) == 0);
  CHECK(svc.chatd->log().find("actor_died") == std::string::npos);
}
