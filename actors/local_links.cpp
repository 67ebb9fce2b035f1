#include "actors/local_links.hpp"

#include <mutex>
#include <unordered_map>

namespace chat::local_links {

namespace {

// Looked up when a subscriber attaches or a send is answered, not per
// chunk (the conversation keeps what it found), so one lock is enough.
struct registry {
  std::mutex mutex;
  std::unordered_map<caf::actor_addr, client_link_ptr> links;
};

registry& the_registry() {
  static registry r;
  return r;
}

} // namespace

void add(const caf::actor_addr& session, client_link_ptr link) {
  auto& r = the_registry();
  std::lock_guard lock{r.mutex};
  r.links[session] = std::move(link);
}

void remove(const caf::actor_addr& session) {
  auto& r = the_registry();
  std::lock_guard lock{r.mutex};
  r.links.erase(session);
}

client_link_ptr find(const caf::actor_addr& session) {
  auto& r = the_registry();
  std::lock_guard lock{r.mutex};
  auto i = r.links.find(session);
  return i == r.links.end() ? client_link_ptr{} : i->second;
}

} // namespace chat::local_links
