#include "actors/directory_actor.hpp"

#include <unordered_map>

#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/send.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/errors.hpp"
#include "common/ids.hpp"

namespace chat {

namespace {

struct directory_state {
  conversation_config cfg;
  /// Live conversation actors by id. An entry goes when its actor stops.
  std::unordered_map<std::string, caf::actor> live;
  std::unordered_map<caf::actor_addr, std::string> ids; // for down messages

  static inline const char* name = "directory";
};

using directory = directory_actor::stateful_pointer<directory_state>;

void track(directory self, const std::string& id, const caf::actor& conv) {
  self->state.live.emplace(id, conv);
  self->state.ids.emplace(conv.address(), id);
  self->monitor(conv);
}

directory_actor::behavior_type directory_impl(directory self, conversation_config cfg) {
  self->state.cfg = std::move(cfg);
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& st = self->state;
    auto i = st.ids.find(dm.source);
    if (i == st.ids.end())
      return;
    st.live.erase(i->second);
    st.ids.erase(i);
  });
  return {
      [=](lookup_atom, const std::string& id) -> caf::result<caf::actor> {
        auto& st = self->state;
        if (!looks_like_uuid(id))
          return make_chat_error(protocol::error_code::not_found, "conversation not found");
        if (auto i = st.live.find(id); i != st.live.end())
          return i->second;
        auto conv = spawn_conversation(self->system(), id, st.cfg);
        track(self, id, conv);
        return conv;
      },
      [=](create_atom, const std::string& user) -> caf::result<std::string, caf::actor> {
        auto id = new_uuid();
        auto conv = spawn_new_conversation(self->system(), id, user, self->state.cfg);
        track(self, id, conv);
        return {id, conv};
      },
      [=](drain_atom) {
        for (auto& kv : self->state.live)
          caf::anon_send(kv.second, drain_atom::value); // typed -> dynamic
      },
  };
}

} // namespace

directory_actor spawn_directory(caf::actor_system& sys, conversation_config cfg) {
  return sys.spawn(directory_impl, std::move(cfg));
}

} // namespace chat
