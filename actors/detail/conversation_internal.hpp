#pragma once
/// What the files of the conversation actor call in each other, grouped by
/// the file that defines it; what each does is said at its definition.
/// Internal to actors/, like conversation_state.hpp.

#include <cstdint>
#include <string>

#include <caf/actor.hpp>
#include <caf/error.hpp>

#include "actors/detail/conversation_state.hpp"
#include "actors/messages.hpp"

namespace chat::conversation_detail {

// -- conversation_actor.cpp: activity, context, subscribers -------------------

void touch(conversation* self);
bool is_idle(conversation* self);
void arm_idle_check(conversation* self);
void remember(conversation* self, const stored_message& m);
void broadcast(conversation* self, std::string frame, const session_events& except = {});
void send_event(conversation* self, const session_events& to, std::string frame);
subscriber& attach(conversation* self, const session_events& session);
void hand_over(conversation* self, bool fenced);
void maybe_finish_hand_over(conversation* self);

// -- conversation_writes.cpp: the user message queue and the seq check --------

void pump_writes(conversation* self);
void check_seq(conversation* self);

// -- conversation_replies.cpp: the reply lifecycle ----------------------------

void maybe_start_reply(conversation* self);
void checkpoint(conversation* self);
void store_reply(conversation* self);
void store_unstored(conversation* self, const std::string& id);
/// The database answered a write: every background reply goes again now,
/// not after its backoff (grown during the outage).
void store_unstored_now(conversation* self);
void finish_reply(conversation* self, generation_outcome outcome);
void fail_reply(conversation* self, const std::string& why);
void abandon_reply(conversation* self, const std::string& why);
void start_early_reply(conversation* self, const stored_message& user_message,
                       const std::string& provider);
bool release_early_reply(conversation* self, const std::string& user_message_id);
void drop_early_reply(conversation* self, const char* why);

// -- conversation_replay.cpp: history replay to a subscriber ------------------

void start_replay(conversation* self, const session_events& session, int64_t after_seq);

} // namespace chat::conversation_detail
