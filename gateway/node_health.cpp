#include "gateway/node_health.hpp"

#include <caf/abstract_actor.hpp>
#include <caf/actor_control_block.hpp>
#include <caf/error.hpp>

#include "common/log.hpp"
#include "common/metrics.hpp"

namespace chat::gateway {

bool node_health::mark_dead(const std::string& what) {
  if (!watching_)
    return false;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    dead_ += dead_.empty() ? what : "," + what;
  }
  healthy_ = false;
  metrics::global().actors_dead++;
  return true;
}

std::string node_health::dead() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return dead_;
}

void watch(const caf::strong_actor_ptr& actor, std::string name,
           std::shared_ptr<node_health> health) {
  if (!actor) {
    if (health->mark_dead(name))
      log::error("actor_died", {{"actor", name}, {"reason", "never started"}});
    return;
  }
  // Runs on the dying actor's thread (or at once if it is already gone).
  actor->get()->attach_functor(
      [name = std::move(name), health = std::move(health)](const caf::error& reason) {
        if (health->mark_dead(name))
          log::error("actor_died", {{"actor", name}, {"reason", caf::to_string(reason)}});
      });
}

} // namespace chat::gateway
