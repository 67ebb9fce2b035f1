#include "actors/conversation_actor.hpp"

#include <doctest/doctest.h>

#include <caf/test/dsl.hpp>
#include <rapidjson/document.h>

#include "actors/errors.hpp"
#include "actors/type_registry.hpp"

// The conversation actor under CAF's deterministic test coordinator, with
// stand-in persistence and AI actors: every step is driven by hand, no
// sleeps, no threads.

using namespace chat;

namespace {

// -- stand-ins ------------------------------------------------------------------

/// An in-memory store. With `hold` set, user-message writes wait (as an
/// uncommitted transaction would) until `release_atom`.
using release_atom = caf::atom_constant<caf::atom("t_release")>;
using fake_store_actor = persistence_actor::extend<caf::reacts_to<release_atom>>;

struct fake_store_state {
  bool hold = false;
  std::vector<std::pair<user_message_write, caf::response_promise>> held;
  std::vector<user_message_write> user_writes;
  std::vector<stored_message> messages;              // committed, any conversation
  std::map<std::string, append_result> by_client_id; // user + "/" + id
  std::map<std::string, std::string> owners;         // conversation -> user
  std::vector<std::pair<stored_message, std::string>> checkpoints;
  int history_requests = 0;

  append_result commit(const user_message_write& w) {
    auto key = w.message.user_id + "/" + w.message.client_msg_id;
    if (auto i = by_client_id.find(key); i != by_client_id.end()) {
      auto r = i->second;
      r.duplicate = true;
      return r;
    }
    user_writes.push_back(w);
    if (w.create_conversation)
      owners[w.message.conversation_id] = w.message.user_id;
    messages.push_back(w.message);
    append_result r{false, w.message.conversation_id, w.message.id, w.message.seq};
    by_client_id[key] = r;
    return r;
  }
};

fake_store_actor::behavior_type
fake_store(fake_store_actor::stateful_pointer<fake_store_state> self) {
  return {
      [=](append_user_atom, user_message_write& w) -> caf::result<append_result> {
        auto& st = self->state;
        if (st.hold) {
          auto rp = self->make_response_promise();
          st.held.emplace_back(w, rp);
          return caf::delegated<append_result>{};
        }
        return st.commit(w);
      },
      [=](checkpoint_atom, stored_message& m, const std::string& node) {
        self->state.checkpoints.emplace_back(m, node);
        return true;
      },
      [=](append_reply_atom, stored_message& m) {
        self->state.messages.push_back(m);
        return true;
      },
      [=](load_conv_atom, const std::string& id) {
        auto& st = self->state;
        conversation_snapshot s;
        auto i = st.owners.find(id);
        if (i == st.owners.end())
          return s;
        s.found = true;
        s.owner = i->second;
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
        auto& st = self->state;
        for (auto& [w, rp] : st.held)
          rp.deliver(st.commit(w));
        st.held.clear();
      },
  };
}

struct fake_ai_state {
  std::vector<generation_request> requests;
  std::vector<std::string> cancels;
};

ai_actor::behavior_type fake_ai(ai_actor::stateful_pointer<fake_ai_state> self) {
  return {
      [=](generate_atom, generation_request& r, caf::actor&) {
        self->state.requests.push_back(r);
        return caf::actor_cast<caf::actor>(self);
      },
      [=](ai_cancel_atom, const std::string& id) { self->state.cancels.push_back(id); },
  };
}

/// Stands in for a session: records every frame it is sent.
struct recorder_state {
  std::vector<std::string> frames;
};

caf::behavior recorder(caf::stateful_actor<recorder_state>* self) {
  return {
      [=](event_atom, const std::string&, const std::string& frame) {
        self->state.frames.push_back(frame);
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

rapidjson::Document parse(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str());
  REQUIRE_FALSE(d.HasParseError());
  return d;
}

std::string type_of(const std::string& frame) {
  return parse(frame)["type"].GetString();
}

struct fixture : test_coordinator_fixture<test_config> {
  fake_store_actor store;
  ai_actor ai;
  conversation_config cfg;

  fixture() {
    store = sys.spawn(fake_store);
    ai = sys.spawn(fake_ai);
    cfg.store = caf::actor_cast<persistence_actor>(store);
    cfg.ai = ai;
    cfg.idle_timeout = std::chrono::seconds{60};
    consume_messages();
  }

  ~fixture() {
    caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(ai, caf::exit_reason::user_shutdown);
    consume_messages();
  }

  fake_store_state& store_state() {
    return state_of<fake_store_actor::stateful_base<fake_store_state>>(store).state;
  }

  fake_ai_state& ai_state() {
    return state_of<ai_actor::stateful_base<fake_ai_state>>(ai).state;
  }

  std::vector<std::string>& frames(const caf::actor& rec) {
    return state_of<caf::stateful_actor<recorder_state>>(rec).state.frames;
  }

  /// Sends a user message as `user` on behalf of `session`; returns the
  /// answer (an ack) or the error.
  caf::expected<append_result> send(const caf::actor& conv, const std::string& user,
                                    const std::string& client_id, const std::string& content,
                                    const caf::actor& session) {
    auto h = self->request(conv, caf::infinite, send_atom::value, user, client_id, content,
                           std::string{"m1"}, std::string{"openai"}, session);
    consume_messages();
    caf::expected<append_result> result{caf::sec::request_timeout};
    h.receive([&](append_result& r) { result = r; }, [&](caf::error& e) { result = e; });
    return result;
  }

  void chunk(const caf::actor& conv, const std::string& stream, const std::string& delta) {
    caf::anon_send(conv, ai_chunk_atom::value, stream, delta);
    consume_messages();
  }

  void done(const caf::actor& conv, const std::string& stream, const std::string& reason) {
    generation_outcome o;
    o.finish_reason = reason;
    o.error_message = reason == "error" ? "boom" : "";
    caf::anon_send(conv, ai_done_atom::value, stream, o);
    consume_messages();
  }

  bool self_has_message() {
    bool got = false;
    self->receive([&](caf::message&) { got = true; }, caf::after(std::chrono::seconds{0}) >> [] {});
    return got;
  }
};

} // namespace

TEST_CASE_FIXTURE(fixture,
                  "conversation: ack only after the write commits, then the reply streams") {
  auto conv = spawn_new_conversation(sys, "11111111-1111-4111-8111-111111111111", "alice", cfg);
  auto session = sys.spawn(recorder);
  store_state().hold = true;
  auto h = self->request(conv, caf::infinite, send_atom::value, std::string{"alice"},
                         std::string{"c1"}, std::string{"hello"}, std::string{"m1"},
                         std::string{"openai"}, session);
  consume_messages();
  // The write is in flight, not committed: no ack yet, no reply started.
  CHECK(store_state().held.size() == 1);
  CHECK(ai_state().requests.empty());
  CHECK(store_state().held[0].first.create_conversation);
  CHECK(store_state().held[0].first.title == "hello");
  caf::anon_send(store, release_atom::value);
  consume_messages();
  append_result ack;
  h.receive([&](append_result& r) { ack = r; }, [&](caf::error& e) { FAIL(to_string(e)); });
  CHECK(ack.seq == 1);
  CHECK_FALSE(ack.duplicate);
  // The reply started with the message as context.
  REQUIRE(ai_state().requests.size() == 1);
  auto req = ai_state().requests[0];
  CHECK(req.model == "m1");
  REQUIRE(req.messages.size() == 1);
  CHECK(req.messages[0].role == "user");
  CHECK(req.messages[0].content == "hello");
  chunk(conv, req.stream_id, "Hel");
  chunk(conv, req.stream_id, "lo!");
  done(conv, req.stream_id, "stop");
  auto& f = frames(session);
  REQUIRE(f.size() == 3);
  auto c0 = parse(f[0]);
  CHECK(std::string{c0["type"].GetString()} == "chunk");
  CHECK(c0["index"].GetInt() == 0);
  CHECK(c0["seq"].GetInt() == 2);
  CHECK(std::string{c0["replyTo"].GetString()} == ack.message_id);
  CHECK(parse(f[1])["index"].GetInt() == 1);
  auto d = parse(f[2]);
  CHECK(std::string{d["type"].GetString()} == "done");
  CHECK(d["chunks"].GetInt() == 2);
  CHECK(std::string{d["finishReason"].GetString()} == "stop");
  // Both messages stored, the reply whole.
  auto& stored = store_state().messages;
  REQUIRE(stored.size() == 2);
  CHECK(stored[1].role == "assistant");
  CHECK(stored[1].content == "Hello!");
  CHECK(stored[1].seq == 2);
  CHECK(stored[1].reply_to == ack.message_id);
  caf::anon_send_exit(conv, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture,
                  "conversation: a send during a reply is acked at once and answered after it") {
  auto conv = spawn_new_conversation(sys, "22222222-2222-4222-8222-222222222222", "alice", cfg);
  auto session = sys.spawn(recorder);
  auto a1 = send(conv, "alice", "c1", "one", session);
  REQUIRE(a1);
  REQUIRE(ai_state().requests.size() == 1);
  auto first = ai_state().requests[0].stream_id;
  chunk(conv, first, "x");
  auto a2 = send(conv, "alice", "c2", "two", session);
  REQUIRE(a2);
  CHECK(a2->seq == 3);                    // the reply to "one" keeps seq 2
  CHECK(ai_state().requests.size() == 1); // replies never overlap
  done(conv, first, "stop");
  REQUIRE(ai_state().requests.size() == 2);
  auto second = ai_state().requests[1];
  // Context: one, its reply, two.
  REQUIRE(second.messages.size() == 3);
  CHECK(second.messages[1].role == "assistant");
  CHECK(second.messages[1].content == "x");
  CHECK(second.messages[2].content == "two");
  chunk(conv, second.stream_id, "y");
  done(conv, second.stream_id, "stop");
  auto done_frame = parse(frames(session).back());
  CHECK(done_frame["seq"].GetInt() == 4);
  caf::anon_send_exit(conv, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture,
                  "conversation: a repeated clientMsgId answers the original and leaves no gap") {
  auto conv = spawn_new_conversation(sys, "33333333-3333-4333-8333-333333333333", "alice", cfg);
  auto session = sys.spawn(recorder);
  auto a1 = send(conv, "alice", "same", "one", session);
  REQUIRE(a1);
  auto again = send(conv, "alice", "same", "different text", session);
  REQUIRE(again);
  CHECK(again->duplicate);
  CHECK(again->message_id == a1->message_id);
  CHECK(again->seq == 1);
  CHECK(ai_state().requests.size() == 1); // no second reply
  done(conv, ai_state().requests[0].stream_id, "stop");
  auto a3 = send(conv, "alice", "next", "three", session);
  REQUIRE(a3);
  CHECK(a3->seq == 3); // no gap left by the duplicate
  caf::anon_send_exit(conv, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture, "conversation: another user's conversation answers not_found") {
  auto conv = spawn_new_conversation(sys, "44444444-4444-4444-8444-444444444444", "alice", cfg);
  auto session = sys.spawn(recorder);
  auto r = send(conv, "mallory", "c1", "hi", session);
  REQUIRE_FALSE(r);
  CHECK(to_error_frame(r.error()).code == protocol::error_code::not_found);
  auto h = self->request(conv, caf::infinite, subscribe_atom::value, std::string{"mallory"},
                         int64_t{0}, session);
  consume_messages();
  bool refused = false;
  h.receive([&](bool) {}, [&](caf::error&) { refused = true; });
  CHECK(refused);
  CHECK(store_state().user_writes.empty());
  CHECK(frames(session).empty());
  caf::anon_send_exit(conv, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(
    fixture, "conversation: subscribe replays stored messages, then the reply so far, then live") {
  auto conv = spawn_new_conversation(sys, "55555555-5555-4555-8555-555555555555", "alice", cfg);
  auto tab1 = sys.spawn(recorder);
  REQUIRE(send(conv, "alice", "c1", "one", tab1));
  auto s1 = ai_state().requests[0].stream_id;
  chunk(conv, s1, "first reply");
  done(conv, s1, "stop");
  REQUIRE(send(conv, "alice", "c2", "two", tab1));
  auto s2 = ai_state().requests[1].stream_id;
  chunk(conv, s2, "a");
  chunk(conv, s2, "b");
  // A second tab arrives mid-reply.
  auto tab2 = sys.spawn(recorder);
  auto h = self->request(conv, caf::infinite, subscribe_atom::value, std::string{"alice"},
                         int64_t{0}, tab2);
  consume_messages();
  h.receive([](bool) {}, [](caf::error& e) { FAIL(to_string(e)); });
  chunk(conv, s2, "c");
  done(conv, s2, "stop");
  auto& f = frames(tab2);
  std::vector<std::string> types;
  for (auto& x : f)
    types.push_back(type_of(x));
  std::vector<std::string> expected{"message", "message", "message", "chunk",
                                    "chunk",   "chunk",   "done"};
  CHECK(types == expected);
  CHECK(parse(f[0])["seq"].GetInt() == 1);
  CHECK(std::string{parse(f[1])["content"].GetString()} == "first reply");
  CHECK(parse(f[2])["seq"].GetInt() == 3);
  CHECK(parse(f[3])["index"].GetInt() == 0);
  CHECK(parse(f[5])["index"].GetInt() == 2);
  // Subscribing from seq 2 skips what the client has.
  auto tab3 = sys.spawn(recorder);
  self->send(conv, subscribe_atom::value, std::string{"alice"}, int64_t{3}, tab3);
  consume_messages();
  REQUIRE(frames(tab3).size() == 1);
  CHECK(parse(frames(tab3)[0])["seq"].GetInt() == 4);
  caf::anon_send_exit(conv, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(
    fixture,
    "conversation: cancel reaches the AI, the reply ends cancelled, unknown ids not_found") {
  auto conv = spawn_new_conversation(sys, "66666666-6666-4666-8666-666666666666", "alice", cfg);
  auto session = sys.spawn(recorder);
  REQUIRE(send(conv, "alice", "c1", "one", session));
  auto stream = ai_state().requests[0].stream_id;
  chunk(conv, stream, "partial");
  auto h = self->request(conv, caf::infinite, cancel_atom::value, std::string{"alice"}, stream);
  consume_messages();
  h.receive([](bool) {}, [](caf::error& e) { FAIL(to_string(e)); });
  CHECK(ai_state().cancels == std::vector<std::string>{stream});
  done(conv, stream, "cancelled");
  auto d = parse(frames(session).back());
  CHECK(std::string{d["finishReason"].GetString()} == "cancelled");
  CHECK(store_state().messages.back().content == "partial");
  // Cancelling it again does nothing; an unknown id is not_found.
  auto again = self->request(conv, caf::infinite, cancel_atom::value, std::string{"alice"}, stream);
  consume_messages();
  again.receive([](bool) {}, [](caf::error& e) { FAIL(to_string(e)); });
  auto unknown = self->request(conv, caf::infinite, cancel_atom::value, std::string{"alice"},
                               std::string{"nope"});
  consume_messages();
  bool not_found = false;
  unknown.receive([](bool) {},
                  [&](caf::error& e) {
                    not_found = to_error_frame(e).code == protocol::error_code::not_found;
                  });
  CHECK(not_found);
  caf::anon_send_exit(conv, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(
    fixture,
    "conversation: a provider failure sends provider_error, then done error, and is stored") {
  auto conv = spawn_new_conversation(sys, "77777777-7777-4777-8777-777777777777", "alice", cfg);
  auto session = sys.spawn(recorder);
  REQUIRE(send(conv, "alice", "c1", "one", session));
  auto stream = ai_state().requests[0].stream_id;
  chunk(conv, stream, "half");
  done(conv, stream, "error");
  auto& f = frames(session);
  REQUIRE(f.size() == 3);
  auto e = parse(f[1]);
  CHECK(std::string{e["type"].GetString()} == "error");
  CHECK(std::string{e["code"].GetString()} == "provider_error");
  CHECK(std::string{parse(f[2])["finishReason"].GetString()} == "error");
  CHECK(store_state().messages.back().finish_reason == "error");
  CHECK(store_state().messages.back().content == "half");
  caf::anon_send_exit(conv, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(
    fixture, "conversation: an existing conversation loads its owner and seq before answering") {
  {
    auto conv = spawn_new_conversation(sys, "88888888-8888-4888-8888-888888888888", "alice", cfg);
    auto session = sys.spawn(recorder);
    REQUIRE(send(conv, "alice", "c1", "one", session));
    chunk(conv, ai_state().requests[0].stream_id, "reply one");
    done(conv, ai_state().requests[0].stream_id, "stop");
    caf::anon_send_exit(conv, caf::exit_reason::user_shutdown);
    consume_messages();
  }
  auto conv = spawn_conversation(sys, "88888888-8888-4888-8888-888888888888", cfg);
  auto session = sys.spawn(recorder);
  auto r = send(conv, "alice", "c2", "two", session);
  REQUIRE(r);
  CHECK(r->seq == 3);
  REQUIRE(ai_state().requests.size() == 2);
  CHECK(ai_state().requests[1].messages.size() == 3); // history as context
  caf::anon_send_exit(conv, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture, "conversation: stops by itself when idle") {
  auto conv = spawn_new_conversation(sys, "99999999-9999-4999-8999-999999999999", "alice", cfg);
  self->monitor(conv);
  consume_messages();
  sched.clock().advance_time(std::chrono::seconds{61});
  consume_messages();
  bool down = false;
  self->receive([&](caf::down_msg&) { down = true; }, caf::after(std::chrono::seconds{0}) >> [] {});
  CHECK(down);
}

TEST_CASE_FIXTURE(
    fixture, "conversation: the reply in progress is checkpointed at start and then periodically") {
  cfg.node_id = "node-a";
  cfg.checkpoint_interval = std::chrono::seconds{1};
  auto conv = spawn_new_conversation(sys, "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa", "alice", cfg);
  auto session = sys.spawn(recorder);
  REQUIRE(send(conv, "alice", "c1", "one", session));
  auto stream = ai_state().requests[0].stream_id;
  // At start: the row exists (its seq is durable), empty, marked with the node.
  REQUIRE(store_state().checkpoints.size() == 1);
  CHECK(store_state().checkpoints[0].first.id == stream);
  CHECK(store_state().checkpoints[0].first.seq == 2);
  CHECK(store_state().checkpoints[0].first.finish_reason.empty());
  CHECK(store_state().checkpoints[0].second == "node-a");
  chunk(conv, stream, "so ");
  chunk(conv, stream, "far");
  sched.clock().advance_time(std::chrono::seconds{1});
  consume_messages();
  REQUIRE(store_state().checkpoints.size() == 2);
  CHECK(store_state().checkpoints[1].first.content == "so far");
  // Nothing new: no write.
  sched.clock().advance_time(std::chrono::seconds{1});
  consume_messages();
  CHECK(store_state().checkpoints.size() == 2);
  done(conv, stream, "stop");
  CHECK(store_state().messages.back().content == "so far");
  caf::anon_send_exit(conv, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture,
                  "conversation: drain ends the reply in progress as interrupted, keeping it") {
  auto conv = spawn_new_conversation(sys, "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb", "alice", cfg);
  auto session = sys.spawn(recorder);
  REQUIRE(send(conv, "alice", "c1", "one", session));
  auto stream = ai_state().requests[0].stream_id;
  chunk(conv, stream, "half");
  caf::anon_send(conv, drain_atom::value);
  consume_messages();
  CHECK(ai_state().cancels == std::vector<std::string>{stream}); // provider stopped
  auto d = parse(frames(session).back());
  CHECK(std::string{d["type"].GetString()} == "done");
  CHECK(std::string{d["finishReason"].GetString()} == "interrupted");
  CHECK(store_state().messages.back().finish_reason == "interrupted");
  CHECK(store_state().messages.back().content == "half");
  // A late "cancelled" from the provider changes nothing.
  done(conv, stream, "cancelled");
  CHECK(frames(session).size() == 2);
  caf::anon_send_exit(conv, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(
    fixture,
    "conversation: a repeated send from another connection gets the reply so far, then live") {
  auto conv = spawn_new_conversation(sys, "cccccccc-cccc-4ccc-8ccc-cccccccccccc", "alice", cfg);
  auto tab1 = sys.spawn(recorder);
  auto a1 = send(conv, "alice", "c1", "one", tab1);
  REQUIRE(a1);
  auto stream = ai_state().requests[0].stream_id;
  chunk(conv, stream, "a");
  chunk(conv, stream, "b");
  auto tab2 = sys.spawn(recorder); // e.g. after a reconnect
  auto again = send(conv, "alice", "c1", "one", tab2);
  REQUIRE(again);
  CHECK(again->duplicate);
  CHECK(again->message_id == a1->message_id);
  chunk(conv, stream, "c");
  done(conv, stream, "stop");
  std::vector<std::string> types;
  std::vector<int> indexes;
  for (auto& f : frames(tab2)) {
    auto d = parse(f);
    types.push_back(d["type"].GetString());
    if (types.back() == "chunk")
      indexes.push_back(d["index"].GetInt());
  }
  CHECK(types == std::vector<std::string>{"chunk", "chunk", "chunk", "done"});
  CHECK(indexes == std::vector<int>{0, 1, 2});
  CHECK(ai_state().requests.size() == 1);
  caf::anon_send_exit(conv, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(
    fixture,
    "conversation: subscribing mid-reply gets the reply's chunks even after later user messages") {
  auto conv = spawn_new_conversation(sys, "dddddddd-dddd-4ddd-8ddd-dddddddddddd", "alice", cfg);
  auto tab1 = sys.spawn(recorder);
  REQUIRE(send(conv, "alice", "c1", "one", tab1));
  auto stream = ai_state().requests[0].stream_id;
  chunk(conv, stream, "x");
  REQUIRE(send(conv, "alice", "c2", "two", tab1)); // seq 3, while reply 2 runs
  auto tab2 = sys.spawn(recorder);
  self->send(conv, subscribe_atom::value, std::string{"alice"}, int64_t{0}, tab2);
  consume_messages();
  std::vector<std::string> types;
  for (auto& f : frames(tab2))
    types.push_back(type_of(f));
  CHECK(types == std::vector<std::string>{"message", "message", "chunk"});
  caf::anon_send_exit(conv, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture,
                  "conversation: a long history is replayed page by page, in order, completely") {
  cfg.replay_page = 100;
  std::string id = "eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee";
  auto& st = store_state();
  st.owners[id] = "alice";
  for (int64_t seq = 1; seq <= 250; ++seq) {
    stored_message m;
    m.id = "m-" + std::to_string(seq);
    m.conversation_id = id;
    m.seq = seq;
    m.role = seq % 2 == 1 ? "user" : "assistant";
    m.content = "message " + std::to_string(seq);
    m.user_id = "alice";
    m.finish_reason = m.role == "assistant" ? "stop" : "";
    st.messages.push_back(m);
  }
  auto conv = spawn_conversation(sys, id, cfg);
  auto tab = sys.spawn(recorder);
  self->send(conv, subscribe_atom::value, std::string{"alice"}, int64_t{0}, tab);
  consume_messages();
  auto& f = frames(tab);
  REQUIRE(f.size() == 250);
  for (size_t i = 0; i < f.size(); ++i)
    CHECK(parse(f[i])["seq"].GetInt64() == static_cast<int64_t>(i + 1));
  // Three pages (100, 100, 50), never the whole history at once.
  CHECK(store_state().history_requests == 3);
  caf::anon_send_exit(conv, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture,
                  "conversation: a user message left without a reply (crash) is answered on load") {
  auto models = std::make_shared<model_catalog>();
  std::string err;
  REQUIRE(model_catalog::parse("m1,claude=anthropic", *models, err));
  cfg.models = models;
  std::string id = "ffffffff-ffff-4fff-8fff-ffffffffffff";
  auto& st = store_state();
  st.owners[id] = "alice";
  auto add = [&](int64_t seq, std::string role, std::string content, std::string model) {
    stored_message m;
    m.id = "m-" + std::to_string(seq);
    m.conversation_id = id;
    m.seq = seq;
    m.role = std::move(role);
    m.content = std::move(content);
    m.user_id = "alice";
    m.model = std::move(model);
    m.finish_reason = m.role == "assistant" ? "interrupted" : "";
    st.messages.push_back(m);
  };
  add(1, "user", "one", "m1");
  add(2, "assistant", "half a rep", "m1");
  add(3, "user", "two", "claude"); // acked; its reply (seq 4) never started
  auto conv = spawn_conversation(sys, id, cfg);
  auto session = sys.spawn(recorder);
  auto r = send(conv, "alice", "c9", "three", session);
  REQUIRE(r);
  CHECK(r->seq == 5); // seq 4 stays the answer to "two"
  REQUIRE(ai_state().requests.size() == 1);
  auto req = ai_state().requests[0];
  CHECK(req.model == "claude");
  CHECK(req.provider == "anthropic");
  REQUIRE(req.messages.size() == 3);
  CHECK(req.messages[2].content == "two");
  chunk(conv, req.stream_id, "answer");
  done(conv, req.stream_id, "stop");
  CHECK(store_state().messages.back().seq == 4);
  CHECK(store_state().messages.back().reply_to == "m-3");
  REQUIRE(ai_state().requests.size() == 2); // then the reply to "three"
  CHECK(ai_state().requests[1].model == "m1");
  caf::anon_send_exit(conv, caf::exit_reason::user_shutdown);
}
