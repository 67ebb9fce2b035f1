// The user message queue of the conversation actor: one write in flight,
// the seq each message gets, the check with the database after a write
// whose outcome was not seen (the seq rule at the top of
// conversation_actor.cpp: the database decides), and the expiry of sends
// that waited too long.

#include <algorithm>
#include <chrono>
#include <iterator>
#include <string>
#include <utility>

#include "actors/detail/conversation_internal.hpp"
#include "actors/errors.hpp"
#include "actors/local_links.hpp"
#include "common/ids.hpp"
#include "common/log.hpp"
#include "common/metrics.hpp"
#include "protocol/codec.hpp"

namespace chat::conversation_detail {

namespace {

using namespace std::chrono_literals;
using protocol::error_code;

std::string make_title(const std::string& content) {
  // The first line, cut at ~60 bytes on a UTF-8 boundary.
  auto end = content.find('\n');
  std::string title = content.substr(0, end);
  if (title.size() > 60) {
    size_t cut = 60;
    while (cut > 0 && (static_cast<unsigned char>(title[cut]) & 0xC0) == 0x80)
      --cut;
    title = title.substr(0, cut) + "…";
  }
  return title;
}

/// A user message is durable: it is remembered, shown to the other
/// connections, and its reply queued.
void accept_message(conversation* self, const stored_message& msg, const std::string& provider,
                    const session_events& except) {
  auto& st = self->state;
  st.is_new = false;
  remember(self, msg);
  metrics::global().messages_acked++;
  broadcast(self, protocol::encode_message_event(msg), except);
  bool started_early = st.reply && st.reply->awaiting_ack && st.reply->reply_to == msg.id;
  if (!started_early)
    st.replies.push_back(queued_reply{msg.id, msg.seq + 1, msg.model, provider});
}

/// Writes the ack of `p` to the sender's connection when its session is in
/// this process: the reply's chunks go there straight from this actor (see
/// actors/local_links.hpp), so the ack must too, to come before them. The
/// session, told so by `ack_written`, does not write it again.
void answer_send(pending_send& p, append_result res) {
  if (auto link = local_links::find(p.session.address()).lock()) {
    protocol::ack_frame ack{p.client_msg_id, res.conversation_id, res.message_id, res.seq};
    link->send(shared_frame{protocol::encode(ack)});
    res.ack_written = true;
  }
  p.promise.deliver(std::move(res));
}

void on_user_written(conversation* self, const stored_message& msg, append_result& res) {
  auto& st = self->state;
  st.write_in_flight = false;
  if (res.seq_taken) {
    // Our next seq was stale (another writer, or a write we thought lost):
    // the send stays first in line and goes again once the seq is known.
    st.seq_known = false;
    drop_early_reply(self, "seq taken");
    auto& p = st.sends.front();
    log::warn("message_seq_taken",
              {{"conversationId", st.id}, {"seq", msg.seq}, {"lastSeq", res.seq}});
    if (++p.seq_retries > 3) {
      p.promise.deliver(make_chat_error(error_code::unavailable,
                                        "the message could not be stored, please retry"));
      st.sends.pop_front();
    }
    pump_writes(self);
    return;
  }
  st.last_write_failed = false;
  auto p = std::move(st.sends.front());
  st.sends.pop_front();
  if (res.duplicate) {
    drop_early_reply(self, "repeat");
    st.next_seq -= 2; // nothing after it was reserved: writes are serialized
    auto resume_after = res.seq + 1;
    bool here = res.conversation_id == st.id;
    answer_send(p, std::move(res));
    if (here) {
      // The connection gets the original's reply as `subscribe` would: its
      // chunks so far and the rest live, or nothing if it has ended.
      if (st.subs.count(p.session.address()) == 0)
        start_replay(self, p.session, resume_after);
    }
  } else {
    log::info(
        "message_acked",
        {{"user", st.owner}, {"conversationId", st.id}, {"messageId", msg.id}, {"seq", msg.seq}});
    attach(self, p.session);
    // The other connections see the message; the sender gets the ack. Both
    // go out before any chunk of the reply, in this order.
    accept_message(self, msg, p.provider, p.session);
    answer_send(p, std::move(res));
    // The ack is on its way: the reply started early may follow it.
    release_early_reply(self, msg.id);
    maybe_start_reply(self);
  }
  pump_writes(self);
}

/// The write of the first send failed with `err`. Whatever the failure, the
/// next seq is checked with the database before it is used again, and the
/// message looked for: it may have committed after all.
void on_user_write_failed(conversation* self, const stored_message& msg, const caf::error& err) {
  auto& st = self->state;
  auto p = std::move(st.sends.front());
  st.sends.pop_front();
  st.write_in_flight = false;
  st.seq_known = false;
  st.last_write_failed = true;
  drop_early_reply(self, "message not stored");
  auto kind = classify_store_error(err);
  if (kind == store_failure::fenced) {
    // Nothing was written, and nothing we write will be: the session
    // retries this send at the conversation's new owner.
    log::warn("message_fenced", {{"conversationId", st.id}, {"messageId", msg.id}});
    p.promise.deliver(conversation_moved());
    hand_over(self, true);
    return;
  }
  if (kind != store_failure::permanent)
    st.unknown = unknown_write{msg, p.provider};
  log::error("message_store_failed", {{"conversationId", st.id},
                                      {"messageId", msg.id},
                                      {"outcome", kind == store_failure::permanent   ? "permanent"
                                                  : kind == store_failure::transient ? "transient"
                                                                                     : "unknown"},
                                      {"error", to_string(err)}});
  if (kind == store_failure::permanent)
    p.promise.deliver(make_chat_error(error_code::internal, "the message could not be stored"));
  else
    p.promise.deliver(
        make_chat_error(error_code::unavailable, "the message could not be stored, please retry"));
  pump_writes(self);
  arm_idle_check(self);
}

/// The highest seq this conversation has promised: its reply in progress,
/// the queued ones, and those whose `done` went out while the database was
/// away and whose write goes on in the background. The database cannot
/// know these yet (a reply's first checkpoint fails too when the database
/// goes right after its user message committed), so a check alone would
/// hand their seqs to the next message and the reply could never be
/// stored.
int64_t reserved_seq(conversation* self) {
  auto& st = self->state;
  int64_t top = st.reply ? st.reply->seq : 0;
  for (auto& q : st.replies)
    top = std::max(top, q.seq);
  for (auto& [id, u] : st.unstored)
    top = std::max(top, u.message.seq);
  return top;
}

/// Answers `unavailable` to sends that waited longer than the store
/// timeout (the one being written waits for its own answer).
void expire_sends(conversation* self) {
  auto& st = self->state;
  auto now = self->clock().now();
  auto first = st.write_in_flight ? std::next(st.sends.begin()) : st.sends.begin();
  for (auto i = first; i != st.sends.end();) {
    if (now - i->queued_at >= st.cfg.store_timeout) {
      i->promise.deliver(make_chat_error(error_code::unavailable,
                                         "the message could not be stored, please retry"));
      i = st.sends.erase(i);
    } else {
      ++i;
    }
  }
  if (!st.expiry_armed && st.sends.size() > (st.write_in_flight ? 1u : 0u)) {
    st.expiry_armed = true;
    self->delayed_send(self, st.cfg.store_timeout / 4 + 1ms, expire_sends_atom::value);
  }
}

/// Whether the reply to `p` may start before its message commits. An early
/// reply whose message is then not written is dropped, and its provider
/// request cancelled: prompt tokens may be billed for nothing. So it is not
/// tried where that is likely: a clientMsgId this conversation already
/// holds (the client resends after a lost ack), a send going again after a
/// stale seq, or while the database fails (until a write succeeds). What is
/// left is a resend whose original this actor does not hold yet (the first
/// message of a conversation, resent after a lost ack, creates a new
/// conversation actor and is found a repeat only by the write): one
/// cancelled request per lost ack.
bool may_start_early(conversation* self, const pending_send& p) {
  auto& st = self->state;
  if (p.seq_retries > 0 || st.last_write_failed)
    return false;
  return std::none_of(st.context.begin(), st.context.end(), [&](const stored_message& m) {
    return m.client_msg_id == p.client_msg_id && m.user_id == p.user_id;
  });
}

} // namespace

/// Asks the database, in the writer's order, what it holds: the last seq,
/// and whether the message whose write we did not see is stored.
void check_seq(conversation* self) {
  auto& st = self->state;
  if (st.check_in_flight || st.seq_known)
    return;
  st.check_in_flight = true;
  st.check_armed = false;
  auto unknown_id = st.unknown ? st.unknown->message.id : std::string{};
  self->request(st.cfg.store, st.cfg.store_timeout, db_check_atom::value, st.id, unknown_id)
      .then(
          [=](write_check& c) {
            auto& st = self->state;
            st.check_in_flight = false;
            st.check_backoff = std::chrono::milliseconds{0};
            if (st.unknown && st.unknown->message.id == unknown_id) {
              if (c.found) {
                // It committed after all: answer it like any other (the
                // client's retry with the same clientMsgId gets its ack).
                auto u = std::move(*st.unknown);
                log::info("message_committed_late", {{"conversationId", st.id},
                                                     {"messageId", u.message.id},
                                                     {"seq", u.message.seq}});
                accept_message(self, u.message, u.provider, session_events{});
              }
              st.unknown.reset();
            }
            st.next_seq = std::max(c.last_seq, reserved_seq(self)) + 1;
            store_unstored_now(self);
            st.seq_known = true;
            log::info("conversation_seq_checked",
                      {{"conversationId", st.id}, {"nextSeq", st.next_seq}});
            maybe_start_reply(self);
            pump_writes(self);
            arm_idle_check(self);
          },
          [=](caf::error& err) {
            auto& st = self->state;
            st.check_in_flight = false;
            bool first = st.check_backoff.count() == 0;
            st.check_backoff = first ? st.cfg.retry_delay
                                     : std::min(st.check_backoff * 2, st.cfg.retry_max_delay);
            // With sends waiting, users are too: try again at the base
            // delay, so that a database that came back is used within a
            // moment rather than after a backoff grown during the outage
            // (at most one check per conversation is in flight, and with the
            // database away the writer fails them at once). With nobody
            // waiting, back off.
            auto wait = st.sends.empty() ? st.check_backoff : st.cfg.retry_delay;
            // One line per outage, not one per retry.
            auto lvl = first ? log::level::warn : log::level::debug;
            if (log::enabled(lvl))
              log::write(lvl, "conversation_seq_check_failed",
                         {{"conversationId", st.id},
                          {"retryMs", static_cast<int64_t>(wait.count())},
                          {"error", to_string(err)}});
            st.check_armed = true;
            self->delayed_send(self, wait, check_seq_atom::value, ++st.check_timer);
          });
}

void pump_writes(conversation* self) {
  auto& st = self->state;
  expire_sends(self);
  if (!st.seq_known) {
    // At once, sends or not: a message that committed after all must get
    // its reply.
    if (!st.check_armed)
      check_seq(self);
    return;
  }
  if (st.handing_over) {
    maybe_finish_hand_over(self);
    return;
  }
  if (st.write_in_flight || st.sends.empty())
    return;
  auto& p = st.sends.front();
  st.write_in_flight = true;
  user_message_write w;
  w.epoch = st.epoch;
  auto& m = w.message;
  m.id = new_uuid();
  m.conversation_id = st.id;
  m.seq = st.next_seq;
  m.role = "user";
  m.content = p.content;
  m.user_id = p.user_id;
  m.client_msg_id = p.client_msg_id;
  m.model = p.model;
  m.created_at = now_ms();
  w.create_conversation = st.is_new;
  if (st.is_new)
    w.title = make_title(p.content);
  st.next_seq += 2; // this message and the reply to it
  // Its reply starts now, while the message commits: the provider's time
  // to first token overlaps the commit. Nothing of it goes out before the
  // ack (see reply_state::awaiting_ack).
  if (may_start_early(self, p))
    start_early_reply(self, m, p.provider);
  // Replies still written in the background hold earlier seqs: their
  // writes go to the writer first (it keeps the order), not after a
  // backoff grown during an outage, so the history has no gap for long.
  store_unstored_now(self);
  self->request(st.cfg.store, st.cfg.store_timeout, append_user_atom::value, w)
      .then([=](append_result& res) { on_user_written(self, m, res); },
            [=](caf::error& err) { on_user_write_failed(self, m, err); });
}

} // namespace chat::conversation_detail
