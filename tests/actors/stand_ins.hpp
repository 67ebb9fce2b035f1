#pragma once
// Stand-ins for the actors around a conversation (persistence, the AI pool,
// sessions) and the helpers the actor tests share: every step is driven by
// hand under CAF's deterministic test coordinator, no sleeps, no threads.

#include <doctest/doctest.h>

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <caf/test/dsl.hpp>

#include "actors/ai_actor.hpp"
#include "actors/conversation_actor.hpp"
#include "actors/errors.hpp"
#include "actors/persistence_actor.hpp"
#include "actors/type_registry.hpp"

namespace chat::actor_tests {

/// An in-memory store. With `hold` set, user-message writes wait (as an
/// uncommitted transaction would) until `release_atom` commits them or
/// `drop_atom` rolls them back; a db_check waits behind them, as it does in
/// the real writer. `reply_errors` fail the next reply writes. With `down`
/// set, every write and check fails as with the database away.
using release_atom = caf::atom_constant<caf::atom("t_release")>;
using drop_atom = caf::atom_constant<caf::atom("t_drop")>;
using fake_store_actor
    = persistence_actor::extend<caf::reacts_to<release_atom>, caf::reacts_to<drop_atom>>;

struct fake_store_state {
  bool hold = false;
  bool down = false;
  /// Held work in arrival order; the argument says whether writes commit.
  std::vector<std::function<void(bool)>> held;
  size_t held_writes = 0;
  std::vector<user_message_write> requested; // every user write asked for
  std::vector<user_message_write> user_writes;
  std::vector<stored_message> messages;              // committed, any conversation
  std::map<std::string, append_result> by_client_id; // user + "/" + id
  std::map<std::string, std::string> owners;         // conversation -> user
  std::map<std::string, int64_t> epochs;             // conversation -> owner epoch
  std::vector<std::pair<stored_message, std::string>> checkpoints;
  std::deque<caf::error> reply_errors;
  int reply_writes = 0; // attempts, failed ones included
  int checks = 0;
  int history_requests = 0;

  /// The fencing check of every write: refused under a stale epoch.
  bool fenced(const std::string& conv, int64_t epoch) const {
    auto i = epochs.find(conv);
    return i != epochs.end() && i->second != epoch;
  }

  append_result commit(const user_message_write& w) {
    auto key = w.message.user_id + "/" + w.message.client_msg_id;
    if (auto i = by_client_id.find(key); i != by_client_id.end()) {
      auto r = i->second;
      r.duplicate = true;
      return r;
    }
    user_writes.push_back(w);
    if (w.create_conversation && owners.count(w.message.conversation_id) == 0) {
      owners[w.message.conversation_id] = w.message.user_id;
      epochs[w.message.conversation_id] = w.epoch;
    }
    messages.push_back(w.message);
    append_result r{false, w.message.conversation_id, w.message.id, w.message.seq, false};
    by_client_id[key] = r;
    return r;
  }

  write_check check(const std::string& conv, const std::string& id) const {
    write_check c;
    for (auto& m : messages)
      if (m.conversation_id == conv) {
        c.last_seq = std::max(c.last_seq, m.seq);
        c.found = c.found || m.id == id;
      }
    return c;
  }
};

inline fake_store_actor::behavior_type
fake_store(fake_store_actor::stateful_pointer<fake_store_state> self) {
  return {
      [=](append_user_atom, user_message_write& w) -> caf::result<append_result> {
        auto& st = self->state;
        st.requested.push_back(w);
        if (st.fenced(w.message.conversation_id, w.epoch))
          return make_store_error(store_failure::fenced, "fenced");
        if (st.down)
          return make_store_error(store_failure::transient, "database unavailable");
        if (st.hold) {
          auto rp = self->make_response_promise<append_result>();
          ++st.held_writes;
          st.held.emplace_back([self, w, rp](bool commit) mutable {
            if (commit)
              rp.deliver(self->state.commit(w));
            else
              rp.deliver(make_store_error(store_failure::transient, "rolled back"));
          });
          return rp;
        }
        return st.commit(w);
      },
      [=](checkpoint_atom, stored_message& m, const std::string& node,
          int64_t epoch) -> caf::result<bool> {
        if (self->state.fenced(m.conversation_id, epoch))
          return make_store_error(store_failure::fenced, "fenced");
        if (self->state.down)
          return make_store_error(store_failure::transient, "database unavailable");
        self->state.checkpoints.emplace_back(m, node);
        return true;
      },
      [=](append_reply_atom, stored_message& m, int64_t epoch) -> caf::result<bool> {
        auto& st = self->state;
        ++st.reply_writes;
        if (st.fenced(m.conversation_id, epoch))
          return make_store_error(store_failure::fenced, "fenced");
        if (st.down)
          return make_store_error(store_failure::transient, "database unavailable");
        if (!st.reply_errors.empty()) {
          auto err = st.reply_errors.front();
          st.reply_errors.pop_front();
          return err;
        }
        st.messages.push_back(m);
        return true;
      },
      [=](db_check_atom, const std::string& conv,
          const std::string& id) -> caf::result<write_check> {
        auto& st = self->state;
        ++st.checks;
        if (st.down)
          return make_store_error(store_failure::transient, "database unavailable");
        if (!st.held.empty()) {
          auto rp = self->make_response_promise<write_check>();
          st.held.emplace_back(
              [self, conv, id, rp](bool) mutable { rp.deliver(self->state.check(conv, id)); });
          return rp;
        }
        return st.check(conv, id);
      },
      [=](load_conv_atom, const std::string& id) {
        auto& st = self->state;
        conversation_snapshot s;
        auto i = st.owners.find(id);
        if (i == st.owners.end())
          return s;
        s.found = true;
        s.owner = i->second;
        s.epoch = ++st.epochs[id]; // loading claims it
        for (auto& m : st.messages)
          if (m.conversation_id == id) {
            s.last_seq = std::max(s.last_seq, m.seq);
            s.recent.push_back(m);
          }
        return s;
      },
      [=](history_atom, const std::string& user, const std::string& id, int64_t after,
          int32_t limit) {
        auto& st = self->state;
        ++st.history_requests;
        message_page p;
        auto i = st.owners.find(id);
        if (i == st.owners.end() || i->second != user)
          return p;
        p.found = true;
        std::vector<stored_message> all;
        for (auto& m : st.messages)
          if (m.conversation_id == id && m.seq > after)
            all.push_back(m);
        std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.seq < b.seq; });
        for (auto& m : all)
          if (static_cast<int32_t>(p.messages.size()) < limit)
            p.messages.push_back(m);
        return p;
      },
      [=](list_conv_atom, const std::string&, const std::string&, int32_t) {
        return conversation_page{};
      },
      [=](remove_conv_atom, const std::string&, const std::string&) { return true; },
      [=](find_msg_atom, const std::string& user, const std::string& client_id) {
        auto& st = self->state;
        auto i = st.by_client_id.find(user + "/" + client_id);
        if (i == st.by_client_id.end())
          return append_result{};
        auto r = i->second;
        r.duplicate = true;
        return r;
      },
      [=](db_ping_atom) { return true; },
      [=](release_atom) {
        auto held = std::move(self->state.held);
        self->state.held.clear();
        self->state.held_writes = 0;
        for (auto& f : held)
          f(true);
      },
      [=](drop_atom) {
        auto held = std::move(self->state.held);
        self->state.held.clear();
        self->state.held_writes = 0;
        for (auto& f : held)
          f(false);
      },
  };
}

struct fake_ai_state {
  std::vector<generation_request> requests;
  std::vector<std::string> cancels;
  /// When set, `generate` names this actor as the stream's invoker.
  caf::actor invoker;
};

inline ai_actor::behavior_type fake_ai(ai_actor::stateful_pointer<fake_ai_state> self) {
  return {
      [=](generate_atom, generation_request& r, reply_sink&) {
        self->state.requests.push_back(r);
        if (self->state.invoker)
          return self->state.invoker;
        return caf::actor_cast<caf::actor>(self);
      },
      [=](ai_cancel_atom, const std::string& id) { self->state.cancels.push_back(id); },
  };
}

/// Stands in for a session: records every frame it is sent.
struct recorder_state {
  std::vector<std::string> frames;
  std::vector<int64_t> completed; // seqs of frames written to its link
};

inline session_events::behavior_type
recorder(session_events::stateful_pointer<recorder_state> self) {
  return {
      [=](event_atom, const std::string&, const std::string& frame) {
        self->state.frames.push_back(frame);
      },
      [=](completed_atom, const std::string&, int64_t seq) {
        self->state.completed.push_back(seq);
      },
  };
}

/// Like the DSL's `deref`, which uses CAF's own CHECK macros and so crashes
/// outside CAF's test runner.
template<class T, class Handle>
T& state_of(const Handle& h) {
  auto ptr = caf::actor_cast<caf::abstract_actor*>(h);
  REQUIRE(ptr != nullptr);
  return dynamic_cast<T&>(*ptr);
}

struct test_config : caf::actor_system_config {
  test_config() {
    register_message_types(*this);
  }
};

} // namespace chat::actor_tests
