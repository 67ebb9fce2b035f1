#pragma once
/// Where sessions find conversations: by id, never by pointer, so that the
/// cluster can later place conversations on other nodes without touching
/// sessions.
///
/// Messages:
///   (lookup_atom, conversation_id) -> caf::actor
///       The live actor of the conversation, spawned (and loaded) on demand.
///       An id that is not a UUID gets a not_found error.
///   (create_atom, user_id) -> (std::string conversation_id, caf::actor)
///       A new, empty conversation owned by the user.
///   (drain_atom)
///       Shutdown: every live conversation ends its reply in progress as
///       "interrupted" (see conversation_actor.hpp).

#include <cstdint>
#include <string>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "actors/conversation_actor.hpp"
#include "actors/messages.hpp"

namespace chat {

using directory_actor
    = caf::typed_actor<caf::replies_to<lookup_atom, std::string>::with<caf::actor>,
                       caf::replies_to<create_atom, std::string>::with<std::string, caf::actor>,
                       caf::reacts_to<drain_atom>>;

directory_actor spawn_directory(caf::actor_system& sys, conversation_config cfg);

} // namespace chat
