#include "actors/conversation_actor.hpp"

#include <algorithm>
#include <iterator>
#include <set>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/response_type.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/detail/conversation_internal.hpp"
#include "actors/errors.hpp"
#include "actors/local_links.hpp"
#include "common/log.hpp"
#include "common/metrics.hpp"
#include "protocol/codec.hpp"

// Life of a conversation actor:
//
//   spawn --(load from db)--> serving --(idle, nothing to do)--> stop
//                                |
//        user message: queue -> write (one in flight) -> ack -> reply queue
//        reply: generate -> chunks -> done from AI -> store -> `done` event
//
// A reply that would start at once (no reply in progress or queued) starts
// with its message's write instead, so the provider's time to first token
// overlaps the commit; its chunks and its end wait for the ack, and if the
// message is not written it is dropped unseen and its request cancelled
// (reply_state::awaiting_ack, may_start_early in conversation_writes.cpp).
//
// Seqs: each user message reserves its own seq and the next one for its reply,
// so replies queued behind a reply in progress keep consecutive seqs even
// though they are generated later. Writes are serialized per conversation, so
// a duplicate clientMsgId found by the database can give its seqs back.
//
// The database decides seqs. After any failed user message write, next_seq
// is unknown until a check (db_check, run in the writer's order, so after
// the write has ended one way or the other) says what the database holds:
//
//   seq known --(write fails)--> seq unknown --(check)--> seq known
//                                     ^    |
//                                     +----+ check fails: retry with backoff
//
// A seq is never reused on a guess, and a write that committed after its
// answer was lost is found by the check and answered like any other.
//
// The actor is split by concern: this file holds the behaviour, the load,
// spawning, and the helpers every part uses (activity, context,
// subscribers); conversation_writes.cpp the user messages and their seqs;
// conversation_replies.cpp the reply lifecycle; conversation_replay.cpp
// history replay to subscribers. detail/conversation_state.hpp holds the
// state, detail/conversation_internal.hpp what the files call in each other.

namespace chat {

namespace conversation_detail {

void touch(conversation* self) {
  self->state.last_activity = self->clock().now();
}

bool is_idle(conversation* self) {
  auto& st = self->state;
  return st.subs.empty() && st.sends.empty() && !st.write_in_flight && st.replies.empty()
         && !st.reply && st.unstored.empty() && !st.check_in_flight && st.seq_known;
}

/// Stops the actor once it has been idle for `idle_timeout`. The check is
/// armed only while idle, so a busy conversation runs no timers.
void arm_idle_check(conversation* self) {
  auto& st = self->state;
  if (st.handing_over) {
    maybe_finish_hand_over(self);
    return;
  }
  if (st.idle_check_armed || !is_idle(self))
    return;
  st.idle_check_armed = true;
  auto delay = st.found && !st.load_failed ? st.cfg.idle_timeout : std::chrono::milliseconds{2000};
  self->delayed_send(self, delay, idle_check_atom::value);
}

void remember(conversation* self, const stored_message& m) {
  auto& st = self->state;
  // In seq order: a user message sent during a reply is stored before the
  // reply (which has the lower seq) ends.
  auto pos = std::upper_bound(st.context.begin(), st.context.end(), m.seq,
                              [](int64_t seq, const stored_message& x) { return seq < x.seq; });
  st.context.insert(pos, m);
  // Keep more than the provider needs: subscribers' replays fill the gap
  // between their last database page and now from here.
  while (st.context.size() > st.cfg.context_messages + 50)
    st.context.pop_front();
}

namespace {

/// Hands one event, (event_atom, conversation_id, frame), to a subscriber.
/// A session of this process gets the frame written to its connection
/// (actors/local_links.hpp) and, for a frame that completes a seq, only
/// that seq; a session elsewhere gets the event. A typed actor's send()
/// cannot take a message built beforehand, so the subscribers' interface is
/// checked here once, at compile time, and the message is put in their
/// mailboxes directly (what send() does).
void deliver(conversation* self, const subscriber& sub, const caf::message& event) {
  static_assert(
      caf::response_type<session_events::signatures, event_atom, std::string, std::string>::valid,
      "subscribers take (event_atom, conversation_id, frame)");
  if (auto link = sub.link.lock()) {
    link->send(shared_frame{event, 2});
    if (auto seq = protocol::completed_seq_of(event.get_as<std::string>(2)); seq > 0)
      self->send(sub.handle, completed_atom::value, self->state.id, seq);
    return;
  }
  sub.handle->enqueue(self->ctrl(), caf::make_message_id(), event, self->context());
}

} // namespace

/// Sends one encoded frame to every live subscriber but `except`. The same
/// message object goes to all of them: the bytes are encoded once and shared.
void broadcast(conversation* self, std::string frame, const session_events& except) {
  auto& st = self->state;
  auto msg = caf::make_message(event_atom::value, st.id, std::move(frame));
  for (auto& kv : st.subs)
    if (!kv.second.replaying && kv.second.handle != except)
      deliver(self, kv.second, msg);
}

void send_event(conversation* self, const session_events& to, std::string frame) {
  auto& st = self->state;
  auto msg = caf::make_message(event_atom::value, st.id, std::move(frame));
  if (auto i = st.subs.find(to.address()); i != st.subs.end()) {
    deliver(self, i->second, msg);
    return;
  }
  subscriber once; // not (or no longer) subscribed: a one-off answer
  once.handle = to;
  once.link = local_links::find(to.address());
  deliver(self, once, msg);
}

subscriber& attach(conversation* self, const session_events& session) {
  auto& st = self->state;
  auto [it, added] = st.subs.try_emplace(session.address());
  if (added) {
    it->second.handle = session;
    it->second.link = local_links::find(session.address());
    self->monitor(session);
  }
  return it->second;
}

/// The conversation is another node's now. `fenced`: a write was refused
/// because someone claimed it under a newer epoch; nothing more we write can
/// land, so everything stops now (the reply in progress ends `interrupted`
/// on the wire, as the claim closed it in the database). Otherwise (a new
/// membership view placed it elsewhere) the reply in progress and the write
/// in flight may end first. Either way sends not yet written are answered
/// conversation_moved(), which sessions retry through the directory, and
/// the actor stops with that reason, which sessions follow.
void hand_over(conversation* self, bool fenced) {
  auto& st = self->state;
  if (fenced || !st.handing_over)
    log::info(fenced ? "conversation_fenced" : "conversation_handing_over",
              {{"conversationId", st.id}, {"epoch", st.epoch}});
  st.handing_over = true;
  st.stopping = true; // no reply starts here any more
  auto first = st.write_in_flight && !fenced ? std::next(st.sends.begin()) : st.sends.begin();
  for (auto i = first; i != st.sends.end(); ++i)
    i->promise.deliver(conversation_moved());
  st.sends.erase(first, st.sends.end());
  if (fenced) {
    if (st.reply && st.reply->awaiting_ack)
      drop_early_reply(self, "fenced");
    else if (st.reply)
      abandon_reply(self, "another node owns the conversation now");
    // Answers still to come (a write, a check) find the actor gone; the
    // sends they were for retry at the new owner, which decides from the
    // database what was written.
    st.write_in_flight = false;
    st.check_in_flight = false;
  }
  maybe_finish_hand_over(self);
}

/// Stops a conversation being handed over once nothing is in flight.
void maybe_finish_hand_over(conversation* self) {
  auto& st = self->state;
  if (!st.handing_over || st.reply || st.write_in_flight || st.check_in_flight)
    return;
  for (auto& p : st.sends)
    p.promise.deliver(conversation_moved());
  st.sends.clear();
  log::info("conversation_handed_over",
            {{"conversationId", st.id}, {"subscribers", static_cast<int64_t>(st.subs.size())}});
  self->quit(conversation_moved());
}

} // namespace conversation_detail

namespace {

using namespace conversation_detail;
using protocol::error_code;

bool owned_by(conversation* self, const std::string& user) {
  auto& st = self->state;
  return st.found && !st.load_failed && st.owner == user;
}

caf::error not_found_error() {
  return make_chat_error(error_code::not_found, "conversation not found");
}

caf::error access_error(conversation* self) {
  if (self->state.load_failed)
    return make_chat_error(error_code::unavailable, "conversation temporarily unavailable");
  return not_found_error();
}

// -- behavior -------------------------------------------------------------------

conversation_self_actor::behavior_type serving(conversation* self) {
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& st = self->state;
    if (st.reply && st.reply->invoker && st.reply->invoker.address() == dm.source) {
      // The invoker serving the reply is gone: no end will come from it.
      // The pool's other invokers serve the next reply.
      if (!st.reply->finishing) {
        log::error("ai_invoker_down", {{"conversationId", st.id}, {"messageId", st.reply->id}});
        st.reply->invoker = ai_actor{};
        fail_reply(self, "the AI invoker failed");
      }
      return;
    }
    st.subs.erase(dm.source);
    arm_idle_check(self);
  });
  return {
      [=](send_atom, const std::string& user, std::string& client_msg_id, std::string& content,
          std::string& model, std::string& provider,
          session_events& session) -> caf::result<append_result> {
        auto& st = self->state;
        if (!owned_by(self, user))
          return access_error(self);
        if (st.handing_over)
          return conversation_moved();
        touch(self);
        // The store is slow or away and the queue is full: refuse now
        // rather than let the queue grow.
        if (st.sends.size() >= st.cfg.max_queued_sends)
          return make_chat_error(error_code::unavailable,
                                 "the conversation is busy storing messages, please retry");
        auto rp = self->make_response_promise<append_result>();
        st.sends.push_back(pending_send{user, std::move(client_msg_id), std::move(content),
                                        std::move(model), std::move(provider), std::move(session),
                                        rp, self->clock().now(), 0});
        // The seq check is waiting out its backoff (the database was away,
        // up to retry_max_delay): a user is waiting now, so ask at once,
        // or a database that came back stays unused until the timer fires
        // and this send may expire meanwhile. At most one check per send.
        if (!st.seq_known && st.check_armed && !st.check_in_flight)
          st.check_armed = false;
        pump_writes(self);
        return rp;
      },
      [=](subscribe_atom, const std::string& user, int64_t after_seq,
          session_events& session) -> caf::result<bool> {
        if (!owned_by(self, user))
          return access_error(self);
        if (self->state.handing_over)
          return conversation_moved();
        touch(self);
        // The answer goes out first, then the replay, then live events.
        start_replay(self, session, after_seq);
        return true;
      },
      [=](unsubscribe_atom, const session_events& session) {
        auto& st = self->state;
        if (st.subs.erase(session.address()) > 0)
          self->demonitor(session.address());
        arm_idle_check(self);
      },
      [=](cancel_atom, const std::string& user,
          const std::string& message_id) -> caf::result<bool> {
        auto& st = self->state;
        if (!owned_by(self, user))
          return access_error(self);
        touch(self);
        if (st.reply && st.reply->id == message_id) {
          auto& r = *st.reply;
          if (!r.finishing && !r.cancel_requested) {
            r.cancel_requested = true;
            if (r.invoker)
              self->send(r.invoker, ai_cancel_atom::value, r.id);
            log::info("reply_cancel_requested", {{"conversationId", st.id}, {"messageId", r.id}});
          }
          return true;
        }
        for (auto& m : st.context)
          if (m.id == message_id)
            return true; // already ended: nothing to do
        return make_chat_error(error_code::not_found, "no such reply");
      },
      [=](delete_conv_atom, const std::string& user) -> caf::result<bool> {
        auto& st = self->state;
        if (!owned_by(self, user))
          return access_error(self);
        if (st.reply && st.reply->invoker)
          self->send(st.reply->invoker, ai_cancel_atom::value, st.reply->id);
        auto rp = self->make_response_promise<bool>();
        self->request(st.cfg.store, st.cfg.store_timeout, remove_conv_atom::value, user, st.id)
            .then(
                [=](bool removed) mutable {
                  if (self->state.reply) // gone with the conversation
                    metrics::global().replies_active--;
                  rp.deliver(removed);
                  self->quit();
                },
                [=](caf::error& err) mutable { rp.deliver(std::move(err)); });
        return rp;
      },
      [=](ai_chunk_atom, const std::string& stream_id, std::string& delta) {
        auto& st = self->state;
        if (!st.reply || st.reply->id != stream_id || st.reply->finishing || delta.empty())
          return;
        auto& r = *st.reply;
        if (r.deltas.empty())
          r.first_chunk_at = self->clock().now();
        if (r.awaiting_ack) { // kept until its message is acked
          r.deltas.push_back(std::move(delta));
          return;
        }
        auto frame = protocol::encode_chunk(st.id, r.id, r.reply_to, r.seq,
                                            static_cast<int64_t>(r.deltas.size()), delta);
        r.deltas.push_back(std::move(delta));
        metrics::global().chunks_sent++;
        broadcast(self, std::move(frame));
      },
      [=](ai_done_atom, const std::string& stream_id, generation_outcome& outcome) {
        auto& st = self->state;
        if (!st.reply || st.reply->id != stream_id || st.reply->finishing)
          return;
        touch(self);
        finish_reply(self, std::move(outcome));
      },
      [=](checkpoint_tick_atom, const std::string& reply_id) {
        auto& st = self->state;
        if (!st.reply || st.reply->id != reply_id || st.reply->finishing)
          return; // that reply has ended: the tick stops here
        if (self->clock().now() - st.reply->started >= st.cfg.reply_deadline) {
          log::error("reply_deadline_passed", {{"conversationId", st.id}, {"messageId", reply_id}});
          fail_reply(self, "the reply took too long");
          return;
        }
        checkpoint(self);
        self->delayed_send(self, st.cfg.checkpoint_interval, checkpoint_tick_atom::value, reply_id);
      },
      [=](drain_atom) {
        auto& st = self->state;
        // Queued replies stay unanswered in the database: whoever loads the
        // conversation next answers them.
        st.stopping = true;
        drop_early_reply(self, "draining"); // its message stays for the next owner
        if (!st.reply || st.reply->finishing)
          return;
        if (st.reply->invoker)
          self->send(st.reply->invoker, ai_cancel_atom::value, st.reply->id);
        generation_outcome o;
        o.finish_reason = "interrupted";
        finish_reply(self, std::move(o));
      },
      [=](handover_atom) { hand_over(self, false); },
      [=](check_seq_atom, uint64_t timer) {
        // A timer a send cut short (see send_atom) does nothing.
        if (!self->state.check_armed || timer != self->state.check_timer)
          return;
        self->state.check_armed = false;
        pump_writes(self);
        check_seq(self);
      },
      [=](expire_sends_atom) {
        self->state.expiry_armed = false;
        pump_writes(self);
        arm_idle_check(self);
      },
      [=](retry_unstored_atom, const std::string& message_id) {
        auto i = self->state.unstored.find(message_id);
        if (i != self->state.unstored.end()) {
          i->second.retry_armed = false;
          store_unstored(self, message_id);
        }
      },

      [=](retry_store_atom, const std::string& message_id) {
        auto& st = self->state;
        if (st.reply && st.reply->id == message_id && st.reply->finishing)
          store_reply(self);
      },
      [=](idle_check_atom) {
        auto& st = self->state;
        st.idle_check_armed = false;
        if (!is_idle(self))
          return;
        auto deadline = st.last_activity + st.cfg.idle_timeout;
        if (!st.found || st.load_failed || self->clock().now() >= deadline) {
          self->quit();
          return;
        }
        arm_idle_check(self);
      },
  };
}

/// After a crash, a drain that ran out of time or a hand-over, acked user
/// messages may have no reply: their reserved seq was never written. Answer
/// them now, in order, with the model they asked for. The load claimed the
/// conversation and closed as `interrupted` the replies that were in
/// progress: any other missing seq really is a reply that never started.
void queue_unanswered(conversation* self) {
  auto& st = self->state;
  std::set<int64_t> seqs;
  for (auto& m : st.context)
    seqs.insert(m.seq);
  for (auto& m : st.context) {
    if (m.role != "user" || seqs.count(m.seq + 1) > 0)
      continue;
    const model_info* model = st.cfg.models ? st.cfg.models->find(m.model) : nullptr;
    if (model == nullptr && st.cfg.models)
      model = st.cfg.models->find(""); // no longer configured: the default
    st.replies.push_back(queued_reply{m.id, m.seq + 1, model ? model->name : m.model,
                                      model ? model->provider : "openai"});
    st.next_seq = std::max(st.next_seq, m.seq + 2);
    log::info("reply_resumed_after_restart",
              {{"conversationId", st.id}, {"messageId", m.id}, {"seq", m.seq + 1}});
  }
  maybe_start_reply(self);
}

conversation_self_actor::behavior_type conversation_impl(conversation* self, std::string id,
                                                         conversation_config cfg, bool is_new,
                                                         std::string owner) {
  auto& st = self->state;
  st.id = std::move(id);
  st.cfg = std::move(cfg);
  st.is_new = is_new;
  st.owner = std::move(owner);
  st.epoch = is_new ? 1 : 0; // a new one is written with epoch 1, else loaded
  touch(self);
  metrics::global().conversations_live++;
  self->attach_functor([] { metrics::global().conversations_live--; });
  if (!is_new) {
    // `await` holds back every other message until the snapshot is here, so
    // nothing is answered before we know the owner and the last seq.
    self->request(st.cfg.store, st.cfg.store_timeout, load_conv_atom::value, st.id)
        .await(
            [=](conversation_snapshot& snap) {
              auto& st = self->state;
              st.found = snap.found;
              st.owner = std::move(snap.owner);
              st.next_seq = snap.last_seq + 1;
              st.epoch = snap.epoch;
              for (auto& m : snap.recent)
                st.context.push_back(std::move(m));
              if (st.found)
                queue_unanswered(self);
              arm_idle_check(self);
            },
            [=](caf::error& err) {
              log::error("conversation_load_failed",
                         {{"conversationId", self->state.id}, {"error", to_string(err)}});
              self->state.load_failed = true;
              arm_idle_check(self);
            });
  } else {
    arm_idle_check(self);
  }
  return serving(self);
}

} // namespace

// The actor's own handle (timers included) narrows to the public one here.
conversation_actor spawn_conversation(caf::actor_system& sys, std::string id,
                                      const conversation_config& cfg) {
  return sys.spawn(conversation_impl, std::move(id), cfg, false, std::string{});
}

conversation_actor spawn_new_conversation(caf::actor_system& sys, std::string id, std::string owner,
                                          const conversation_config& cfg) {
  return sys.spawn(conversation_impl, std::move(id), cfg, true, std::move(owner));
}

} // namespace chat
