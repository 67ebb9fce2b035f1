#include "actors/conversation_actor.hpp"

#include <algorithm>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "actors/errors.hpp"
#include "common/ids.hpp"
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

namespace chat {

namespace {

using namespace std::chrono_literals;
using protocol::error_code;

using retry_store_atom = caf::atom_constant<caf::atom("c_retry")>;
using checkpoint_tick_atom = caf::atom_constant<caf::atom("c_ckpt")>;
using check_seq_atom = caf::atom_constant<caf::atom("c_check")>;
using expire_sends_atom = caf::atom_constant<caf::atom("c_expire")>;
using retry_unstored_atom = caf::atom_constant<caf::atom("c_unstord")>;

constexpr auto ai_timeout = 30s;

/// A send waiting for its turn to be written.
struct pending_send {
  std::string user_id;
  std::string client_msg_id;
  std::string content;
  std::string model;
  std::string provider;
  caf::actor session;
  caf::response_promise promise;
  caf::actor_clock::time_point queued_at;
  int seq_retries = 0; // times the database said its seq was taken
};

/// A user message whose write we sent but whose outcome we did not see.
struct unknown_write {
  stored_message message;
  std::string provider;
};

/// A finished reply whose `done` went out but whose write still fails
/// transiently: retried in the background.
struct unstored_reply {
  stored_message message;
  int attempts = 0;
};

/// An acknowledged user message whose reply has not started yet.
struct queued_reply {
  std::string user_message_id;
  int64_t seq; // the reply's
  std::string model;
  std::string provider;
};

/// The reply being generated.
struct reply_state {
  std::string id;
  int64_t seq = 0;
  std::string reply_to;
  std::string model;
  std::vector<std::string> deltas; // kept to replay chunks to new subscribers
  caf::actor invoker;              // set once the AI pool answered; monitored
  bool cancel_requested = false;
  bool finishing = false; // done received, storing
  stored_message final_message;
  timestamp_ms created_at = 0; // when it started: the row's createdAt
  caf::actor_clock::time_point started;
  size_t checkpointed_chunks = 0; // how many deltas the database has
  bool checkpoint_in_flight = false;
  int store_attempts = 0; // failed writes of the finished reply
};

struct subscriber {
  caf::actor handle;
  // While replaying, live events are not sent: the replay ends with the
  // current state (see finish_replay).
  bool replaying = false;
  uint64_t replay_token = 0; // identifies the current replay of this subscriber
  int64_t after_seq = 0;
  std::set<int64_t> replayed_recent; // seqs replayed that `context` may hold
  bool reply_replayed = false;       // the current reply went out whole
};

struct conversation_state {
  std::string id;
  std::string owner;
  conversation_config cfg;
  bool loaded = false;
  bool found = true;
  bool load_failed = false;
  bool is_new = false; // no row yet: written with the first message
  int64_t next_seq = 1;
  /// next_seq agrees with the database; false after a failed write until
  /// a check says what the database holds.
  bool seq_known = true;
  bool check_in_flight = false;
  bool check_armed = false;
  std::chrono::milliseconds check_backoff{0};
  std::optional<unknown_write> unknown;
  std::deque<stored_message> context; // recent finished messages, seq order
  std::deque<pending_send> sends;
  bool write_in_flight = false;
  bool expiry_armed = false;
  std::map<std::string, unstored_reply> unstored; // by message id
  bool stopping = false;                          // drained: start no reply
  std::deque<queued_reply> replies;
  std::optional<reply_state> reply;
  std::map<caf::actor_addr, subscriber> subs;
  uint64_t next_replay_token = 1;
  bool idle_check_armed = false;
  caf::actor_clock::time_point last_activity;

  static inline const char* name = "conversation";
};

using conversation = caf::stateful_actor<conversation_state>;

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

/// Sends one encoded frame to every live subscriber but `except`. The same
/// message object goes to all of them: the bytes are encoded once and shared.
void broadcast(conversation* self, std::string frame, const caf::actor& except = {}) {
  auto& st = self->state;
  auto msg = caf::make_message(event_atom::value, st.id, std::move(frame));
  for (auto& kv : st.subs)
    if (!kv.second.replaying && kv.second.handle != except)
      self->send(kv.second.handle, msg);
}

void send_event(conversation* self, const caf::actor& to, std::string frame) {
  self->send(to, event_atom::value, self->state.id, std::move(frame));
}

subscriber& attach(conversation* self, const caf::actor& session) {
  auto& st = self->state;
  auto [it, added]
      = st.subs.emplace(session.address(), subscriber{session, false, 0, 0, {}, false});
  if (added)
    self->monitor(session);
  return it->second;
}

std::vector<chat_turn> context_for(conversation* self, int64_t reply_seq) {
  auto& st = self->state;
  std::vector<chat_turn> turns;
  for (auto& m : st.context)
    if (m.seq < reply_seq && !m.content.empty())
      turns.push_back(chat_turn{m.role, m.content});
  if (turns.size() > st.cfg.context_messages)
    turns.erase(turns.begin(), turns.end() - st.cfg.context_messages);
  return turns;
}

// -- replies ------------------------------------------------------------------

void maybe_start_reply(conversation* self);

stored_message reply_message(conversation* self) {
  auto& st = self->state;
  auto& r = *st.reply;
  stored_message m;
  m.id = r.id;
  m.conversation_id = st.id;
  m.seq = r.seq;
  m.role = "assistant";
  for (auto& d : r.deltas)
    m.content += d;
  m.user_id = st.owner;
  m.reply_to = r.reply_to;
  m.model = r.model;
  m.created_at = r.created_at;
  return m;
}

std::chrono::milliseconds backoff(const conversation_config& cfg, int attempt) {
  auto d = cfg.retry_delay;
  for (int i = 1; i < attempt && d < cfg.retry_max_delay; ++i)
    d *= 2;
  return std::min(d, cfg.retry_max_delay);
}

/// Stops watching the invoker of the reply in progress (a pool's invoker
/// serves many replies; monitors must not pile up).
void release_invoker(conversation* self) {
  auto& st = self->state;
  if (st.reply && st.reply->invoker)
    self->demonitor(st.reply->invoker);
}

/// The reply has ended in memory: its `done` goes out, the next one starts.
void close_reply(conversation* self, const stored_message& msg, bool stored) {
  auto& st = self->state;
  auto& r = *st.reply;
  if (stored)
    remember(self, msg);
  protocol::done_frame d;
  d.conversation_id = st.id;
  d.message_id = r.id;
  d.reply_to = r.reply_to;
  d.seq = r.seq;
  d.chunks = static_cast<int64_t>(r.deltas.size());
  d.finish_reason = msg.finish_reason;
  d.prompt_tokens = msg.prompt_tokens;
  d.completion_tokens = msg.completion_tokens;
  broadcast(self, protocol::encode(d));
  auto& m = metrics::global();
  m.replies_active--;
  m.replies_finished++;
  log::info("reply_finished", {{"user", st.owner},
                               {"conversationId", st.id},
                               {"messageId", r.id},
                               {"seq", r.seq},
                               {"chunks", static_cast<int64_t>(r.deltas.size())},
                               {"finishReason", msg.finish_reason}});
  release_invoker(self);
  st.reply.reset();
  touch(self);
  maybe_start_reply(self);
  arm_idle_check(self);
}

/// The database says this reply is no longer ours (another process closed
/// it as `interrupted`, or its seq holds another message): stop generating,
/// write nothing more, tell the subscribers it ended.
void abandon_reply(conversation* self, const std::string& why) {
  auto& st = self->state;
  auto& r = *st.reply;
  if (r.invoker && !r.finishing)
    self->send(r.invoker, ai_cancel_atom::value, r.id);
  log::error("reply_abandoned", {{"conversationId", st.id}, {"messageId", r.id}, {"error", why}});
  r.finishing = true;
  auto msg = reply_message(self);
  msg.finish_reason = "interrupted";
  close_reply(self, msg, false);
}

/// Saves the reply so far (crash safety), at most one save in flight. The
/// first save, at the start, makes the reply's seq durable.
void checkpoint(conversation* self) {
  auto& st = self->state;
  if (!st.reply || st.reply->finishing || st.reply->checkpoint_in_flight)
    return;
  auto& r = *st.reply;
  if (r.checkpointed_chunks == r.deltas.size() && r.checkpointed_chunks > 0)
    return; // nothing new
  r.checkpoint_in_flight = true;
  auto id = r.id;
  auto chunks = r.deltas.size();
  self->request(st.cfg.store, st.cfg.store_timeout, checkpoint_atom::value, reply_message(self),
                st.cfg.process_id)
      .then(
          [=](bool saved) {
            auto& st = self->state;
            if (!st.reply || st.reply->id != id)
              return;
            st.reply->checkpoint_in_flight = false;
            if (!saved && !st.reply->finishing) {
              abandon_reply(self, "the reply was closed by another process");
              return;
            }
            st.reply->checkpointed_chunks = std::max(st.reply->checkpointed_chunks, chunks);
          },
          [=](caf::error& err) {
            auto& st = self->state;
            if (!st.reply || st.reply->id != id)
              return;
            st.reply->checkpoint_in_flight = false;
            log::warn("reply_checkpoint_failed",
                      {{"conversationId", st.id}, {"error", to_string(err)}});
            // Another message holds this seq: the reply can never be stored.
            if (classify_store_error(err) == store_failure::permanent && !st.reply->finishing)
              abandon_reply(self, to_string(err));
          });
}

void store_unstored(conversation* self, const std::string& id);

void store_reply(conversation* self) {
  auto& st = self->state;
  auto msg = st.reply->final_message;
  self->request(st.cfg.store, st.cfg.store_timeout, append_reply_atom::value, msg)
      .then(
          [=](bool) {
            auto& st = self->state;
            if (!st.reply || st.reply->id != msg.id)
              return;
            close_reply(self, msg, true);
          },
          [=](caf::error& err) {
            auto& st = self->state;
            if (!st.reply || st.reply->id != msg.id)
              return;
            auto& r = *st.reply;
            auto kind = classify_store_error(err);
            ++r.store_attempts;
            log::error("reply_store_failed", {{"conversationId", st.id},
                                              {"messageId", msg.id},
                                              {"attempt", r.store_attempts},
                                              {"error", to_string(err)}});
            if (kind == store_failure::permanent) {
              // It can never be stored: end it on the wire, move on.
              close_reply(self, msg, false);
              return;
            }
            if (r.store_attempts < st.cfg.reply_store_attempts) {
              self->delayed_send(self, backoff(st.cfg, r.store_attempts), retry_store_atom::value,
                                 msg.id);
              return;
            }
            // The database stays away: the reply ends for its readers now
            // (its seq was made durable by the first checkpoint) and the
            // write goes on in the background; the next reply may start.
            st.unstored[msg.id] = unstored_reply{msg, 0};
            self->delayed_send(self, backoff(st.cfg, 1), retry_unstored_atom::value, msg.id);
            close_reply(self, msg, true);
          });
}

void store_unstored(conversation* self, const std::string& id) {
  auto& st = self->state;
  auto i = st.unstored.find(id);
  if (i == st.unstored.end())
    return;
  self->request(st.cfg.store, st.cfg.store_timeout, append_reply_atom::value, i->second.message)
      .then(
          [=](bool) {
            auto& st = self->state;
            st.unstored.erase(id);
            log::info("reply_stored_late", {{"conversationId", st.id}, {"messageId", id}});
            arm_idle_check(self);
          },
          [=](caf::error& err) {
            auto& st = self->state;
            auto i = st.unstored.find(id);
            if (i == st.unstored.end())
              return;
            auto attempts = ++i->second.attempts;
            if (classify_store_error(err) == store_failure::permanent
                || attempts >= st.cfg.background_store_attempts) {
              log::error("reply_store_given_up", {{"conversationId", st.id},
                                                  {"messageId", id},
                                                  {"attempts", attempts},
                                                  {"error", to_string(err)}});
              st.unstored.erase(i);
              arm_idle_check(self);
              return;
            }
            self->delayed_send(self, backoff(st.cfg, attempts + 1), retry_unstored_atom::value, id);
          });
}

void finish_reply(conversation* self, generation_outcome outcome) {
  auto& st = self->state;
  auto& r = *st.reply;
  r.finishing = true;
  if (outcome.finish_reason == "error") {
    protocol::error_frame e;
    e.code = outcome.error_code == "unavailable" ? error_code::unavailable
                                                 : error_code::provider_error;
    e.message = "the AI provider failed"
                + (outcome.error_message.empty() ? std::string{} : ": " + outcome.error_message);
    e.conversation_id = st.id;
    broadcast(self, protocol::encode(e));
    metrics::global().replies_failed++;
    log::warn("reply_failed", {{"user", st.owner},
                               {"conversationId", st.id},
                               {"messageId", r.id},
                               {"error", outcome.error_message}});
  }
  auto& m = r.final_message;
  m = reply_message(self);
  m.finish_reason = outcome.finish_reason;
  m.prompt_tokens = outcome.prompt_tokens;
  m.completion_tokens = outcome.completion_tokens;
  store_reply(self);
}

/// Ends the reply in progress with `error` (its invoker died, or it ran
/// past the deadline), keeping what streamed.
void fail_reply(conversation* self, const std::string& why) {
  auto& st = self->state;
  auto& r = *st.reply;
  if (r.invoker)
    self->send(r.invoker, ai_cancel_atom::value, r.id);
  generation_outcome o;
  o.finish_reason = "error";
  o.error_message = why;
  finish_reply(self, std::move(o));
}

void maybe_start_reply(conversation* self) {
  auto& st = self->state;
  if (st.reply || st.replies.empty() || st.stopping)
    return;
  auto q = std::move(st.replies.front());
  st.replies.pop_front();
  reply_state r;
  r.id = new_uuid();
  r.seq = q.seq;
  r.reply_to = q.user_message_id;
  r.model = q.model;
  r.created_at = now_ms();
  r.started = self->clock().now();
  st.reply = std::move(r);
  generation_request req{st.reply->id, q.model, q.provider, context_for(self, q.seq)};
  auto id = st.reply->id;
  auto& m = metrics::global();
  m.replies_started++;
  m.replies_active++;
  log::info("reply_started", {{"user", st.owner},
                              {"conversationId", st.id},
                              {"messageId", id},
                              {"seq", q.seq},
                              {"model", q.model}});
  checkpoint(self);
  self->delayed_send(self, st.cfg.checkpoint_interval, checkpoint_tick_atom::value, id);
  self->request(st.cfg.ai, ai_timeout, generate_atom::value, std::move(req), caf::actor{self})
      .then(
          [=](caf::actor invoker) {
            auto& st = self->state;
            if (!st.reply || st.reply->id != id || st.reply->finishing)
              return;
            st.reply->invoker = invoker;
            // If it dies, the reply must still end (see the down handler).
            self->monitor(invoker);
            if (st.reply->cancel_requested)
              self->send(invoker, ai_cancel_atom::value, id);
          },
          [=](caf::error& err) {
            auto& st = self->state;
            if (!st.reply || st.reply->id != id || st.reply->finishing)
              return;
            generation_outcome o;
            o.finish_reason = "error";
            o.error_code = "unavailable";
            o.error_message = "AI service unavailable";
            log::error("ai_pool_failed", {{"error", to_string(err)}});
            finish_reply(self, std::move(o));
          });
}

// -- user messages ------------------------------------------------------------

void pump_writes(conversation* self);
void start_replay(conversation* self, const caf::actor& session, int64_t after_seq);
void replay_page(conversation* self, caf::actor session, int64_t cursor, uint64_t token);

/// A user message is durable: it is remembered, shown to the other
/// connections, and its reply queued.
void accept_message(conversation* self, const stored_message& msg, const std::string& provider,
                    const caf::actor& except) {
  auto& st = self->state;
  st.is_new = false;
  remember(self, msg);
  metrics::global().messages_acked++;
  broadcast(self, protocol::encode_message_event(msg), except);
  st.replies.push_back(queued_reply{msg.id, msg.seq + 1, msg.model, provider});
}

void on_user_written(conversation* self, const stored_message& msg, append_result& res) {
  auto& st = self->state;
  st.write_in_flight = false;
  if (res.seq_taken) {
    // Our next seq was stale (another writer, or a write we thought lost):
    // the send stays first in line and goes again once the seq is known.
    st.seq_known = false;
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
  auto p = std::move(st.sends.front());
  st.sends.pop_front();
  if (res.duplicate) {
    st.next_seq -= 2; // nothing after it was reserved: writes are serialized
    auto resume_after = res.seq + 1;
    bool here = res.conversation_id == st.id;
    p.promise.deliver(std::move(res));
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
    p.promise.deliver(std::move(res));
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
  auto kind = classify_store_error(err);
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

/// The highest seq this conversation has promised: its reply in progress
/// and the queued ones.
int64_t reserved_seq(conversation* self) {
  auto& st = self->state;
  int64_t top = st.reply ? st.reply->seq : 0;
  for (auto& q : st.replies)
    top = std::max(top, q.seq);
  return top;
}

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
                accept_message(self, u.message, u.provider, caf::actor{});
              }
              st.unknown.reset();
            }
            st.next_seq = std::max(c.last_seq, reserved_seq(self)) + 1;
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
            st.check_backoff = st.check_backoff.count() == 0
                                   ? st.cfg.retry_delay
                                   : std::min(st.check_backoff * 2, st.cfg.retry_max_delay);
            log::warn("conversation_seq_check_failed", {{"conversationId", st.id},
                                                        {"retryMs", st.check_backoff.count()},
                                                        {"error", to_string(err)}});
            st.check_armed = true;
            self->delayed_send(self, st.check_backoff, check_seq_atom::value);
          });
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
  if (st.write_in_flight || st.sends.empty())
    return;
  auto& p = st.sends.front();
  st.write_in_flight = true;
  user_message_write w;
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
  self->request(st.cfg.store, st.cfg.store_timeout, append_user_atom::value, w)
      .then([=](append_result& res) { on_user_written(self, m, res); },
            [=](caf::error& err) { on_user_write_failed(self, m, err); });
}

// -- subscribers ----------------------------------------------------------------

/// Ends a replay. Messages committed after the database pages were read are
/// in `context`: send those the pages did not have. Then, if a reply is
/// being generated (and was not just replayed whole), all its chunks so
/// far. From here on the subscriber gets live events.
void finish_replay(conversation* self, const caf::actor& session) {
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
  if (st.reply && !sub.reply_replayed) {
    auto& r = *st.reply;
    for (size_t i = 0; i < r.deltas.size(); ++i) {
      protocol::chunk_frame c{st.id, r.id, r.reply_to, r.seq, static_cast<int64_t>(i), r.deltas[i]};
      send_event(self, session, protocol::encode(c));
    }
  }
  sub.replaying = false;
  sub.replayed_recent.clear();
}

/// Starts (or restarts) replaying to `session` everything after `after_seq`.
void start_replay(conversation* self, const caf::actor& session, int64_t after_seq) {
  auto& st = self->state;
  auto& sub = attach(self, session);
  sub.replaying = true;
  sub.replay_token = st.next_replay_token++;
  sub.after_seq = after_seq;
  sub.replayed_recent.clear();
  sub.reply_replayed = false;
  replay_page(self, session, after_seq, sub.replay_token);
}

void replay_page(conversation* self, caf::actor session, int64_t cursor, uint64_t token) {
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
            self->demonitor(session);
            arm_idle_check(self);
          });
}

// -- behavior -------------------------------------------------------------------

caf::behavior serving(conversation* self) {
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& st = self->state;
    if (st.reply && st.reply->invoker && st.reply->invoker.address() == dm.source) {
      // The invoker serving the reply is gone: no end will come from it.
      // The pool's other invokers serve the next reply.
      if (!st.reply->finishing) {
        log::error("ai_invoker_down", {{"conversationId", st.id}, {"messageId", st.reply->id}});
        st.reply->invoker = caf::actor{};
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
          caf::actor& session) -> caf::result<append_result> {
        auto& st = self->state;
        if (!owned_by(self, user))
          return access_error(self);
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
        pump_writes(self);
        return rp;
      },
      [=](subscribe_atom, const std::string& user, int64_t after_seq,
          caf::actor& session) -> caf::result<bool> {
        if (!owned_by(self, user))
          return access_error(self);
        touch(self);
        // The answer goes out first, then the replay, then live events.
        start_replay(self, session, after_seq);
        return true;
      },
      [=](unsubscribe_atom, const caf::actor& session) {
        auto& st = self->state;
        if (st.subs.erase(session.address()) > 0)
          self->demonitor(session);
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
        protocol::chunk_frame c{
            st.id, r.id, r.reply_to, r.seq, static_cast<int64_t>(r.deltas.size()), delta};
        r.deltas.push_back(std::move(delta));
        metrics::global().chunks_sent++;
        broadcast(self, protocol::encode(c));
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
        if (!st.reply || st.reply->finishing)
          return;
        if (st.reply->invoker)
          self->send(st.reply->invoker, ai_cancel_atom::value, st.reply->id);
        generation_outcome o;
        o.finish_reason = "interrupted";
        finish_reply(self, std::move(o));
      },
      [=](check_seq_atom) {
        self->state.check_armed = false;
        pump_writes(self);
        check_seq(self);
      },
      [=](expire_sends_atom) {
        self->state.expiry_armed = false;
        pump_writes(self);
        arm_idle_check(self);
      },
      [=](retry_unstored_atom, const std::string& message_id) { store_unstored(self, message_id); },

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

/// After a crash (or a drain that ran out of time) acked user messages may
/// have no reply: their reserved seq was never written. Answer them now, in
/// order, with the model they asked for. The load closed as `interrupted`
/// the replies of processes that are gone, and names the seqs of replies
/// live processes are generating: any other missing seq really is a reply
/// that never started.
void queue_unanswered(conversation* self, const std::vector<int64_t>& in_progress) {
  auto& st = self->state;
  std::set<int64_t> seqs{in_progress.begin(), in_progress.end()};
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

caf::behavior conversation_impl(conversation* self, std::string id, conversation_config cfg,
                                bool is_new, std::string owner) {
  auto& st = self->state;
  st.id = std::move(id);
  st.cfg = std::move(cfg);
  st.is_new = is_new;
  st.owner = std::move(owner);
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
              for (auto& m : snap.recent)
                st.context.push_back(std::move(m));
              if (st.found)
                queue_unanswered(self, snap.in_progress);
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

caf::actor spawn_conversation(caf::actor_system& sys, std::string id,
                              const conversation_config& cfg) {
  return sys.spawn(conversation_impl, std::move(id), cfg, false, std::string{});
}

caf::actor spawn_new_conversation(caf::actor_system& sys, std::string id, std::string owner,
                                  const conversation_config& cfg) {
  return sys.spawn(conversation_impl, std::move(id), cfg, true, std::move(owner));
}

} // namespace chat
