#pragma once
/// Registers every type that travels in actor messages (actors/messages.hpp,
/// the protocol frames, the typed handles of conversations, sessions and
/// reply sinks) and the "chat" and "chat_move" error categories: the one
/// place where they are, checked by tests/actors/type_registry_test.cpp.
/// Call before constructing the actor system.

#include <caf/fwd.hpp>

namespace chat {

void register_message_types(caf::actor_system_config& cfg);

} // namespace chat
