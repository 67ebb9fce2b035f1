#include "actors/conversation_actor.hpp"

#include <doctest/doctest.h>

#include <deque>
#include <functional>

#include <caf/test/dsl.hpp>
#include <rapidjson/document.h>

#include "actors/errors.hpp"
#include "actors/local_links.hpp"
#include "actors/type_registry.hpp"
#include "tests/actors/stand_ins.hpp"

// The conversation actor under CAF's deterministic test coordinator, with
// stand-in persistence and AI actors: every step is driven by hand, no
// sleeps, no threads.

using namespace chat;
using namespace chat::actor_tests;

namespace {

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

  std::vector<std::string>& frames(const session_events& rec) {
    return state_of<session_events::stateful_base<recorder_state>>(rec).state.frames;
  }

  /// Sends a user message as `user` on behalf of `session`; returns the
  /// answer (an ack) or the error.
  caf::expected<append_result> send(const conversation_actor& conv, const std::string& user,
                                    const std::string& client_id, const std::string& content,
                                    const session_events& session) {
    auto h = self->request(conv, caf::infinite, send_atom::value, user, client_id, content,
                           std::string{"m1"}, std::string{"openai"}, session);
    consume_messages();
    caf::expected<append_result> result{caf::sec::request_timeout};
    h.receive([&](append_result& r) { result = r; }, [&](caf::error& e) { result = e; });
    return result;
  }

  void chunk(const conversation_actor& conv, const std::string& stream, const std::string& delta) {
    caf::anon_send(conv, ai_chunk_atom::value, stream, delta);
    consume_messages();
  }

  void done(const conversation_actor& conv, const std::string& stream, const std::string& reason) {
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

TEST_CASE_FIXTURE(fixture, "conversation: ack only after the write commits, the reply starts "
                           "meanwhile and nothing of it goes out before the ack") {
  auto conv = spawn_new_conversation(sys, "11111111-1111-4111-8111-111111111111", "alice", cfg);
  auto session = sys.spawn(recorder);
  store_state().hold = true;
  auto h = self->request(conv, caf::infinite, send_atom::value, std::string{"alice"},
                         std::string{"c1"}, std::string{"hello"}, std::string{"m1"},
                         std::string{"openai"}, session);
  consume_messages();
  // The write is in flight, not committed: no ack yet. The reply has
  // started (its time to first token overlaps the commit), with the
  // message as context.
  CHECK(store_state().held_writes == 1);
  CHECK(store_state().requested[0].create_conversation);
  CHECK(store_state().requested[0].title == "hello");
  REQUIRE(ai_state().requests.size() == 1);
  auto req = ai_state().requests[0];
  CHECK(req.model == "m1");
  REQUIRE(req.messages.size() == 1);
  CHECK(req.messages[0].role == "user");
  CHECK(req.messages[0].content == "hello");
  // Its first token comes before the commit: kept, not sent, not stored.
  chunk(conv, req.stream_id, "Hel");
  CHECK(frames(session).empty());
  CHECK(store_state().checkpoints.empty());
  caf::anon_send(store, release_atom::value);
  consume_messages();
  append_result ack;
  h.receive([&](append_result& r) { ack = r; }, [&](caf::error& e) { FAIL(to_string(e)); });
  CHECK(ack.seq == 1);
  CHECK_FALSE(ack.duplicate);
  CHECK(frames(session).size() == 1);     // the kept chunk, after the ack
  CHECK(ai_state().requests.size() == 1); // no second reply
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
  cfg.process_id = "0a0a0a0a-0000-4000-8000-00000000000a";
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
  CHECK(store_state().checkpoints[0].second == cfg.process_id);
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

// -- faults: the database decides ------------------------------------------------

namespace {

/// The frames' types, in order.
std::vector<std::string> types_of(const std::vector<std::string>& frames) {
  std::vector<std::string> out;
  for (auto& f : frames)
    out.push_back(type_of(f));
  return out;
}

} // namespace

TEST_CASE_FIXTURE(fixture, "conversation: a write that timed out but committed later is "
                           "answered, and its seq is never reused") {
  cfg.store_timeout = std::chrono::seconds{2};
  auto conv = spawn_new_conversation(sys, "d1d1d1d1-d1d1-4d1d-8d1d-d1d1d1d1d1d1", "alice", cfg);
  auto session = sys.spawn(recorder);
  store_state().hold = true;
  auto h = self->request(conv, caf::infinite, send_atom::value, std::string{"alice"},
                         std::string{"c1"}, std::string{"one"}, std::string{"m1"},
                         std::string{"openai"}, session);
  consume_messages();
  REQUIRE(store_state().held_writes == 1);
  sched.clock().advance_time(std::chrono::seconds{2});
  consume_messages();
  // The client is told to retry: the outcome is unknown, not failed.
  caf::error err;
  h.receive([&](append_result&) { FAIL("acked without a commit"); },
            [&](caf::error& e) { err = e; });
  CHECK(to_error_frame(err).code == protocol::error_code::unavailable);
  // Before any other seq is used the database is asked, behind the write.
  CHECK(store_state().checks == 1);
  // The reply started with the write was dropped unseen when its outcome
  // became unknown (and its provider stream cancelled).
  REQUIRE(ai_state().requests.size() == 1);
  CHECK(ai_state().cancels == std::vector<std::string>{ai_state().requests[0].stream_id});
  // The write commits after all; the check behind it finds it.
  store_state().hold = false;
  caf::anon_send(store, release_atom::value);
  consume_messages();
  REQUIRE(ai_state().requests.size() == 2); // so it gets its reply
  CHECK(ai_state().requests[1].messages.back().content == "one");
  // The client's retry with the same clientMsgId gets the original ack.
  auto again = send(conv, "alice", "c1", "one", session);
  REQUIRE(again);
  CHECK(again->duplicate);
  CHECK(again->seq == 1);
  // The next message takes seq 3: 1 and 2 are the late message and its reply.
  auto a2 = send(conv, "alice", "c2", "two", session);
  REQUIRE(a2);
  CHECK(a2->seq == 3);
  done(conv, ai_state().requests[1].stream_id, "stop");
  REQUIRE(ai_state().requests.size() == 3);
  chunk(conv, ai_state().requests[2].stream_id, "ok");
  done(conv, ai_state().requests[2].stream_id, "stop");
  std::vector<int64_t> seqs;
  for (auto& m : store_state().messages)
    seqs.push_back(m.seq);
  std::sort(seqs.begin(), seqs.end());
  CHECK(seqs == std::vector<int64_t>{1, 2, 3, 4});
  caf::anon_send_exit(conv, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture, "conversation: a write that timed out and never committed leaves no "
                           "gap: the next message takes its seq") {
  cfg.store_timeout = std::chrono::seconds{2};
  auto conv = spawn_new_conversation(sys, "d2d2d2d2-d2d2-4d2d-8d2d-d2d2d2d2d2d2", "alice", cfg);
  auto session = sys.spawn(recorder);
  store_state().hold = true;
  auto h = self->request(conv, caf::infinite, send_atom::value, std::string{"alice"},
                         std::string{"c1"}, std::string{"one"}, std::string{"m1"},
                         std::string{"openai"}, session);
  consume_messages();
  sched.clock().advance_time(std::chrono::seconds{2});
  consume_messages();
  h.receive([&](append_result&) { FAIL("acked without a commit"); }, [&](caf::error&) {});
  // Rolled back (a statement timeout, say); the check says so.
  caf::anon_send(store, drop_atom::value);
  consume_messages();
  store_state().hold = false;
  // The reply started with the write was dropped unseen.
  CHECK(ai_state().requests.size() == 1);
  CHECK(ai_state().cancels.size() == 1);
  auto a2 = send(conv, "alice", "c2", "two", session);
  REQUIRE(a2);
  CHECK(a2->seq == 1);
  // The retry of c1 is a new message now.
  auto a1 = send(conv, "alice", "c1", "one", session);
  REQUIRE(a1);
  CHECK_FALSE(a1->duplicate);
  CHECK(a1->seq == 3);
  caf::anon_send_exit(conv, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture, "conversation: while the seq is being checked, sends wait in a "
                           "bounded queue and are answered, never stuck") {
  cfg.store_timeout = std::chrono::seconds{2};
  cfg.max_queued_sends = 3;
  auto conv = spawn_new_conversation(sys, "d3d3d3d3-d3d3-4d3d-8d3d-d3d3d3d3d3d3", "alice", cfg);
  auto session = sys.spawn(recorder);
  store_state().hold = true; // the database is stuck
  std::vector<caf::response_handle<caf::event_based_actor, caf::message, true>> handles;
  auto request = [&](const std::string& id) {
    return self->request(conv, caf::infinite, send_atom::value, std::string{"alice"}, id,
                         std::string{"text"}, std::string{"m1"}, std::string{"openai"}, session);
  };
  auto h1 = request("q1");
  auto h2 = request("q2");
  auto h3 = request("q3");
  auto h4 = request("q4"); // past the queue's bound
  consume_messages();
  int refused = 0;
  h4.receive([&](append_result&) { FAIL("acked"); },
             [&](caf::error& e) {
               refused += to_error_frame(e).code == protocol::error_code::unavailable;
             });
  CHECK(refused == 1);
  // The store never answers: every send is answered unavailable in time.
  for (int i = 0; i < 4; ++i) {
    sched.clock().advance_time(std::chrono::seconds{1});
    consume_messages();
  }
  for (auto* h : {&h1, &h2, &h3})
    h->receive([&](append_result&) { FAIL("acked"); },
               [&](caf::error& e) {
                 refused += to_error_frame(e).code == protocol::error_code::unavailable;
               });
  CHECK(refused == 4);
  CHECK(store_state().held_writes == 1); // only the first was ever written
  // The database comes back: the conversation goes on.
  store_state().hold = false;
  caf::anon_send(store, drop_atom::value);
  consume_messages();
  sched.clock().advance_time(std::chrono::seconds{5});
  consume_messages();
  auto ok = send(conv, "alice", "q5", "text", session);
  REQUIRE(ok);
  CHECK(ok->seq == 1);
  caf::anon_send_exit(conv, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture, "conversation: once the database is back, a send is written at "
                           "once, not after the seq check's backoff") {
  cfg.store_timeout = std::chrono::seconds{2};
  auto conv = spawn_new_conversation(sys, "d9d9d9d9-d9d9-4d9d-8d9d-d9d9d9d9d9d9", "alice", cfg);
  auto session = sys.spawn(recorder);
  auto first = send(conv, "alice", "c1", "one", session);
  REQUIRE(first);
  done(conv, ai_state().requests[0].stream_id, "stop");
  // The database goes away: the write fails, the seq becomes unknown and
  // its checks fail too, backing off to retry_max_delay.
  store_state().down = true;
  auto lost = send(conv, "alice", "c2", "two", session);
  REQUIRE_FALSE(lost);
  CHECK(to_error_frame(lost.error()).code == protocol::error_code::unavailable);
  for (auto wait = cfg.retry_delay; wait < cfg.retry_max_delay; wait *= 2) {
    sched.clock().advance_time(wait);
    consume_messages();
  }
  auto checks = store_state().checks;
  CHECK(checks >= 5);
  // It is back. The next check is seconds away; a send asks at once.
  store_state().down = false;
  auto h = self->request(conv, caf::infinite, send_atom::value, std::string{"alice"},
                         std::string{"c3"}, std::string{"three"}, std::string{"m1"},
                         std::string{"openai"}, session);
  consume_messages();
  CHECK(store_state().checks == checks + 1);
  REQUIRE(store_state().user_writes.size() == 2); // written, without the clock moving
  h.receive([&](append_result& r) { CHECK(r.seq == 3); },
            [&](caf::error& e) { FAIL("refused: " << to_string(e)); });
  // The timer the send cut short does nothing when it fires.
  sched.clock().advance_time(cfg.retry_max_delay);
  consume_messages();
  CHECK(store_state().checks == checks + 1);
  caf::anon_send_exit(conv, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture, "conversation: while sends wait, a failed seq check is retried at the "
                           "base delay, so they are written soon after the database is back") {
  cfg.store_timeout = std::chrono::seconds{10}; // longer than any backoff
  auto conv = spawn_new_conversation(sys, "dbdbdbdb-dbdb-4dbd-8dbd-dbdbdbdbdbdb", "alice", cfg);
  auto session = sys.spawn(recorder);
  REQUIRE(send(conv, "alice", "c1", "one", session));
  done(conv, ai_state().requests[0].stream_id, "stop");
  store_state().down = true;
  REQUIRE_FALSE(send(conv, "alice", "c2", "two", session));
  // Nobody waits: the checks back off to retry_max_delay.
  for (auto wait = cfg.retry_delay; wait < cfg.retry_max_delay; wait *= 2) {
    sched.clock().advance_time(wait);
    consume_messages();
  }
  // A send waits (its check fails at once); the database comes back.
  auto h = self->request(conv, caf::infinite, send_atom::value, std::string{"alice"},
                         std::string{"c3"}, std::string{"three"}, std::string{"m1"},
                         std::string{"openai"}, session);
  consume_messages();
  auto checks = store_state().checks;
  store_state().down = false;
  sched.clock().advance_time(cfg.retry_delay);
  consume_messages();
  CHECK(store_state().checks == checks + 1);
  REQUIRE(store_state().user_writes.size() == 2);
  h.receive([&](append_result& r) { CHECK(r.seq == 3); },
            [&](caf::error& e) { FAIL("refused: " << to_string(e)); });
  caf::anon_send_exit(conv, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture, "conversation: a reply whose done went out while the database was "
                           "away keeps its seq: the next message after a seq check takes the "
                           "one after it") {
  cfg.store_timeout = std::chrono::seconds{2};
  cfg.reply_store_attempts = 1;
  auto conv = spawn_new_conversation(sys, "dadadada-dada-4dad-8dad-dadadadadada", "alice", cfg);
  auto session = sys.spawn(recorder);
  REQUIRE(send(conv, "alice", "c1", "one", session));
  // The database goes right after the message committed: the reply's
  // checkpoint and its final write fail, its done goes out unstored.
  store_state().down = true;
  auto stream = ai_state().requests[0].stream_id;
  chunk(conv, stream, "x");
  done(conv, stream, "stop");
  CHECK(types_of(frames(session)) == std::vector<std::string>{"chunk", "done"});
  CHECK(parse(frames(session).back())["seq"].GetInt() == 2);
  REQUIRE_FALSE(send(conv, "alice", "c2", "two", session)); // unavailable; seq unknown
  // Back. The database holds seq 1 only; seq 2 is the reply's all the same.
  store_state().down = false;
  auto three = send(conv, "alice", "c3", "three", session);
  REQUIRE(three);
  CHECK(three->seq == 3);
  // The reply went to the writer as soon as the check succeeded, ahead of
  // the new message, not after its backoff: no gap at seq 2, even for a
  // moment (no time passed here).
  std::vector<int64_t> seqs;
  for (auto& m : store_state().messages)
    seqs.push_back(m.seq);
  CHECK(seqs == std::vector<int64_t>{1, 2, 3});
  caf::anon_send_exit(conv, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture, "conversation: a reply write that can never succeed ends the reply "
                           "anyway and the next one starts") {
  auto conv = spawn_new_conversation(sys, "d4d4d4d4-d4d4-4d4d-8d4d-d4d4d4d4d4d4", "alice", cfg);
  auto session = sys.spawn(recorder);
  REQUIRE(send(conv, "alice", "c1", "one", session));
  REQUIRE(send(conv, "alice", "c2", "two", session)); // queued behind the reply
  auto first = ai_state().requests[0].stream_id;
  chunk(conv, first, "x");
  store_state().reply_errors.push_back(
      make_store_error(store_failure::permanent, "invalid byte sequence"));
  done(conv, first, "stop");
  CHECK(store_state().reply_writes == 1); // not retried
  auto f = frames(session);
  CHECK(types_of(f) == std::vector<std::string>{"chunk", "done"});
  REQUIRE(ai_state().requests.size() == 2); // the conversation moved on
  chunk(conv, ai_state().requests[1].stream_id, "y");
  done(conv, ai_state().requests[1].stream_id, "stop");
  CHECK(parse(frames(session).back())["seq"].GetInt() == 4);
  caf::anon_send_exit(conv, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture, "conversation: a transient reply write failure is retried with "
                           "backoff, done goes out once it is stored") {
  auto conv = spawn_new_conversation(sys, "d5d5d5d5-d5d5-4d5d-8d5d-d5d5d5d5d5d5", "alice", cfg);
  auto session = sys.spawn(recorder);
  REQUIRE(send(conv, "alice", "c1", "one", session));
  auto stream = ai_state().requests[0].stream_id;
  chunk(conv, stream, "x");
  store_state().reply_errors.push_back(make_store_error(store_failure::transient, "timeout"));
  store_state().reply_errors.push_back(make_store_error(store_failure::unknown, "lost"));
  done(conv, stream, "stop");
  CHECK(store_state().reply_writes == 1);
  CHECK(types_of(frames(session)) == std::vector<std::string>{"chunk"}); // no done yet
  sched.clock().advance_time(cfg.retry_delay);
  consume_messages();
  CHECK(store_state().reply_writes == 2);
  sched.clock().advance_time(cfg.retry_delay * 2);
  consume_messages();
  CHECK(store_state().reply_writes == 3);
  CHECK(types_of(frames(session)) == std::vector<std::string>{"chunk", "done"});
  CHECK(store_state().messages.back().content == "x");
  caf::anon_send_exit(conv, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture, "conversation: with the database away, a reply ends on the wire after "
                           "a bounded number of attempts and is stored later") {
  cfg.reply_store_attempts = 2;
  auto conv = spawn_new_conversation(sys, "d6d6d6d6-d6d6-4d6d-8d6d-d6d6d6d6d6d6", "alice", cfg);
  auto session = sys.spawn(recorder);
  REQUIRE(send(conv, "alice", "c1", "one", session));
  REQUIRE(send(conv, "alice", "c2", "two", session));
  auto stream = ai_state().requests[0].stream_id;
  chunk(conv, stream, "x");
  for (int i = 0; i < 4; ++i)
    store_state().reply_errors.push_back(make_store_error(store_failure::transient, "down"));
  done(conv, stream, "stop");
  sched.clock().advance_time(cfg.retry_delay);
  consume_messages();
  // Two attempts failed: the reply ended for its readers, the next started.
  CHECK(types_of(frames(session)) == std::vector<std::string>{"chunk", "done"});
  REQUIRE(ai_state().requests.size() == 2);
  // The write goes on in the background until the database takes it.
  for (int i = 0; i < 6; ++i) {
    sched.clock().advance_time(cfg.retry_max_delay);
    consume_messages();
  }
  CHECK(store_state().reply_writes == 5);
  bool stored = false;
  for (auto& m : store_state().messages)
    stored = stored || (m.id == stream && m.content == "x");
  CHECK(stored);
  caf::anon_send_exit(conv, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture, "conversation: an AI invoker that dies mid-reply ends the reply with "
                           "error, keeping what streamed, the next reply is served") {
  auto conv = spawn_new_conversation(sys, "d7d7d7d7-d7d7-4d7d-8d7d-d7d7d7d7d7d7", "alice", cfg);
  auto session = sys.spawn(recorder);
  auto invoker = sys.spawn(recorder); // any actor stands in for the invoker
  ai_state().invoker = caf::actor_cast<caf::actor>(invoker);
  REQUIRE(send(conv, "alice", "c1", "one", session));
  auto stream = ai_state().requests[0].stream_id;
  chunk(conv, stream, "half");
  caf::anon_send_exit(invoker, caf::exit_reason::kill);
  consume_messages();
  auto f = frames(session);
  CHECK(types_of(f) == std::vector<std::string>{"chunk", "error", "done"});
  CHECK(std::string{parse(f[1])["code"].GetString()} == "provider_error");
  CHECK(std::string{parse(f[2])["finishReason"].GetString()} == "error");
  CHECK(store_state().messages.back().finish_reason == "error");
  CHECK(store_state().messages.back().content == "half");
  ai_state().invoker = caf::actor{};
  REQUIRE(send(conv, "alice", "c2", "two", session));
  REQUIRE(ai_state().requests.size() == 2);
  chunk(conv, ai_state().requests[1].stream_id, "fine");
  done(conv, ai_state().requests[1].stream_id, "stop");
  CHECK(std::string{parse(frames(session).back())["finishReason"].GetString()} == "stop");
  caf::anon_send_exit(conv, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture, "conversation: after the drain timeout no queued reply starts") {
  auto conv = spawn_new_conversation(sys, "d8d8d8d8-d8d8-4d8d-8d8d-d8d8d8d8d8d8", "alice", cfg);
  auto session = sys.spawn(recorder);
  REQUIRE(send(conv, "alice", "c1", "one", session));
  REQUIRE(send(conv, "alice", "c2", "two", session));
  caf::anon_send(conv, drain_atom::value);
  consume_messages();
  CHECK(store_state().messages.back().finish_reason == "interrupted");
  CHECK(ai_state().requests.size() == 1); // "two" stays unanswered for the next owner
  caf::anon_send_exit(conv, caf::exit_reason::user_shutdown);
}

// -- fencing and hand-over ------------------------------------------------------

TEST_CASE_FIXTURE(fixture, "conversation: a write refused by the fence hands over at once: the "
                           "reply ends interrupted, the send is answered moved, the actor stops") {
  auto conv = spawn_new_conversation(sys, "e1e1e1e1-e1e1-4e1e-8e1e-e1e1e1e1e1e1", "alice", cfg);
  auto session = sys.spawn(recorder);
  self->monitor(conv);
  REQUIRE(send(conv, "alice", "c1", "one", session)); // written under epoch 1
  auto stream = ai_state().requests[0].stream_id;
  chunk(conv, stream, "x");
  // Another node claims the conversation (its load bumps the epoch).
  store_state().epochs["e1e1e1e1-e1e1-4e1e-8e1e-e1e1e1e1e1e1"] = 2;
  auto refused = send(conv, "alice", "c2", "two", session);
  REQUIRE_FALSE(refused);
  CHECK(is_conversation_moved(refused.error()));
  CHECK(types_of(frames(session)) == std::vector<std::string>{"chunk", "done"});
  CHECK(std::string{parse(frames(session).back())["finishReason"].GetString()} == "interrupted");
  CHECK(ai_state().cancels == std::vector<std::string>{stream}); // the provider is stopped
  // Nothing of the reply or of "two" was written under the old epoch.
  CHECK(store_state().user_writes.size() == 1);
  CHECK(store_state().reply_writes == 0);
  bool stopped_moved = false;
  self->receive([&](caf::down_msg& dm) { stopped_moved = is_conversation_moved(dm.reason); },
                caf::after(std::chrono::seconds{0}) >> [] {});
  CHECK(stopped_moved);
}

TEST_CASE_FIXTURE(fixture, "conversation: a fenced checkpoint hands over too") {
  auto conv = spawn_new_conversation(sys, "e2e2e2e2-e2e2-4e2e-8e2e-e2e2e2e2e2e2", "alice", cfg);
  auto session = sys.spawn(recorder);
  self->monitor(conv);
  REQUIRE(send(conv, "alice", "c1", "one", session));
  auto stream = ai_state().requests[0].stream_id;
  chunk(conv, stream, "x");
  store_state().epochs["e2e2e2e2-e2e2-4e2e-8e2e-e2e2e2e2e2e2"] = 7;
  sched.clock().advance_time(cfg.checkpoint_interval);
  consume_messages();
  CHECK(types_of(frames(session)) == std::vector<std::string>{"chunk", "done"});
  bool stopped_moved = false;
  self->receive([&](caf::down_msg& dm) { stopped_moved = is_conversation_moved(dm.reason); },
                caf::after(std::chrono::seconds{0}) >> [] {});
  CHECK(stopped_moved);
}

TEST_CASE_FIXTURE(fixture, "conversation: told to hand over, it finishes the reply in progress, "
                           "answers new sends moved, leaves queued replies to the new owner, "
                           "then stops") {
  auto conv = spawn_new_conversation(sys, "e3e3e3e3-e3e3-4e3e-8e3e-e3e3e3e3e3e3", "alice", cfg);
  auto session = sys.spawn(recorder);
  self->monitor(conv);
  REQUIRE(send(conv, "alice", "c1", "one", session));
  REQUIRE(send(conv, "alice", "c2", "two", session)); // its reply waits
  auto stream = ai_state().requests[0].stream_id;
  caf::anon_send(conv, handover_atom::value);
  consume_messages();
  CHECK(ai_state().cancels.empty()); // the reply goes on
  auto refused = send(conv, "alice", "c3", "three", session);
  REQUIRE_FALSE(refused);
  CHECK(is_conversation_moved(refused.error()));
  CHECK_FALSE(self_has_message()); // still serving its reply
  chunk(conv, stream, "x");
  done(conv, stream, "stop");
  CHECK(std::string{parse(frames(session).back())["finishReason"].GetString()} == "stop");
  CHECK(store_state().messages.back().content == "x"); // stored under its epoch
  CHECK(ai_state().requests.size() == 1);              // "two" is answered by the new owner
  bool stopped_moved = false;
  self->receive([&](caf::down_msg& dm) { stopped_moved = is_conversation_moved(dm.reason); },
                caf::after(std::chrono::seconds{0}) >> [] {});
  CHECK(stopped_moved);
}

TEST_CASE_FIXTURE(fixture, "conversation: loading claims it, and the writes carry the new epoch") {
  store_state().owners["e4e4e4e4-e4e4-4e4e-8e4e-e4e4e4e4e4e4"] = "alice";
  store_state().epochs["e4e4e4e4-e4e4-4e4e-8e4e-e4e4e4e4e4e4"] = 4;
  auto conv = spawn_conversation(sys, "e4e4e4e4-e4e4-4e4e-8e4e-e4e4e4e4e4e4", cfg);
  auto session = sys.spawn(recorder);
  consume_messages();
  REQUIRE(send(conv, "alice", "c1", "one", session));
  CHECK(store_state().epochs["e4e4e4e4-e4e4-4e4e-8e4e-e4e4e4e4e4e4"] == 5);
  CHECK(store_state().user_writes.back().epoch == 5);
  caf::anon_send_exit(conv, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture, "conversation: a reply that ends before its message commits waits for "
                           "the ack, then goes out whole and is stored after the message") {
  auto conv = spawn_new_conversation(sys, "e5e5e5e5-e5e5-4e5e-8e5e-e5e5e5e5e5e5", "alice", cfg);
  auto session = sys.spawn(recorder);
  store_state().hold = true;
  auto h = self->request(conv, caf::infinite, send_atom::value, std::string{"alice"},
                         std::string{"c1"}, std::string{"quick"}, std::string{"m1"},
                         std::string{"openai"}, session);
  consume_messages();
  REQUIRE(ai_state().requests.size() == 1);
  auto stream = ai_state().requests[0].stream_id;
  chunk(conv, stream, "all");
  done(conv, stream, "stop");
  CHECK(store_state().reply_writes == 0); // nothing stored before the message
  caf::anon_send(store, release_atom::value);
  consume_messages();
  append_result ack;
  h.receive([&](append_result& r) { ack = r; }, [&](caf::error& e) { FAIL(to_string(e)); });
  CHECK(ack.seq == 1);
  CHECK(types_of(frames(session)) == std::vector<std::string>{"chunk", "done"});
  REQUIRE(store_state().messages.size() == 2);
  CHECK(store_state().messages[1].seq == 2);
  CHECK(store_state().messages[1].content == "all");
  caf::anon_send_exit(conv, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture, "conversation: a repeat of a clientMsgId the conversation holds "
                           "starts no reply") {
  auto conv = spawn_new_conversation(sys, "e6e6e6e6-e6e6-4e6e-8e6e-e6e6e6e6e6e6", "alice", cfg);
  auto session = sys.spawn(recorder);
  REQUIRE(send(conv, "alice", "c1", "one", session));
  done(conv, ai_state().requests[0].stream_id, "stop");
  auto again = send(conv, "alice", "c1", "one", session);
  REQUIRE(again);
  CHECK(again->duplicate);
  // The repeat was recognised before its write: no provider request.
  CHECK(ai_state().requests.size() == 1);
  CHECK(ai_state().cancels.empty());
  caf::anon_send_exit(conv, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture, "conversation: a repeat the conversation does not hold drops the reply "
                           "started with it, unseen") {
  // The client's first message went into a conversation whose ack was
  // lost; it sends it again without a conversation id, so a new
  // conversation actor writes it and finds it a repeat only then.
  auto first = spawn_new_conversation(sys, "e7e7e7e7-e7e7-4e7e-8e7e-e7e7e7e7e7e7", "alice", cfg);
  auto session = sys.spawn(recorder);
  REQUIRE(send(first, "alice", "c1", "one", session));
  done(first, ai_state().requests[0].stream_id, "stop");
  auto second = spawn_new_conversation(sys, "e8e8e8e8-e8e8-4e8e-8e8e-e8e8e8e8e8e8", "alice", cfg);
  auto other = sys.spawn(recorder);
  auto again = send(second, "alice", "c1", "one", other);
  REQUIRE(again);
  CHECK(again->duplicate);
  CHECK(again->conversation_id == "e7e7e7e7-e7e7-4e7e-8e7e-e7e7e7e7e7e7");
  REQUIRE(ai_state().requests.size() == 2); // started with the write, then dropped
  CHECK(ai_state().cancels == std::vector<std::string>{ai_state().requests[1].stream_id});
  chunk(second, ai_state().requests[1].stream_id, "late");
  CHECK(frames(other).empty());              // nothing of it went out
  CHECK(store_state().messages.size() == 2); // nothing of it stored
  caf::anon_send_exit(first, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(second, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture, "conversation: after a failed write replies start only after the "
                           "commit, until a write succeeds") {
  cfg.store_timeout = std::chrono::seconds{2};
  auto conv = spawn_new_conversation(sys, "e9e9e9e9-e9e9-4e9e-8e9e-e9e9e9e9e9e9", "alice", cfg);
  auto session = sys.spawn(recorder);
  store_state().hold = true;
  auto h1 = self->request(conv, caf::infinite, send_atom::value, std::string{"alice"},
                          std::string{"c1"}, std::string{"one"}, std::string{"m1"},
                          std::string{"openai"}, session);
  consume_messages();
  REQUIRE(ai_state().requests.size() == 1); // started early
  sched.clock().advance_time(std::chrono::seconds{2});
  consume_messages();
  h1.receive([&](append_result&) { FAIL("acked without a commit"); }, [&](caf::error&) {});
  caf::anon_send(store, drop_atom::value); // rolled back
  consume_messages();
  CHECK(ai_state().cancels.size() == 1); // the early reply, dropped
  auto h2 = self->request(conv, caf::infinite, send_atom::value, std::string{"alice"},
                          std::string{"c2"}, std::string{"two"}, std::string{"m1"},
                          std::string{"openai"}, session);
  consume_messages();
  CHECK(ai_state().requests.size() == 1); // the database failed last: wait for the commit
  store_state().hold = false;
  caf::anon_send(store, release_atom::value);
  consume_messages();
  h2.receive([](append_result&) {}, [&](caf::error& e) { FAIL(to_string(e)); });
  REQUIRE(ai_state().requests.size() == 2);
  done(conv, ai_state().requests[1].stream_id, "stop");
  // The write succeeded: the next reply starts early again.
  store_state().hold = true;
  self->request(conv, caf::infinite, send_atom::value, std::string{"alice"}, std::string{"c3"},
                std::string{"three"}, std::string{"m1"}, std::string{"openai"}, session);
  consume_messages();
  CHECK(ai_state().requests.size() == 3);
  store_state().hold = false;
  caf::anon_send(store, release_atom::value);
  consume_messages();
  caf::anon_send_exit(conv, caf::exit_reason::user_shutdown);
}

TEST_CASE_FIXTURE(fixture, "conversation: a tab subscribing while a message commits sees its early "
                           "reply only after the message") {
  auto conv = spawn_new_conversation(sys, "eaeaeaea-eaea-4eae-8eae-eaeaeaeaeaea", "alice", cfg);
  auto tab1 = sys.spawn(recorder);
  REQUIRE(send(conv, "alice", "c1", "one", tab1));
  done(conv, ai_state().requests[0].stream_id, "stop");
  store_state().hold = true;
  auto h = self->request(conv, caf::infinite, send_atom::value, std::string{"alice"},
                         std::string{"c2"}, std::string{"two"}, std::string{"m1"},
                         std::string{"openai"}, tab1);
  consume_messages();
  REQUIRE(ai_state().requests.size() == 2);
  chunk(conv, ai_state().requests[1].stream_id, "early");
  auto tab2 = sys.spawn(recorder);
  self->send(conv, subscribe_atom::value, std::string{"alice"}, int64_t{2}, tab2);
  consume_messages();
  CHECK(frames(tab2).empty()); // the message is not acked: nothing of its reply
  store_state().hold = false;
  caf::anon_send(store, release_atom::value);
  consume_messages();
  h.receive([](append_result&) {}, [&](caf::error& e) { FAIL(to_string(e)); });
  CHECK(types_of(frames(tab2)) == std::vector<std::string>{"message", "chunk"});
  caf::anon_send_exit(conv, caf::exit_reason::user_shutdown);
}

namespace {

/// A connection of a session in this process, as the gateway's is for a
/// conversation (actors/local_links.hpp): it keeps what is written to it.
struct fake_link : chat::client_link {
  std::vector<std::string> frames;
  void send(chat::shared_frame frame) override {
    frames.emplace_back(frame.text());
  }
  void close(uint16_t, std::string) override {}
};

} // namespace

TEST_CASE_FIXTURE(fixture, "conversation: a session of this process gets its frames written to "
                           "its connection, the ack first, and only completed seqs as messages") {
  auto conv = spawn_new_conversation(sys, "ebebebeb-ebeb-4ebe-8ebe-ebebebebebeb", "alice", cfg);
  auto tab1 = sys.spawn(recorder);
  auto tab2 = sys.spawn(recorder);
  auto link1 = std::make_shared<fake_link>();
  auto link2 = std::make_shared<fake_link>();
  local_links::add(tab1.address(), link1);
  local_links::add(tab2.address(), link2);
  self->send(conv, subscribe_atom::value, std::string{"alice"}, int64_t{0}, tab2);
  consume_messages();
  store_state().hold = true;
  auto h = self->request(conv, caf::infinite, send_atom::value, std::string{"alice"},
                         std::string{"c1"}, std::string{"hello"}, std::string{"m1"},
                         std::string{"openai"}, tab1);
  consume_messages();
  REQUIRE(ai_state().requests.size() == 1);
  chunk(conv, ai_state().requests[0].stream_id, "Hel"); // before the commit: kept
  CHECK(link1->frames.empty());
  store_state().hold = false;
  caf::anon_send(store, release_atom::value);
  consume_messages();
  append_result ack;
  h.receive([&](append_result& r) { ack = r; }, [&](caf::error& e) { FAIL(to_string(e)); });
  CHECK(ack.ack_written); // so the session does not write it again
  chunk(conv, ai_state().requests[0].stream_id, "lo");
  done(conv, ai_state().requests[0].stream_id, "stop");
  CHECK(types_of(link1->frames) == std::vector<std::string>{"ack", "chunk", "chunk", "done"});
  CHECK(types_of(link2->frames) == std::vector<std::string>{"message", "chunk", "chunk", "done"});
  // The sessions saw no frame, only the seqs their clients have whole.
  CHECK(frames(tab1).empty());
  CHECK(frames(tab2).empty());
  CHECK(state_of<session_events::stateful_base<recorder_state>>(tab1).state.completed
        == std::vector<int64_t>{2});
  CHECK(state_of<session_events::stateful_base<recorder_state>>(tab2).state.completed
        == std::vector<int64_t>{1, 2});
  local_links::remove(tab1.address());
  local_links::remove(tab2.address());
  caf::anon_send_exit(conv, caf::exit_reason::user_shutdown);
}
