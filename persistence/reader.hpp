#pragma once
/// A store reader: one detached actor, one connection, answering the read
/// messages of persistence_actor.hpp. Several sit behind a round-robin pool.

#include <memory>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "actors/messages.hpp"

namespace chat::persistence {

class session;

using reader_actor = caf::typed_actor<
    caf::replies_to<load_conv_atom, std::string>::with<conversation_snapshot>,
    caf::replies_to<history_atom, std::string, std::string, int64_t, int32_t>::with<message_page>,
    caf::replies_to<list_conv_atom, std::string, std::string, int32_t>::with<conversation_page>,
    caf::replies_to<find_msg_atom, std::string, std::string>::with<append_result>,
    caf::replies_to<db_ping_atom>::with<bool>>;

reader_actor spawn_reader(caf::actor_system& sys, std::unique_ptr<session> db);

} // namespace chat::persistence
