// The reply lifecycle of the conversation actor: start one reply at a time,
// checkpoint it while it streams, store it when the AI is done (retrying
// with backoff), close, abandon or fail it, and keep writing in the
// background the replies whose `done` went out unstored.

#include <algorithm>
#include <chrono>
#include <vector>

#include "actors/detail/conversation_internal.hpp"
#include "actors/errors.hpp"
#include "common/ids.hpp"
#include "common/log.hpp"
#include "common/metrics.hpp"
#include "protocol/codec.hpp"

namespace chat::conversation_detail {

namespace {

using namespace std::chrono_literals;
using protocol::error_code;

constexpr auto ai_timeout = 30s;

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
    self->demonitor(st.reply->invoker.address());
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

} // namespace

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
  if (!st.reply || st.reply->finishing || st.reply->checkpoint_in_flight || st.reply->awaiting_ack)
    return;
  auto& r = *st.reply;
  if (r.checkpointed_chunks == r.deltas.size() && r.checkpointed_chunks > 0)
    return; // nothing new
  r.checkpoint_in_flight = true;
  auto id = r.id;
  auto chunks = r.deltas.size();
  self->request(st.cfg.store, st.cfg.store_timeout, checkpoint_atom::value, reply_message(self),
                st.cfg.process_id, st.epoch)
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
            if (classify_store_error(err) == store_failure::fenced) {
              hand_over(self, true);
              return;
            }
            // Another message holds this seq: the reply can never be stored.
            if (classify_store_error(err) == store_failure::permanent && !st.reply->finishing)
              abandon_reply(self, to_string(err));
          });
}

void store_reply(conversation* self) {
  auto& st = self->state;
  auto msg = st.reply->final_message;
  self->request(st.cfg.store, st.cfg.store_timeout, append_reply_atom::value, msg, st.epoch)
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
            if (kind == store_failure::fenced) {
              hand_over(self, true);
              return;
            }
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
            auto& u = st.unstored[msg.id];
            u.message = msg;
            u.retry_armed = true;
            self->delayed_send(self, backoff(st.cfg, 1), retry_unstored_atom::value, msg.id);
            close_reply(self, msg, true);
          });
}

void store_unstored(conversation* self, const std::string& id) {
  auto& st = self->state;
  auto i = st.unstored.find(id);
  if (i == st.unstored.end() || i->second.in_flight)
    return;
  i->second.in_flight = true;
  self->request(st.cfg.store, st.cfg.store_timeout, append_reply_atom::value, i->second.message,
                st.epoch)
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
            i->second.in_flight = false;
            auto attempts = ++i->second.attempts;
            if (classify_store_error(err) == store_failure::fenced) {
              // The new owner closed it `interrupted`, keeping its checkpoint.
              st.unstored.erase(i);
              hand_over(self, true);
              return;
            }
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
            if (!i->second.retry_armed) {
              i->second.retry_armed = true;
              self->delayed_send(self, backoff(st.cfg, attempts + 1), retry_unstored_atom::value,
                                 id);
            }
          });
}

void store_unstored_now(conversation* self) {
  std::vector<std::string> ids;
  for (auto& [id, u] : self->state.unstored)
    if (!u.in_flight)
      ids.push_back(id);
  for (auto& id : ids)
    store_unstored(self, id);
}

void finish_reply(conversation* self, generation_outcome outcome) {
  auto& st = self->state;
  auto& r = *st.reply;
  if (r.awaiting_ack) {
    // Its user message is not acked yet: the end waits with the rest.
    if (!r.early_outcome)
      r.early_outcome = std::move(outcome);
    return;
  }
  r.finishing = true;
  if (!r.deltas.empty() && outcome.ttft_us >= 0) {
    // What this service added before the first chunk went out: the wait
    // for an invoker and the hops, not the provider's own time.
    auto waited
        = std::chrono::duration_cast<std::chrono::microseconds>(r.first_chunk_at - r.started);
    metrics::global().first_chunk_overhead.observe(
        std::max<int64_t>(0, waited.count() - outcome.ttft_us));
  }
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

namespace {

/// Starts generating the reply `q` (st.reply must be empty). `early`: its
/// user message is still being written (see reply_state::awaiting_ack);
/// `early_turn` is that message, not in the context yet.
void start_reply(conversation* self, const queued_reply& q, bool early,
                 const std::string& early_turn = {}) {
  auto& st = self->state;
  reply_state r;
  r.id = new_uuid();
  r.seq = q.seq;
  r.reply_to = q.user_message_id;
  r.model = q.model;
  r.created_at = now_ms();
  r.started = self->clock().now();
  r.awaiting_ack = early;
  st.reply = std::move(r);
  auto turns = context_for(self, q.seq);
  if (early)
    turns.push_back(chat_turn{"user", early_turn});
  generation_request req{st.reply->id, q.model, q.provider, std::move(turns)};
  auto id = st.reply->id;
  auto& m = metrics::global();
  m.replies_started++;
  m.replies_active++;
  log::info("reply_started", {{"user", st.owner},
                              {"conversationId", st.id},
                              {"messageId", id},
                              {"seq", q.seq},
                              {"model", q.model},
                              {"early", early}});
  if (!early) {
    checkpoint(self);
    self->delayed_send(self, st.cfg.checkpoint_interval, checkpoint_tick_atom::value, id);
  }
  self->request(st.cfg.ai, ai_timeout, generate_atom::value, std::move(req), reply_sink{self})
      .then(
          [=](caf::actor& answer) {
            auto& st = self->state;
            if (!st.reply || st.reply->id != id || st.reply->finishing) {
              // Dropped or ended meanwhile: stop paying for its tokens.
              caf::anon_send(caf::actor_cast<ai_actor>(answer), ai_cancel_atom::value, id);
              return;
            }
            auto invoker = caf::actor_cast<ai_actor>(answer);
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

} // namespace

void maybe_start_reply(conversation* self) {
  auto& st = self->state;
  if (st.reply || st.replies.empty() || st.stopping)
    return;
  auto q = std::move(st.replies.front());
  st.replies.pop_front();
  start_reply(self, q, false);
}

void start_early_reply(conversation* self, const stored_message& user_message,
                       const std::string& provider) {
  auto& st = self->state;
  if (st.reply || !st.replies.empty() || st.stopping || st.handing_over)
    return; // it would wait its turn anyway
  start_reply(self,
              queued_reply{user_message.id, user_message.seq + 1, user_message.model, provider},
              true, user_message.content);
}

/// The user message `user_message_id` is acked: its early reply, if it has
/// one, goes out from now on (what streamed so far first) and is stored
/// like any other. False: it has none.
bool release_early_reply(conversation* self, const std::string& user_message_id) {
  auto& st = self->state;
  if (!st.reply || !st.reply->awaiting_ack || st.reply->reply_to != user_message_id)
    return false;
  auto& r = *st.reply;
  r.awaiting_ack = false;
  if (!r.deltas.empty())
    r.first_chunk_at = self->clock().now(); // when it goes out
  for (size_t i = 0; i < r.deltas.size(); ++i) {
    metrics::global().chunks_sent++;
    broadcast(self, protocol::encode_chunk(st.id, r.id, r.reply_to, r.seq, static_cast<int64_t>(i),
                                           r.deltas[i]));
  }
  checkpoint(self);
  self->delayed_send(self, st.cfg.checkpoint_interval, checkpoint_tick_atom::value, r.id);
  if (auto outcome = std::move(r.early_outcome)) {
    r.early_outcome.reset();
    finish_reply(self, std::move(*outcome));
  }
  return true;
}

/// The early reply's user message was not written (a failure, a repeat, a
/// stale seq): the reply is dropped, never seen, never stored.
void drop_early_reply(conversation* self, const char* why) {
  auto& st = self->state;
  if (!st.reply || !st.reply->awaiting_ack)
    return;
  auto& r = *st.reply;
  if (r.invoker)
    self->send(r.invoker, ai_cancel_atom::value, r.id);
  release_invoker(self);
  log::info("reply_dropped", {{"conversationId", st.id}, {"messageId", r.id}, {"reason", why}});
  metrics::global().replies_active--;
  st.reply.reset();
}

} // namespace chat::conversation_detail
