#pragma once
/// Where sessions find conversations: by id, never by pointer, so that
/// conversations can live on other nodes without sessions knowing.
///
/// In a cluster every node's directory is published on its cluster port
/// (CAF's middleman). A conversation lives on the member that
/// `owner_of(id, members)` names (actors/placement.hpp); a lookup of a
/// conversation another node owns is forwarded to that node's directory,
/// which answers the caller directly with its (remote) conversation actor:
/// the session then talks to it across nodes as it would locally.
///
/// Messages:
///   (lookup_atom, conversation_id) -> conversation_actor
///       The live actor of the conversation, spawned (and loaded) on demand
///       on the node that owns it. An id that is not a UUID gets a
///       not_found error.
///   (lookup_local_atom, conversation_id) -> conversation_actor
///       The same, served here whatever this node's view says: a lookup
///       another node's directory forwarded (so views that disagree for a
///       moment cannot bounce a lookup between nodes).
///   (create_atom, user_id) -> (std::string conversation_id, conversation_actor)
///       A new, empty conversation owned by the user, placed on this node
///       (its id is drawn until this node owns it).
///   (cluster_view_atom, cluster_members, own_process_id)
///       The live members (from the membership table): placement follows
///       them; the directories of new members are connected to.
///   (reconnect_atom, process_id)
///       Sent to itself after a member's link dropped: connect again if it
///       is still a member.
///   (hello_atom, process_id, directory)
///       From a member that opened the link to this node (of two members,
///       the one with the smaller process id connects): its directory, so
///       this node talks to it over that same link instead of opening a
///       second one. A plain caf::actor: a typed handle cannot name its
///       own type.
///   (drain_atom)
///       Shutdown: every live conversation ends its reply in progress as
///       "interrupted" (see conversation_actor.hpp).

#include <cstdint>
#include <string>

#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "actors/conversation_actor.hpp"
#include "actors/messages.hpp"

namespace chat {

using directory_actor = caf::typed_actor<
    caf::replies_to<lookup_atom, std::string>::with<conversation_actor>,
    caf::replies_to<lookup_local_atom, std::string>::with<conversation_actor>,
    caf::replies_to<create_atom, std::string>::with<std::string, conversation_actor>,
    caf::reacts_to<drain_atom>, caf::reacts_to<cluster_view_atom, cluster_members, std::string>,
    caf::reacts_to<reconnect_atom, std::string>,
    caf::reacts_to<hello_atom, std::string, caf::actor>>;

directory_actor spawn_directory(caf::actor_system& sys, conversation_config cfg);

} // namespace chat
