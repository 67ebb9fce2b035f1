#include "actors/session_actor.hpp"

#include <algorithm>
#include <chrono>
#include <functional>
#include <optional>
#include <unordered_map>

#include <caf/actor_system.hpp>
#include <caf/sec.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/errors.hpp"
#include "actors/local_links.hpp"
#include "common/log.hpp"
#include "common/metrics.hpp"
#include "protocol/codec.hpp"

namespace chat {

namespace {

using namespace std::chrono_literals;
using protocol::error_code;

/// Following a conversation whose actor went (its node died): tries, and
/// the pause between them. The membership view drops a dead node within
/// about a second, then the directory places the conversation anew.
constexpr int follow_attempts = 20;
constexpr auto follow_pause = 500ms;

/// A request a conversation answered "moved" (it handed over to another
/// node) is retried through the directory this long after, at most this
/// often: by then the directory knows the old actor is gone.
constexpr auto moved_pause = 50ms;
constexpr int moved_attempts = 4;

using follow_atom = caf::atom_constant<caf::atom("s_follow")>;
using later_atom = caf::atom_constant<caf::atom("s_later")>;

/// The actor's own interface: the public one plus the timers it sends
/// itself, which nobody else can (the handle given out is session_actor).
using session_self_actor = session_actor::extend<caf::reacts_to<follow_atom, std::string, int>,
                                                 caf::reacts_to<later_atom, uint64_t>>;

/// A send waiting for its conversation's answer.
struct in_flight_send {
  std::string conversation_id;
  protocol::send_frame frame;
  model_info model;
  int attempt = 0;
  caf::actor_addr conversation; // the actor asked
};

struct session_state {
  std::string user;
  client_link_ptr link;
  session_config cfg;
  /// Conversations this connection is subscribed to (or has sent to),
  /// monitored.
  std::unordered_map<std::string, conversation_actor> conversations;
  /// The highest seq this connection's client has whole, per conversation
  /// (from the frames relayed): where to resubscribe from.
  std::unordered_map<std::string, int64_t> completed;
  /// When each send not yet answered arrived (for the ack latency metric).
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> received;
  /// Sends waiting for their conversation's answer, by key: when the actor
  /// asked goes, they are sent again (see resend_in_flight).
  std::unordered_map<uint64_t, in_flight_send> sending;
  uint64_t next_send = 1;
  /// Work to do a moment later (see later()), by key.
  std::unordered_map<uint64_t, std::function<void()>> delayed;
  uint64_t next_delayed = 1;

  static inline const char* name = "session";
};

using session = session_self_actor::stateful_base<session_state>;

void write(session* self, std::string frame) {
  if (auto link = self->state.link.lock())
    link->send(shared_frame{std::move(frame)});
}

void write_error(session* self, protocol::error_frame e, const std::string& client_msg_id = {},
                 const std::string& conversation_id = {}) {
  e.client_msg_id = client_msg_id;
  e.conversation_id = conversation_id;
  write(self, protocol::encode(e));
}

bool receiver_down(const caf::error& err) {
  return err == caf::sec::request_receiver_down;
}

/// Runs `fn` on this actor after `delay`.
void later(session* self, std::chrono::milliseconds delay, std::function<void()> fn) {
  auto key = self->state.next_delayed++;
  self->state.delayed.emplace(key, std::move(fn));
  self->delayed_send(self, delay, later_atom::value, key);
}

/// Whether a failed request to a conversation actor should go again
/// through the directory, and after how long: its actor stopped (idle)
/// just after the directory handed it out, or it handed the conversation
/// over to another node.
std::optional<std::chrono::milliseconds> retry_delay(const caf::error& err, int attempt) {
  // After a hand-over the old actor may still be handed out for a moment.
  if ((receiver_down(err) || is_conversation_moved(err)) && attempt < moved_attempts)
    return moved_pause * attempt;
  return std::nullopt;
}

/// Calls `fn` with the actor of conversation `id`, from the cache or the
/// directory; on a directory error, calls `fail`.
void with_conversation(session* self, const std::string& id,
                       std::function<void(conversation_actor)> fn,
                       std::function<void(const caf::error&)> fail) {
  auto& st = self->state;
  if (auto i = st.conversations.find(id); i != st.conversations.end()) {
    fn(i->second);
    return;
  }
  self->request(st.cfg.directory, st.cfg.directory_timeout, lookup_atom::value, id)
      .then([=](conversation_actor conv) { fn(std::move(conv)); },
            [=](caf::error& err) { fail(err); });
}

/// Keeps the handle of a conversation this connection follows, and watches
/// it: if it goes (its node died) the session follows the conversation to
/// wherever the directory places it next (see the down handler).
void hold(session* self, const std::string& id, const conversation_actor& conv) {
  auto [it, added] = self->state.conversations.emplace(id, conv);
  if (added) {
    self->monitor(conv);
  } else if (it->second != conv) {
    self->demonitor(it->second.address());
    it->second = conv;
    self->monitor(conv);
  }
}

// A conversation actor may stop (idle) just after the directory handed it
// out; requests to it then fail with `request_receiver_down`. The caller
// forgets the handle and tries once more through the directory.
void forget(session* self, const std::string& id) {
  auto& st = self->state;
  if (auto i = st.conversations.find(id); i != st.conversations.end()) {
    self->demonitor(i->second.address());
    st.conversations.erase(i);
  }
}

/// Subscribes again to a conversation whose actor went, from the last seq
/// the client has whole; the client sees at most chunks again (which it
/// drops), never a gap. Retries while the conversation is unavailable (the
/// view has not dropped the dead node yet).
void follow(session* self, const std::string& id, int attempt) {
  auto& st = self->state;
  auto after = st.completed.count(id) > 0 ? st.completed[id] : 0;
  auto retry = [=](const caf::error& err) {
    forget(self, id);
    auto frame = to_error_frame(err);
    if (frame.code == error_code::unavailable && attempt + 1 < follow_attempts) {
      self->delayed_send(self, follow_pause, follow_atom::value, id, attempt + 1);
      return;
    }
    write_error(self, frame, {}, id);
  };
  with_conversation(
      self, id,
      [=](conversation_actor conv) {
        self->request(conv, self->state.cfg.conversation_timeout, subscribe_atom::value,
                      self->state.user, after, session_events{self})
            .then(
                [=](bool) {
                  hold(self, id, conv);
                  log::info("conversation_followed", {{"user", self->state.user},
                                                      {"conversationId", id},
                                                      {"afterSeq", after},
                                                      {"attempt", attempt}});
                },
                [=](caf::error& err) { retry(err); });
      },
      retry);
}

void subscribe_to(session* self, const std::string& id, int64_t after_seq, bool report_errors,
                  int attempt = 0) {
  auto fail = [=](const caf::error& err) {
    if (report_errors)
      write_error(self, to_error_frame(err), {}, id);
  };
  with_conversation(
      self, id,
      [=](conversation_actor conv) {
        self->request(conv, self->state.cfg.conversation_timeout, subscribe_atom::value,
                      self->state.user, after_seq, session_events{self})
            .then([=](bool) { hold(self, id, conv); },
                  [=](caf::error& err) {
                    forget(self, id);
                    if (auto delay = retry_delay(err, attempt))
                      later(self, *delay,
                            [=] { subscribe_to(self, id, after_seq, report_errors, attempt + 1); });
                    else
                      fail(err);
                  });
      },
      fail);
}

/// A send was acknowledged (or was a repeat: then `res` is the original).
void on_acked(session* self, const protocol::send_frame& f, const std::string& conv_id,
              const conversation_actor& conv, const append_result& res) {
  auto& st = self->state;
  if (auto i = st.received.find(f.client_msg_id); i != st.received.end()) {
    metrics::global().ack_latency.observe(std::chrono::steady_clock::now() - i->second);
    st.received.erase(i);
  }
  if (!res.ack_written) {
    protocol::ack_frame ack{f.client_msg_id, res.conversation_id, res.message_id, res.seq};
    write(self, protocol::encode(ack));
  }
  auto& done = st.completed[res.conversation_id];
  done = std::max(done, res.seq);
  if (res.conversation_id == conv_id && conv) {
    hold(self, conv_id, conv);
  } else if (st.conversations.count(res.conversation_id) == 0) {
    // A repeated clientMsgId of a message in another conversation: the
    // connection gets that message's reply as `subscribe` would.
    subscribe_to(self, res.conversation_id, res.seq + 1, false);
  }
  if (res.duplicate)
    log::info("message_duplicate", {{"user", st.user},
                                    {"conversationId", res.conversation_id},
                                    {"messageId", res.message_id}});
}

/// A send failed with `err`. A repeat of a message already stored gets the
/// original ack "whatever the conversation of the repeat", even one that
/// does not exist, so a not_found is checked against the clientMsgId first.
void refuse_send(session* self, const protocol::send_frame& f, const std::string& conv_id,
                 const caf::error& err) {
  auto frame = to_error_frame(err);
  self->state.received.erase(f.client_msg_id);
  if (frame.code != error_code::not_found) {
    write_error(self, frame, f.client_msg_id, conv_id);
    return;
  }
  auto& st = self->state;
  self->request(st.cfg.store, st.cfg.conversation_timeout, find_msg_atom::value, st.user,
                f.client_msg_id)
      .then(
          [=](append_result& res) {
            if (res.conversation_id.empty())
              write_error(self, frame, f.client_msg_id, conv_id);
            else
              on_acked(self, f, conv_id, conversation_actor{}, res);
          },
          [=](caf::error&) { write_error(self, frame, f.client_msg_id, conv_id); });
}

void send_to(session* self, conversation_actor conv, std::string conv_id, protocol::send_frame f,
             const model_info& model, int attempt = 0) {
  auto& st = self->state;
  auto key = st.next_send++;
  st.sending.emplace(key, in_flight_send{conv_id, f, model, attempt, conv.address()});
  hold(self, conv_id, conv); // watched: if it goes, this send goes again
  self->request(conv, self->state.cfg.conversation_timeout, send_atom::value, st.user,
                f.client_msg_id, f.content, model.name, model.provider, session_events{self})
      .then(
          [=](append_result& res) {
            if (self->state.sending.erase(key) == 0)
              return; // sent again when its conversation went: that answers
            on_acked(self, f, conv_id, conv, res);
          },
          [=](caf::error& err) {
            if (self->state.sending.erase(key) == 0)
              return;
            forget(self, conv_id);
            if (auto delay = retry_delay(err, attempt)) {
              later(self, *delay, [=] {
                with_conversation(
                    self, conv_id,
                    [=](conversation_actor c) { send_to(self, c, conv_id, f, model, attempt + 1); },
                    [=](const caf::error& e) { refuse_send(self, f, conv_id, e); });
              });
              return;
            }
            refuse_send(self, f, f.conversation_id, err);
          });
}

/// Sends `f` to conversation `conv_id`, found through the directory.
/// While the directory cannot place it (the view still names a node that
/// died, or the link to its owner dropped) it tries again, as follow()
/// does, before the client is told `unavailable`.
void dispatch(session* self, std::string conv_id, protocol::send_frame f, model_info model,
              int attempt, int lookup_attempt = 0) {
  with_conversation(
      self, conv_id, [=](conversation_actor c) { send_to(self, c, conv_id, f, model, attempt); },
      [=](const caf::error& err) {
        if (to_error_frame(err).code == error_code::unavailable
            && lookup_attempt + 1 < follow_attempts) {
          later(self, follow_pause,
                [=] { dispatch(self, conv_id, f, model, attempt, lookup_attempt + 1); });
          return;
        }
        refuse_send(self, f, conv_id, err);
      });
}

/// The conversation actor `gone` went (its node died, or the link to it
/// dropped): the sends waiting for its answer would get one only from
/// their timeout. They go again, with the same clientMsgId, so one the
/// dead node did store is answered as the repeat it is.
void resend_in_flight(session* self, const caf::actor_addr& gone) {
  std::vector<in_flight_send> again;
  auto& sending = self->state.sending;
  for (auto i = sending.begin(); i != sending.end();) {
    if (i->second.conversation == gone) {
      again.push_back(std::move(i->second));
      i = sending.erase(i);
    } else {
      ++i;
    }
  }
  for (auto& s : again) {
    log::info("message_resent", {{"user", self->state.user},
                                 {"conversationId", s.conversation_id},
                                 {"clientMsgId", s.frame.client_msg_id}});
    dispatch(self, s.conversation_id, s.frame, s.model, s.attempt + 1);
  }
}

session_self_actor::behavior_type session_impl(session* self, std::string user,
                                               client_link_ptr link, session_config cfg) {
  auto& st = self->state;
  st.user = std::move(user);
  st.link = std::move(link);
  st.cfg = std::move(cfg);
  // Conversations of this process write to the connection directly.
  local_links::add(self->address(), st.link);
  self->attach_functor([addr = self->address()] { local_links::remove(addr); });
  // A conversation this connection follows went: unless it ended normally
  // (deleted), its node died or it crashed. Follow it to its next place.
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& st = self->state;
    for (auto i = st.conversations.begin(); i != st.conversations.end(); ++i) {
      if (i->second.address() != dm.source)
        continue;
      auto id = i->first;
      st.conversations.erase(i);
      resend_in_flight(self, dm.source);
      if (dm.reason == caf::exit_reason::normal)
        return;
      if (is_conversation_moved(dm.reason))
        log::info("conversation_moved", {{"user", st.user}, {"conversationId", id}});
      else
        log::warn("conversation_lost",
                  {{"user", st.user}, {"conversationId", id}, {"reason", to_string(dm.reason)}});
      follow(self, id, 0);
      return;
    }
  });
  // No other clean-up on exit: conversations monitor their subscribers.
  return {
      [=](protocol::send_frame& f) {
        auto& st = self->state;
        log::info("message_received", {{"user", st.user}, {"clientMsgId", f.client_msg_id}});
        if (st.cfg.draining && st.cfg.draining->load()) {
          protocol::error_frame e{
              error_code::unavailable, "the server is shutting down, please reconnect", {}, {}};
          write_error(self, e, f.client_msg_id, f.conversation_id);
          return;
        }
        auto model = st.cfg.models->find(f.model);
        if (model == nullptr) {
          protocol::error_frame e{error_code::bad_request, "unknown model", {}, {}};
          write_error(self, e, f.client_msg_id, f.conversation_id);
          return;
        }
        if (!st.cfg.limiter->allow(st.user)) {
          protocol::error_frame e{error_code::rate_limited, "too many messages, slow down", {}, {}};
          write_error(self, e, f.client_msg_id, f.conversation_id);
          return;
        }
        auto m = *model;
        st.received[f.client_msg_id] = std::chrono::steady_clock::now();
        if (f.conversation_id.empty()) {
          self->request(st.cfg.directory, st.cfg.directory_timeout, create_atom::value, st.user)
              .then(
                  [=](std::string& id, conversation_actor& conv) { send_to(self, conv, id, f, m); },
                  [=](caf::error& err) {
                    self->state.received.erase(f.client_msg_id);
                    write_error(self, to_error_frame(err), f.client_msg_id);
                  });
          return;
        }
        dispatch(self, f.conversation_id, f, m, 0);
      },
      [=](follow_atom, const std::string& id, int attempt) { follow(self, id, attempt); },
      [=](later_atom, uint64_t key) {
        auto& delayed = self->state.delayed;
        if (auto i = delayed.find(key); i != delayed.end()) {
          auto fn = std::move(i->second);
          delayed.erase(i);
          fn();
        }
      },
      [=](protocol::subscribe_frame& f) {
        self->state.completed[f.conversation_id] = f.after_seq;
        subscribe_to(self, f.conversation_id, f.after_seq, true);
      },
      [=](protocol::unsubscribe_frame& f) {
        // Through the same path as subscribe, so that an unsubscribe right
        // after a subscribe reaches the conversation after it. Unknown ids
        // and conversations we are not in ignore it.
        auto id = f.conversation_id;
        with_conversation(
            self, id,
            [=](conversation_actor conv) {
              self->send(conv, unsubscribe_atom::value, session_events{self});
            },
            [](const caf::error&) {});
        forget(self, id);
        self->state.completed.erase(id);
      },
      [=](protocol::cancel_frame& f) {
        auto id = f.conversation_id;
        auto fail = [=](const caf::error& err) { write_error(self, to_error_frame(err), {}, id); };
        with_conversation(
            self, id,
            [=](conversation_actor conv) {
              self->request(conv, self->state.cfg.conversation_timeout, cancel_atom::value,
                            self->state.user, f.message_id)
                  .then([](bool) {},
                        [=](caf::error& err) {
                          forget(self, id);
                          fail(err);
                        });
            },
            fail);
      },
      [=](completed_atom, const std::string& conv_id, int64_t seq) {
        // A frame its conversation wrote to the connection directly.
        auto& done = self->state.completed[conv_id];
        done = std::max(done, seq);
      },
      [=](event_atom, const std::string& conv_id, const std::string& frame) {
        if (auto seq = protocol::completed_seq_of(frame); seq > 0) {
          auto& done = self->state.completed[conv_id];
          done = std::max(done, seq);
        }
        // Hand the bytes to the socket without copying them: they stay inside
        // the message the conversation sent to all its subscribers.
        if (auto link = self->state.link.lock())
          link->send(shared_frame{self->current_mailbox_element()->move_content_to_message(), 2});
      },
  };
}

} // namespace

// The actor's own handle (timers included) narrows to the public one here.
session_actor spawn_session(caf::actor_system& sys, std::string user_id, client_link_ptr link,
                            const session_config& cfg) {
  return sys.spawn(session_impl, std::move(user_id), std::move(link), cfg);
}

} // namespace chat
