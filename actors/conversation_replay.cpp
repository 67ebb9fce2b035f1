// History replay of the conversation actor: a subscriber gets the finished
// messages after its seq, paged from the database, then what the database
// pages could not have yet (recent messages, the reply in progress), then
// live events.

#include <cstdint>
#include <string>

#include "actors/detail/conversation_internal.hpp"
#include "actors/errors.hpp"
#include "common/log.hpp"
#include "protocol/codec.hpp"

namespace chat::conversation_detail {

namespace {

using protocol::error_code;

/// Ends a replay. Messages committed after the database pages were read are
/// in `context`: send those the pages did not have. Then, if a reply is
/// being generated (and was not just replayed whole), all its chunks so
/// far. From here on the subscriber gets live events.
void finish_replay(conversation* self, const session_events& session) {
  auto& st = self->state;
  auto it = st.subs.find(session.address());
  if (it == st.subs.end())
    return;
  auto& sub = it->second;
  for (auto& m : st.context)
    if (m.seq > sub.after_seq && sub.replayed_recent.count(m.seq) == 0) {
      send_event(self, session, protocol::encode_message_event(m));
      if (st.reply && m.id == st.reply->id)
        sub.reply_replayed = true;
    }
  // A reply started early is not shown before its message is acked (it
  // goes to every subscriber then, see release_early_reply).
  if (st.reply && !st.reply->awaiting_ack && !sub.reply_replayed) {
    auto& r = *st.reply;
    for (size_t i = 0; i < r.deltas.size(); ++i) {
      protocol::chunk_frame c{st.id, r.id, r.reply_to, r.seq, static_cast<int64_t>(i), r.deltas[i]};
      send_event(self, session, protocol::encode(c));
    }
  }
  sub.replaying = false;
  sub.replayed_recent.clear();
}

void replay_page(conversation* self, session_events session, int64_t cursor, uint64_t token) {
  auto& st = self->state;
  if (st.is_new) { // nothing stored yet
    finish_replay(self, session);
    return;
  }
  auto page = st.cfg.replay_page;
  self->request(st.cfg.store, st.cfg.store_timeout, history_atom::value, st.owner, st.id, cursor,
                page)
      .then(
          [=](message_page& p) {
            auto& st = self->state;
            auto it = st.subs.find(session.address());
            if (it == st.subs.end() || it->second.replay_token != token)
              return; // unsubscribed or subscribed again meanwhile
            auto& sub = it->second;
            // Only seqs that `context` may also hold need remembering.
            auto oldest_recent = st.context.empty() ? INT64_MAX : st.context.front().seq;
            auto last = cursor;
            for (auto& m : p.messages) {
              send_event(self, session, protocol::encode_message_event(m));
              if (m.seq >= oldest_recent)
                sub.replayed_recent.insert(m.seq);
              if (st.reply && m.id == st.reply->id)
                sub.reply_replayed = true;
              last = m.seq;
            }
            if (static_cast<int32_t>(p.messages.size()) == page)
              replay_page(self, session, last, token);
            else
              finish_replay(self, session);
          },
          [=](caf::error& err) {
            auto& st = self->state;
            auto it = st.subs.find(session.address());
            if (it == st.subs.end() || it->second.replay_token != token)
              return;
            log::error("replay_failed", {{"conversationId", st.id}, {"error", to_string(err)}});
            protocol::error_frame e;
            e.code = error_code::unavailable;
            e.message = "history temporarily unavailable; subscribe again";
            e.conversation_id = st.id;
            send_event(self, session, protocol::encode(e));
            st.subs.erase(it);
            self->demonitor(session.address());
            arm_idle_check(self);
          });
}

} // namespace

/// Starts (or restarts) replaying to `session` everything after `after_seq`.
void start_replay(conversation* self, const session_events& session, int64_t after_seq) {
  auto& st = self->state;
  auto& sub = attach(self, session);
  sub.replaying = true;
  sub.replay_token = st.next_replay_token++;
  sub.after_seq = after_seq;
  sub.replayed_recent.clear();
  sub.reply_replayed = false;
  replay_page(self, session, after_seq, sub.replay_token);
}

} // namespace chat::conversation_detail
