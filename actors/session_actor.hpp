#pragma once
/// One actor per WebSocket connection. The gateway decodes frames on its I/O
/// thread and sends the typed frames here; the session finds conversations
/// through the directory, talks to them, and writes what comes back to its
/// connection through a `client_link` (never blocking).
///
/// Messages from the gateway:
///   protocol::send_frame | subscribe_frame | unsubscribe_frame | cancel_frame
/// Messages from conversations:
///   (event_atom, conversation_id, std::string frame)   an encoded frame
/// The gateway stops the actor with an exit message when the socket closes.
///
/// Typed: the gateway's sends are checked against the frames below, and
/// conversations only ever see the `session_events` part of it.

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include <caf/fwd.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "actors/client_link.hpp"
#include "actors/directory_actor.hpp"
#include "actors/models.hpp"
#include "actors/persistence_actor.hpp"
#include "actors/rate_limiter.hpp"
#include "protocol/frames.hpp"

namespace chat {

struct session_config {
  directory_actor directory;
  persistence_actor store; ///< for repeated sends naming a missing conversation
  std::shared_ptr<const model_catalog> models;
  std::shared_ptr<rate_limiter> limiter;
  /// Set once this node drains (shutdown): sends get `unavailable`, so the
  /// client sends again, with the same clientMsgId, on another node.
  std::shared_ptr<const std::atomic<bool>> draining;
  /// How long a request to a conversation may take (a send is answered
  /// after its commit, so allow for a slow database) and a directory
  /// look-up; past it the client gets `unavailable` and may retry.
  std::chrono::milliseconds conversation_timeout{60000};
  std::chrono::milliseconds directory_timeout{10000};
};

/// A session as the gateway sees it: the frames of its socket, and the
/// events of its conversations. Its timers are added in session_actor.cpp.
using session_actor = session_events::extend<
    caf::reacts_to<protocol::send_frame>, caf::reacts_to<protocol::subscribe_frame>,
    caf::reacts_to<protocol::unsubscribe_frame>, caf::reacts_to<protocol::cancel_frame>>;

session_actor spawn_session(caf::actor_system& sys, std::string user_id, client_link_ptr link,
                            const session_config& cfg);

} // namespace chat

namespace chat::protocol {

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, send_frame& x) {
  return f(caf::meta::type_name("send_frame"), x.client_msg_id, x.conversation_id, x.content,
           x.model);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, subscribe_frame& x) {
  return f(caf::meta::type_name("subscribe_frame"), x.conversation_id, x.after_seq);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, unsubscribe_frame& x) {
  return f(caf::meta::type_name("unsubscribe_frame"), x.conversation_id);
}

template<class Inspector>
typename Inspector::result_type inspect(Inspector& f, cancel_frame& x) {
  return f(caf::meta::type_name("cancel_frame"), x.conversation_id, x.message_id);
}

} // namespace chat::protocol
