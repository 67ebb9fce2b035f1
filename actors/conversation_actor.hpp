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
///       Shutdown, past the drain timeout: a reply still being generated
///       ends now with finishReason "interrupted", keeping what was
///       streamed, and no queued reply starts any more (their messages stay
///       unanswered in the database, for whoever loads the conversation
///       next).
///   (handover_atom)
///       From the directory: a new membership view places the conversation
///       on another node. No new reply starts; sends not yet written are
///       answered "moved" (the session retries them through the directory,
///       at the new owner); once the reply in progress and the write in
///       flight have ended the actor stops with exit reason
///       conversation_moved() and its sessions follow the conversation.
///
/// Fencing: loading the conversation claims it (its epoch in the database
/// goes up, actors/persistence_actor.hpp) and every write carries that
/// epoch. When a write is refused because another node claimed it since
/// (views that disagreed, a paused node that resumed), the actor hands over
/// at once: its reply in progress ends `interrupted` on the wire (the new
/// owner closed it in the database), pending sends are answered "moved",
/// and it stops with conversation_moved().
///
/// Faults (the database decides): a user message write whose outcome was
/// not seen (a timeout, a lost connection, an in-doubt commit) is never
/// assumed failed. The conversation answers that send `unavailable` (the
/// client retries with the same clientMsgId), then asks the store, in the
/// writer's order, for its last seq and whether the message is stored
/// before it assigns another seq; a message that did commit is answered
/// like any other. Sends meanwhile wait in a bounded queue, for at most the
/// store timeout. Reply writes are retried with backoff while the failure
/// is transient; a reply whose write can never succeed, or still fails
/// after `reply_store_attempts`, ends on the wire (`done`) anyway and the
/// conversation moves on (a transient one keeps being retried in the
/// background). The AI invoker serving a reply is monitored: if it dies,
/// the reply ends `error`.
///
/// To subscribers it sends (event_atom, conversation_id, std::string frame):
/// one encoded protocol frame, the same message object for every subscriber.
///
/// From the AI invoker it receives (ai_chunk_atom, stream_id, delta) and
/// (ai_done_atom, stream_id, generation_outcome).
///
/// Both handles are typed (`conversation_actor`, `session_events`): these
/// messages cross nodes once a session and its conversation live on
/// different ones, and a typed handle makes the compiler check every send
/// against the list above. Every type in them is registered for CAF's
/// serialization in actors/type_registry.cpp (a test checks it).

#include <chrono>
#include <cstdint>
#include <string>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <memory>

#include "actors/ai_actor.hpp"
#include "actors/messages.hpp"
#include "actors/models.hpp"
#include "actors/persistence_actor.hpp"

namespace chat {

/// What a conversation sends its subscribers: the part of a session's
/// interface a conversation may use (the session also takes the frames of
/// its socket, actors/session_actor.hpp).
/// (event_atom, conversation_id, frame): a frame to write. (completed_atom,
/// conversation_id, seq): a frame the conversation wrote to the session's
/// connection itself made the client's history whole up to seq (see
/// actors/local_links.hpp).
using session_events = caf::typed_actor<caf::reacts_to<event_atom, std::string, std::string>,
                                        caf::reacts_to<completed_atom, std::string, int64_t>>;

/// A conversation, as sessions, the directory and the gateway see it (the
/// messages are described above). It is its AI invoker's reply_sink too.
/// Its own timers are not part of it: they are added, for the actor alone,
/// in actors/detail/conversation_state.hpp, so nobody else can send them.
using conversation_actor = reply_sink::extend<
    // (send_atom, user_id, client_msg_id, content, model, provider, session)
    caf::replies_to<send_atom, std::string, std::string, std::string, std::string, std::string,
                    session_events>::with<append_result>,
    // (subscribe_atom, user_id, after_seq, session)
    caf::replies_to<subscribe_atom, std::string, int64_t, session_events>::with<bool>,
    caf::reacts_to<unsubscribe_atom, session_events>,
    // (cancel_atom, user_id, message_id)
    caf::replies_to<cancel_atom, std::string, std::string>::with<bool>,
    // (delete_conv_atom, user_id)
    caf::replies_to<delete_conv_atom, std::string>::with<bool>, caf::reacts_to<drain_atom>,
    caf::reacts_to<handover_atom>>;

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
  /// This process's id (a UUID registered in the database with a liveness
  /// lock, persistence/store.hpp): in-progress replies are marked with it,
  /// so that only replies of processes that are gone are ever recovered.
  std::string process_id = "00000000-0000-4000-8000-000000000000";
  /// How long to wait for any answer of the store. Past it, a write's
  /// outcome is unknown; a send waiting in the queue is answered
  /// `unavailable`.
  std::chrono::milliseconds store_timeout{std::chrono::seconds{15}};
  /// Sends waiting for their write, at most; more are `unavailable` at once.
  size_t max_queued_sends = 64;
  /// First wait before retrying a failed reply write or seq check; doubles
  /// up to `retry_max_delay`.
  std::chrono::milliseconds retry_delay{std::chrono::milliseconds{250}};
  std::chrono::milliseconds retry_max_delay{std::chrono::seconds{5}};
  /// Attempts to store a finished reply before its `done` goes out anyway
  /// and the conversation moves on (transient failures keep being retried
  /// in the background, up to `background_store_attempts`).
  int reply_store_attempts = 4;
  int background_store_attempts = 200;
  /// A reply with no end from the AI invoker after this is ended `error`
  /// (the invoker enforces the provider's timeouts; this is the last
  /// resort, e.g. a lost message).
  std::chrono::milliseconds reply_deadline{std::chrono::minutes{11}};
  /// The configured models: the provider of a stored user message's model,
  /// for replies generated after a restart. May be null (then "openai").
  std::shared_ptr<const model_catalog> models;
};

/// Spawns the actor of an existing conversation: it loads owner and
/// context from the database before it answers anything.
conversation_actor spawn_conversation(caf::actor_system& sys, std::string id,
                                      const conversation_config& cfg);

/// Spawns the actor of a brand-new conversation owned by `owner`; its row is
/// written together with its first message.
conversation_actor spawn_new_conversation(caf::actor_system& sys, std::string id, std::string owner,
                                          const conversation_config& cfg);

} // namespace chat
