#pragma once
/// Registers every type that travels in actor messages (actors/messages.hpp)
/// and the "chat" error category. Call before constructing the actor system.

#include <caf/fwd.hpp>

namespace chat {

void register_message_types(caf::actor_system_config& cfg);

} // namespace chat
