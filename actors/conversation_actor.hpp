#pragma once
/// One actor per live conversation. It assigns `seq`, makes user messages
/// durable before acknowledging them, drives one AI reply at a time, keeps
/// the reply being generated, and fans events out to its subscribers (the
/// session actors of the owner's connections). Spawned on demand by the
/// directory; stops itself when idle.
///
/// Messages (user_id is the authenticated caller; a conversation owned by
/// someone else answers exactly like a missing one: not_found):
///
///   (send_atom, user_id, client_msg_id, content, model, provider, session)
///       -> append_result
///       Durable user message; answered after commit. The session becomes a
///       subscriber. A repeated client_msg_id answers the original.
///   (subscribe_atom, user_id, after_seq, session) -> bool
///       Replays finished messages with seq > after_seq (paged from the
///       database), then the chunks so far of the reply in progress, then
///       live events. Answered once the session is attached.
///   (unsubscribe_atom, session)
///   (cancel_atom, user_id, message_id) -> bool
///       Stops the reply `message_id` (finishReason "cancelled"); a reply
///       that already ended: nothing to do; unknown: not_found.
///   (delete_conv_atom, user_id) -> bool
///       Cancels any reply, deletes the conversation through persistence
///       and stops the actor.
///   (drain_atom)
///       Shutdown: a reply still being generated ends now with
///       finishReason "interrupted", keeping what was streamed.
///
/// To subscribers it sends (event_atom, conversation_id, std::string frame):
/// one encoded protocol frame, the same message object for every subscriber.
///
/// From the AI invoker it receives (ai_chunk_atom, stream_id, delta) and
/// (ai_done_atom, stream_id, generation_outcome).

#include <chrono>
#include <string>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include <memory>

#include "actors/ai_actor.hpp"
#include "actors/models.hpp"
#include "actors/persistence_actor.hpp"

namespace chat {

struct conversation_config {
  persistence_actor store;
  ai_actor ai;
  /// A conversation with no subscribers and nothing to do stops after this.
  std::chrono::milliseconds idle_timeout{std::chrono::minutes{5}};
  /// How many recent messages go to the provider as context.
  size_t context_messages = 50;
  /// Messages per page when replaying history to a subscriber.
  int32_t replay_page = 100;
  /// How often the reply being generated is saved while it streams. One
  /// second bounds what a crash can lose to about a second of tokens, and
  /// costs one small, group-committed UPDATE per live reply per second.
  std::chrono::milliseconds checkpoint_interval{std::chrono::seconds{1}};
  /// This node's id: in-progress replies are marked with it, so that after
  /// a crash the node finds (and marks `interrupted`) only its own.
  std::string node_id = "local";
  /// The configured models: the provider of a stored user message's model,
  /// for replies generated after a restart. May be null (then "openai").
  std::shared_ptr<const model_catalog> models;
};

/// Spawns the actor of an existing conversation: it loads owner and
/// context from the database before it answers anything.
caf::actor spawn_conversation(caf::actor_system& sys, std::string id,
                              const conversation_config& cfg);

/// Spawns the actor of a brand-new conversation owned by `owner`; its row is
/// written together with its first message.
caf::actor spawn_new_conversation(caf::actor_system& sys, std::string id, std::string owner,
                                  const conversation_config& cfg);

} // namespace chat
