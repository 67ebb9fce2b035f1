// Delivery guarantees (PROTOCOL.md "Identifiers and ordering", `subscribe`,
// `cancel`, "Delivery guarantees") proved against the real chatd, the real
// PostgreSQL and the mock LLM. Every test fails when its guarantee breaks.

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include <doctest/doctest.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "tests/integration/harness.hpp"

using namespace chat::test;

namespace {

using clock_type = std::chrono::steady_clock;

/// A Prometheus counter's value from /metrics (-1: absent).
double metric(const service& svc, const std::string& name) {
  auto r = http_request(svc.port, "GET", "/metrics");
  REQUIRE(r.status == 200);
  std::istringstream lines{r.body};
  for (std::string line; std::getline(lines, line);)
    if (line.rfind(name + " ", 0) == 0)
      return std::stod(line.substr(name.size() + 1));
  return -1;
}

int64_t user_rows(const std::string& user, const std::string& client_msg_id) {
  return db_query1("SELECT count(*) FROM messages WHERE user_id = $1 AND client_msg_id = $2", user,
                   client_msg_id)[0]
      .as<int64_t>();
}

int64_t assistant_rows_replying_to(const std::string& user_message_id) {
  return db_query1("SELECT count(*) FROM messages WHERE reply_to = $1::uuid AND role = 'assistant'",
                   user_message_id)[0]
      .as<int64_t>();
}

int64_t conversations_of(const std::string& user) {
  return db_query1("SELECT count(*) FROM conversations WHERE user_id = $1", user)[0].as<int64_t>();
}

/// `v` written back as JSON text.
std::string to_text(const rapidjson::Value& v) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w{sb};
  v.Accept(w);
  return sb.GetString();
}

/// The frame with the id-like members set to "ID" (compare error frames
/// "apart from ids").
std::string without_ids(const std::string& text) {
  auto d = parse(text);
  for (auto key : {"conversationId", "clientMsgId", "messageId"}) {
    auto m = d.FindMember(key);
    if (m != d.MemberEnd())
      m->value.SetString("ID");
  }
  return to_text(d);
}

struct ack_info {
  std::string conv;
  std::string message_id;
  int64_t seq = 0;
  std::string raw;
};

ack_info expect_ack(ws_client& ws, const std::string& client_msg_id,
                    std::chrono::milliseconds timeout = 10s) {
  std::vector<std::string> skipped;
  auto a = ws.read_until("ack", &skipped, timeout);
  for (auto& s : skipped)
    CHECK_MESSAGE(str(parse(s), "type") != "error", "error before the ack: " << s);
  CHECK(str(a, "clientMsgId") == client_msg_id);
  return {str(a, "conversationId"), str(a, "messageId"), num(a, "seq"), to_text(a)};
}

const std::string kRandomUuid = "00000000-0000-4000-8000-00000000abcd";

} // namespace

// -- 1. idempotent sends ----------------------------------------------------------

TEST_CASE(
    "delivery: the same clientMsgId twice in a row on one connection: one message, one reply") {
  service svc;
  auto user = unique_user();
  ws_client ws;
  REQUIRE(ws.connect(svc.port, svc.ws_path(user)) == 101);
  std::string text = "twice in a row [[mock delay_ms=5 tokens=12]]";
  ws.send_text(send_frame("dup-a", text));
  ws.send_text(send_frame("dup-a", text));

  std::vector<ack_info> acks;
  assembled r;
  auto deadline = clock_type::now() + 30s;
  // Read until both acks and the done arrived.
  while (acks.size() < 2 || r.dones < 1) {
    auto left = left_until(deadline);
    REQUIRE_MESSAGE(left.count() > 0, "acks " << acks.size() << ", dones " << r.dones);
    auto text_frame = ws.read(left);
    REQUIRE(text_frame.has_value());
    auto f = parse(*text_frame);
    if (str(f, "type") == "ack") {
      acks.push_back({str(f, "conversationId"), str(f, "messageId"), num(f, "seq"), *text_frame});
      continue;
    }
    r.feed(*text_frame);
  }
  CHECK(acks[0].message_id == acks[1].message_id);
  CHECK(acks[0].seq == acks[1].seq);
  CHECK(acks[0].conv == acks[1].conv);
  CHECK(acks[0].seq == 1);
  CHECK(r.errors.empty());
  CHECK(r.complete());
  CHECK(r.content() == mock_reply("twice in a row", 12));
  CHECK(r.finish_reason == "stop");
  // Nothing more: no second reply.
  auto after = frames_before_pong(ws, 1);
  for (auto& f : after)
    r.feed(f);
  CHECK(r.dones == 1);
  CHECK_MESSAGE(after.empty(), "frames after the reply: " << after.size());
  CHECK(user_rows(user, "dup-a") == 1);
  CHECK(assistant_rows_replying_to(acks[0].message_id) == 1);
  CHECK(provider_replies(svc, 1) == 1);
}

TEST_CASE("delivery: the same clientMsgId after its reply ended: the original ack, no new reply") {
  service svc;
  auto user = unique_user();
  ws_client ws;
  REQUIRE(ws.connect(svc.port, svc.ws_path(user)) == 101);
  ws.send_text(send_frame("dup-b", "after the reply"));
  auto first = expect_ack(ws, "dup-b");
  auto r = read_reply_of(ws, first.message_id);
  CHECK(r.complete());

  ws.send_text(send_frame("dup-b", "after the reply, different content"));
  auto again = expect_ack(ws, "dup-b");
  CHECK(again.raw == first.raw); // the original ack, byte for byte
  auto after = frames_before_pong(ws, 2);
  CHECK_MESSAGE(after.empty(),
                "frames after the repeated ack: " << (after.empty() ? "" : after[0]));
  CHECK(user_rows(user, "dup-b") == 1);
  CHECK(assistant_rows_replying_to(first.message_id) == 1);
  CHECK(provider_replies(svc, 1) == 1);
}

TEST_CASE("delivery: the same clientMsgId from a second connection while the reply streams") {
  service svc;
  auto user = unique_user();
  ws_client a;
  ws_client b;
  REQUIRE(a.connect(svc.port, svc.ws_path(user)) == 101);
  REQUIRE(b.connect(svc.port, svc.ws_path(user)) == 101);
  std::string text = "streaming now [[mock delay_ms=30 tokens=100]]";
  a.send_text(send_frame("dup-c", text));
  auto first = expect_ack(a, "dup-c");
  // Wait until the reply is streaming (a has a chunk).
  auto ra = read_chunks(a, first.message_id, 3);

  SUBCASE("into the same conversation") {
    b.send_text(send_frame("dup-c", text, first.conv));
  }
  SUBCASE("without a conversationId") {
    b.send_text(send_frame("dup-c", text));
  }
  auto again = expect_ack(b, "dup-c");
  CHECK(again.raw == first.raw);
  // b now gets the reply as `subscribe` would: its chunks so far and the rest.
  auto rb = read_reply_of(b, first.message_id, 30s);
  CHECK(rb.errors.empty());
  CHECK_FALSE(rb.whole_message);
  CHECK(rb.chunks.count(0) == 1); // from index 0
  CHECK(rb.complete());
  CHECK(rb.content() == mock_reply("streaming now", 100));
  CHECK(rb.finish_reason == "stop");
  ra = read_reply_of(a, first.message_id, 30s, ra);
  CHECK(ra.complete());
  CHECK(ra.content() == rb.content());
  CHECK(provider_replies(svc, 1) == 1);
  CHECK(user_rows(user, "dup-c") == 1);
  if (!rb.complete() || rb.chunks.empty())
    MESSAGE("chatd log:\n" << svc.chatd->log());
}

TEST_CASE("delivery: the same clientMsgId with another or no conversationId: the original ack") {
  service svc;
  auto user = unique_user();
  ws_client ws;
  REQUIRE(ws.connect(svc.port, svc.ws_path(user)) == 101);
  ws.send_text(send_frame("dup-d", "original"));
  auto first = expect_ack(ws, "dup-d");
  CHECK(read_reply_of(ws, first.message_id).complete());
  // A second conversation of the same user.
  ws.send_text(send_frame("other-d", "another conversation"));
  auto other = expect_ack(ws, "other-d");
  REQUIRE(other.conv != first.conv);
  CHECK(read_reply_of(ws, other.message_id).complete());

  INFO("repeat into the user's other conversation");
  ws.send_text(send_frame("dup-d", "moved?", other.conv));
  auto in_other = expect_ack(ws, "dup-d");
  CHECK(in_other.raw == first.raw);
  CHECK(in_other.conv == first.conv);
  INFO("repeat without a conversationId");
  ws.send_text(send_frame("dup-d", "new conversation?"));
  auto in_none = expect_ack(ws, "dup-d");
  CHECK(in_none.raw == first.raw);
  INFO("repeat into a conversation that does not exist");
  auto after = frames_before_pong(ws, 3);
  CHECK_MESSAGE(after.empty(),
                "frames after the repeated acks: " << (after.empty() ? "" : after[0]));
  CHECK(user_rows(user, "dup-d") == 1);
  CHECK(conversations_of(user) == 2);
  CHECK(provider_replies(svc, 2) == 2);
}

TEST_CASE("delivery: the same clientMsgId naming a missing conversation: still the original ack") {
  service svc;
  auto user = unique_user();
  ws_client ws;
  REQUIRE(ws.connect(svc.port, svc.ws_path(user)) == 101);
  ws.send_text(send_frame("dup-d", "original"));
  auto first = expect_ack(ws, "dup-d");
  CHECK(read_reply_of(ws, first.message_id).complete());
  INFO("repeat into a conversation that does not exist");
  ws.send_text(send_frame("dup-d", "missing conversation?", kRandomUuid));
  {
    // "whatever the content or conversation of the repeat": even one that
    // does not exist gets the original ack (not an error).
    auto text = ws.read(10s);
    REQUIRE(text.has_value());
    CHECK(without_ids(*text) == without_ids(first.raw));
    CHECK(*text == first.raw);
    if (*text != first.raw)
      MESSAGE("chatd log:\n" << svc.chatd->log());
  }
  auto after = frames_before_pong(ws, 3);
  CHECK(after.empty());
  CHECK(user_rows(user, "dup-d") == 1);
  CHECK(conversations_of(user) == 1);
  CHECK(provider_replies(svc, 1) == 1);
}

TEST_CASE("delivery: two connections send the same clientMsgId at the same moment") {
  service svc;
  auto user = unique_user();
  constexpr int rounds = 5;
  for (int round = 0; round < rounds; ++round) {
    CAPTURE(round);
    ws_client a;
    ws_client b;
    REQUIRE(a.connect(svc.port, svc.ws_path(user)) == 101);
    REQUIRE(b.connect(svc.port, svc.ws_path(user)) == 101);
    auto id = "race-" + std::to_string(round);
    // Slow enough that the loser of the race attaches before the reply ends
    // (afterwards it would rightly get nothing more).
    auto frame = send_frame(id, "race [[mock tokens=6 delay_ms=50]]");
    std::thread tb{[&] { b.send_text(frame); }};
    a.send_text(frame);
    tb.join();
    auto ack_a = expect_ack(a, id);
    auto ack_b = expect_ack(b, id);
    CHECK(ack_a.raw == ack_b.raw);
    auto ra = read_reply_of(a, ack_a.message_id);
    CHECK(ra.complete());
    CHECK(ra.content() == mock_reply("race", 6));
    CHECK(user_rows(user, id) == 1);
    CHECK(assistant_rows_replying_to(ack_a.message_id) == 1);
  }
  CHECK(provider_replies(svc, rounds) == rounds);
  // An orphan conversation from a lost race is not a second message, but
  // should not exist either.
  WARN(conversations_of(user) == rounds);
}

// -- 2. resume after a cut connection ----------------------------------------------

TEST_CASE("delivery: a cut connection resumes with subscribe and gets the whole reply once") {
  service svc;
  auto user = unique_user();
  std::mt19937 rng{std::random_device{}()};
  constexpr int attempts = 10;
  constexpr int tokens = 30;
  int resumed = 0;
  int via_chunks = 0;
  int64_t duplicates = 0;
  std::string conv;
  auto t0 = clock_type::now();
  for (int i = 0; i < attempts; ++i) {
    CAPTURE(i);
    auto id = "resume-" + std::to_string(i);
    auto words = "resume number " + std::to_string(i);
    int cut_after = std::uniform_int_distribution<int>{0, tokens - 2}(rng);
    CAPTURE(cut_after);
    ws_client first;
    REQUIRE(first.connect(svc.port, svc.ws_path(user)) == 101);
    first.send_text(send_frame(id, words + " [[mock delay_ms=20 tokens=30]]", conv));
    auto ack = expect_ack(first, id);
    conv = ack.conv;
    auto r = read_chunks(first, ack.message_id, cut_after);
    first.cut();

    ws_client second;
    REQUIRE(second.connect(svc.port, svc.ws_path(user)) == 101);
    // The last seq this client completed: its own message's (the reply was not).
    second.send_text(subscribe_frame(conv, ack.seq));
    r = read_reply_of(second, ack.message_id, 30s, r);
    CHECK(r.errors.empty());
    bool ok = r.complete() && r.content() == mock_reply(words, tokens) && r.finish_reason == "stop"
              && r.seq == ack.seq + 1;
    CHECK(r.complete());
    CHECK(r.content() == mock_reply(words, tokens));
    CHECK(r.finish_reason == "stop");
    CHECK(r.seq == ack.seq + 1);
    // Nothing else before the reply's end (no other message twice).
    for (auto& o : r.other)
      CHECK_MESSAGE(false, "unexpected frame while resuming: " << o);
    resumed += ok ? 1 : 0;
    via_chunks += r.whole_message ? 0 : 1;
    duplicates += r.duplicates;
  }
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0).count();
  MESSAGE("resumed " << resumed << "/" << attempts << " (" << via_chunks
                     << " via chunks, the rest as a finished message), " << duplicates
                     << " duplicate chunks dropped, " << ms << " ms");
  CHECK(resumed == attempts);
  CHECK(provider_replies(svc, attempts) == attempts);
}

// The soak (bench/run_soak.sh) once saw a resumed reply end with chunks
// missing when the new connection's subscribe landed a few milliseconds
// before the reply's end. Land many subscribes right there.
TEST_CASE("delivery: a resume that lands as the reply ends still gets it whole") {
  service svc;
  auto user = unique_user();
  std::mt19937 rng{std::random_device{}()};
  constexpr int attempts = 100;
  constexpr int tokens = 8;
  std::string conv;
  int whole = 0;
  for (int i = 0; i < attempts; ++i) {
    CAPTURE(i);
    auto id = "end-" + std::to_string(i);
    auto words = "ending number " + std::to_string(i);
    ws_client first;
    REQUIRE(first.connect(svc.port, svc.ws_path(user)) == 101);
    first.send_text(send_frame(id, words + " [[mock delay_ms=5 tokens=8]]", conv));
    auto ack = expect_ack(first, id);
    conv = ack.conv;
    auto r = read_chunks(first, ack.message_id, tokens - 1 - i % 3);
    first.cut();
    // Anywhere from before the last token to just after the reply's end.
    std::this_thread::sleep_for(
        std::chrono::microseconds{std::uniform_int_distribution<int>{0, 12000}(rng)});
    ws_client second;
    REQUIRE(second.connect(svc.port, svc.ws_path(user)) == 101);
    second.send_text(subscribe_frame(conv, ack.seq));
    r = read_reply_of(second, ack.message_id, 30s, r);
    CHECK(r.errors.empty());
    CHECK(r.complete());
    CHECK((r.whole_message ? r.message_content : r.content()) == mock_reply(words, tokens));
    whole += r.whole_message ? 1 : 0;
  }
  MESSAGE(whole << " of " << attempts << " resumed as a finished message");
}

// -- 3. two tabs -------------------------------------------------------------------

TEST_CASE("delivery: two tabs see each other's messages and the same live stream") {
  service svc;
  auto user = unique_user();
  ws_client a;
  ws_client b;
  REQUIRE(a.connect(svc.port, svc.ws_path(user)) == 101);
  REQUIRE(b.connect(svc.port, svc.ws_path(user)) == 101);
  a.send_text(send_frame("tab-1", "from a first"));
  auto ack1 = expect_ack(a, "tab-1");
  CHECK(read_reply_of(a, ack1.message_id).complete());
  b.send_text(subscribe_frame(ack1.conv, 0));
  auto h1 = b.read_json();
  CHECK(str(h1, "type") == "message");
  CHECK(num(h1, "seq") == 1);
  auto h2 = b.read_json();
  CHECK(str(h2, "type") == "message");
  CHECK(num(h2, "seq") == 2);

  for (int turn = 0; turn < 2; ++turn) {
    CAPTURE(turn);
    auto& sender = turn == 0 ? a : b;
    auto& other = turn == 0 ? b : a;
    auto id = "tab-x" + std::to_string(turn);
    auto words = std::string{turn == 0 ? "a says" : "b says"} + " hello";
    auto content = words + " [[mock delay_ms=10 tokens=8]]";
    sender.send_text(send_frame(id, content, ack1.conv));
    auto ack = expect_ack(sender, id);
    CHECK(ack.seq == 3 + 2 * turn);
    auto m = other.read_json();
    REQUIRE(str(m, "type") == "message");
    CHECK(str(m, "role") == "user");
    CHECK(str(m, "content") == content);
    CHECK(str(m, "clientMsgId") == id);
    CHECK(str(m, "messageId") == ack.message_id);
    CHECK(num(m, "seq") == ack.seq);
    auto rs = read_reply_of(sender, ack.message_id);
    auto ro = read_reply_of(other, ack.message_id);
    CHECK(rs.complete());
    CHECK(ro.complete());
    CHECK(rs.duplicates == 0);
    CHECK(ro.duplicates == 0);
    CHECK(rs.content() == mock_reply(words, 8));
    CHECK(ro.content() == rs.content());
    CHECK(rs.other.empty());
    CHECK(ro.other.empty());
  }
}

// -- 4. cancel ---------------------------------------------------------------------

TEST_CASE("delivery: cancel stops the reply, keeps what was streamed and aborts the provider") {
  service svc;
  auto user = unique_user();
  auto token = svc.token(user);
  ws_client ws;
  REQUIRE(ws.connect(svc.port, svc.ws_path(user)) == 101);
  ws.send_text(send_frame("cx-1", "cancel me [[mock delay_ms=50 tokens=200]]"));
  auto ack = expect_ack(ws, "cx-1");
  auto r = read_chunks(ws, ack.message_id, 3);
  auto t0 = clock_type::now();
  ws.send_text(cancel_frame(ack.conv, r.message_id));
  r = read_reply_of(ws, ack.message_id, 10s, r);
  auto cancel_ms
      = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0).count();
  CHECK(r.finish_reason == "cancelled");
  CHECK(r.complete());
  CHECK(r.errors.empty());
  auto full = mock_reply("cancel me", 200);
  CHECK(r.content().size() < full.size());
  CHECK(full.rfind(r.content(), 0) == 0); // a prefix of the full reply
  auto aborted = wait_mock_stat(svc, "aborted", 1, 2s);
  CHECK(aborted >= 1);
  MESSAGE("cancel -> done in " << cancel_ms << " ms, " << r.chunks.size() << " chunks kept");

  // Stored with finishReason cancelled and the streamed prefix.
  auto msgs
      = http_request(svc.port, "GET", "/api/v1/conversations/" + ack.conv + "/messages", token);
  REQUIRE(msgs.status == 200);
  auto d = parse(msgs.body);
  REQUIRE(d["messages"].IsArray());
  REQUIRE(d["messages"].Size() == 2);
  auto& stored = d["messages"][1];
  CHECK(str(stored, "role") == "assistant");
  CHECK(str(stored, "messageId") == r.message_id);
  CHECK(str(stored, "finishReason") == "cancelled");
  CHECK(str(stored, "content") == r.content());

  // An unknown messageId: not_found.
  ws.send_text(cancel_frame(ack.conv, kRandomUuid));
  auto e = ws.read_json();
  CHECK(str(e, "type") == "error");
  CHECK(str(e, "code") == "not_found");
  // Cancelling the reply that has ended: nothing at all.
  ws.send_text(cancel_frame(ack.conv, r.message_id));
  auto after = frames_before_pong(ws, 4);
  CHECK_MESSAGE(after.empty(),
                "frames after cancelling an ended reply: " << (after.empty() ? "" : after[0]));
  // Also one that ended normally.
  ws.send_text(send_frame("cx-2", "short one", ack.conv));
  auto ack2 = expect_ack(ws, "cx-2");
  auto r2 = read_reply_of(ws, ack2.message_id);
  CHECK(r2.finish_reason == "stop");
  ws.send_text(cancel_frame(ack.conv, r2.message_id));
  after = frames_before_pong(ws, 5);
  CHECK_MESSAGE(after.empty(),
                "frames after cancelling a finished reply: " << (after.empty() ? "" : after[0]));
}

// -- 5. closing does not cancel ------------------------------------------------------

TEST_CASE("delivery: a connection that closes does not cancel its reply") {
  service svc;
  auto user = unique_user();
  auto token = svc.token(user);
  std::string words = "keep going without me";
  {
    ws_client ws;
    REQUIRE(ws.connect(svc.port, svc.ws_path(user)) == 101);
    ws.send_text(send_frame("gone-1", words + " [[mock delay_ms=20 tokens=25]]"));
    auto ack = expect_ack(ws, "gone-1");
    CHECK(ack.seq == 1);
    ws.cut();
  }
  // Later: wait for the provider stream to finish (completed, not aborted).
  CHECK(wait_mock_stat(svc, "completed", 1, 10s) >= 1);
  CHECK(mock_stat(svc, "aborted") == 0);
  // And for the reply to be stored (persistence runs after the stream).
  auto conv = db_query1("SELECT conversation_id::text FROM messages WHERE user_id = $1 "
                        "AND client_msg_id = 'gone-1'",
                        user)[0]
                  .as<std::string>();
  auto deadline = clock_type::now() + 10s;
  while (clock_type::now() < deadline) {
    auto msgs = http_request(svc.port, "GET", "/api/v1/conversations/" + conv + "/messages", token);
    if (msgs.status == 200 && msgs.body.find(R"("seq":2)") != std::string::npos)
      break;
    std::this_thread::sleep_for(20ms);
  }
  ws_client again;
  REQUIRE(again.connect(svc.port, svc.ws_path(user)) == 101);
  again.send_text(subscribe_frame(conv, 0));
  auto m1 = again.read_json();
  CHECK(str(m1, "type") == "message");
  CHECK(num(m1, "seq") == 1);
  auto m2 = again.read_json();
  CHECK(str(m2, "type") == "message");
  CHECK(num(m2, "seq") == 2);
  CHECK(str(m2, "role") == "assistant");
  CHECK(str(m2, "finishReason") == "stop");
  CHECK(str(m2, "content") == mock_reply(words, 25));
  CHECK(str(m2, "replyTo") == str(m1, "messageId"));
}

// -- 6. user isolation -------------------------------------------------------------

TEST_CASE("delivery: another user's conversation is indistinguishable from a missing one") {
  service svc;
  auto alice = unique_user();
  auto bob = unique_user();
  auto alice_token = svc.token(alice);
  auto bob_token = svc.token(bob);
  ws_client a;
  REQUIRE(a.connect(svc.port, svc.ws_path(alice)) == 101);
  a.send_text(send_frame("iso-1", "alice's secret words [[mock delay_ms=5 tokens=10]]"));
  auto ack = expect_ack(a, "iso-1");
  auto ra = read_reply_of(a, ack.message_id);
  REQUIRE(ra.complete());
  // A reply still streaming in alice's conversation, for bob's cancel.
  a.send_text(send_frame("iso-2", "slow [[mock delay_ms=50 tokens=100]]", ack.conv));
  auto ack2 = expect_ack(a, "iso-2");
  auto streaming = read_chunks(a, ack2.message_id, 1);

  ws_client b;
  REQUIRE(b.connect(svc.port, svc.ws_path(bob)) == 101);
  auto pair = [&](const std::string& foreign_frame, const std::string& missing_frame) {
    b.send_text(foreign_frame);
    auto f = b.read(10s);
    REQUIRE(f.has_value());
    b.send_text(missing_frame);
    auto m = b.read(10s);
    REQUIRE(m.has_value());
    CAPTURE(*f);
    CAPTURE(*m);
    CHECK(str(parse(*f), "type") == "error");
    CHECK(str(parse(*f), "code") == "not_found");
    CHECK(without_ids(*f) == without_ids(*m));
    CHECK(f->find("secret") == std::string::npos);
  };
  pair(subscribe_frame(ack.conv, 0), subscribe_frame(kRandomUuid, 0));
  pair(send_frame("bob-1", "intrude", ack.conv), send_frame("bob-2", "intrude", kRandomUuid));
  pair(cancel_frame(ack.conv, streaming.message_id), cancel_frame(kRandomUuid, kRandomUuid));
  pair(cancel_frame(ack.conv, kRandomUuid), cancel_frame(kRandomUuid, streaming.message_id));
  // Bob's connection got nothing of alice's stream meanwhile.
  auto leaked = frames_before_pong(b, 6);
  CHECK_MESSAGE(leaked.empty(), "bob got: " << (leaked.empty() ? "" : leaked[0]));

  // REST.
  auto foreign
      = http_request(svc.port, "GET", "/api/v1/conversations/" + ack.conv + "/messages", bob_token);
  auto missing = http_request(svc.port, "GET", "/api/v1/conversations/" + kRandomUuid + "/messages",
                              bob_token);
  CHECK(foreign.status == 404);
  CHECK(missing.status == 404);
  CHECK(foreign.body == missing.body);
  auto del_foreign
      = http_request(svc.port, "DELETE", "/api/v1/conversations/" + ack.conv, bob_token);
  auto del_missing
      = http_request(svc.port, "DELETE", "/api/v1/conversations/" + kRandomUuid, bob_token);
  CHECK(del_foreign.status == 404);
  CHECK(del_missing.status == 404);
  CHECK(del_foreign.body == del_missing.body);
  auto list = http_request(svc.port, "GET", "/api/v1/conversations", bob_token);
  CHECK(list.status == 200);
  CHECK(list.body.find(ack.conv) == std::string::npos);
  CHECK(list.body.find("secret") == std::string::npos);

  // Alice's reply was not cancelled nor her conversation deleted by bob.
  streaming = read_reply_of(a, ack2.message_id, 30s, streaming);
  CHECK(streaming.finish_reason == "stop");
  CHECK(streaming.complete());
  auto mine = http_request(svc.port, "GET", "/api/v1/conversations/" + ack.conv + "/messages",
                           alice_token);
  CHECK(mine.status == 200);
  CHECK(parse(mine.body)["messages"].Size() == 4);
  CHECK(user_rows(bob, "bob-1") == 0);
  CHECK(conversations_of(bob) == 0);
}

// -- 7. backpressure -----------------------------------------------------------------

namespace {

void slow_reader_case(const std::string& max_pending_bytes) {
  service::options opts;
  opts.chatd_env["CHAT_MAX_PENDING_BYTES"] = max_pending_bytes;
  service svc{opts};
  auto user = unique_user();
  ws_client fast;
  REQUIRE(fast.connect(svc.port, svc.ws_path(user)) == 101);
  fast.send_text(send_frame("bp-0", "setup"));
  auto ack0 = expect_ack(fast, "bp-0");
  CHECK(read_reply_of(fast, ack0.message_id).complete());

  ws_client slow;
  slow.set_receive_buffer(4096);
  REQUIRE(slow.connect(svc.port, svc.ws_path(user)) == 101);
  slow.send_text(subscribe_frame(ack0.conv, 0));
  CHECK(num(slow.read_json(), "seq") == 1);
  CHECK(num(slow.read_json(), "seq") == 2);
  // From now on `slow` reads nothing.

  // A provider ten times faster than real ones (1000 tokens/s): ~5000
  // chunk frames of ~150 bytes, far more than the slow client's socket
  // buffers (a 4 KiB receive window, the server's initial send buffer) plus
  // the queue limit can hold. (An unthrottled burst of 100000 tokens also
  // outruns a client that reads as fast as it can: that is the policy
  // working, not a slow client.)
  constexpr int tokens = 5000;
  auto t0 = clock_type::now();
  fast.send_text(send_frame("bp-1", "big [[mock tokens=5000 delay_ms=1 ttft_ms=0]]", ack0.conv));
  auto ack = expect_ack(fast, "bp-1");
  assembled r;
  r.reply_to = ack.message_id;
  size_t max_frame = 0;
  for (auto deadline = clock_type::now() + 120s;;) {
    auto text = fast.read(left_until(deadline));
    if (!text) {
      svc.chatd->wait_for_line("connection_too_slow", 5s); // logs are flushed late
      auto log = svc.chatd->log();
      std::istringstream lines{log};
      std::string relevant;
      for (std::string line; std::getline(lines, line);)
        if (line.find("slow") != std::string::npos || line.find("closing") != std::string::npos)
          relevant += line + "\n";
      FAIL("the fast reader's connection ended (close code "
           << fast.close_code() << ") after " << r.chunks.size() << " chunks (largest frame "
           << max_frame << " bytes); chatd:\n"
           << relevant);
    }
    max_frame = std::max(max_frame, text->size());
    if (r.feed(*text))
      break;
  }
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0).count();
  CHECK(r.complete());
  CHECK(r.duplicates == 0);
  CHECK(r.finish_reason == "stop");
  auto content = r.content();
  CHECK(content.size() == mock_reply("big", tokens).size());
  CHECK(content == mock_reply("big", tokens));
  MESSAGE("fast reader: " << r.chunks.size() << " chunks (largest frame " << max_frame
                          << " bytes), " << content.size() << " bytes in " << ms << " ms");

  auto slow_closed = metric(svc, "chat_connections_closed_slow_total");
  CHECK(slow_closed >= 1);
  // Now the slow client reads: whatever was in flight, then the close 1013.
  int frames = 0;
  auto deadline = clock_type::now() + 30s;
  while (slow.read(left_until(deadline)).has_value() && clock_type::now() < deadline)
    ++frames;
  CHECK_FALSE(slow.is_open());
  CHECK(slow.close_code() == 1013);
  MESSAGE("slow reader: " << frames << " frames before the close, code " << slow.close_code());
  if (slow.close_code() != 1013)
    MESSAGE("chatd log tail:\n"
            << svc.chatd->log().substr(
                   svc.chatd->log().size() > 4000 ? svc.chatd->log().size() - 4000 : 0));
}

} // namespace

TEST_CASE("delivery: a client that does not read is closed with 1013, others get everything") {
  slow_reader_case("65536");
}

// -- 8. many subscribers -------------------------------------------------------------

TEST_CASE("delivery: 200 subscribers of one conversation all get the whole stream") {
  constexpr int n = 200;
  // All of one user: past the default of 32 connections per user.
  service::options opts;
  opts.chatd_env["CHAT_MAX_CONNECTIONS_PER_USER"] = std::to_string(n);
  service svc{opts};
  auto user = unique_user();
  std::vector<std::unique_ptr<ws_client>> clients;
  clients.push_back(std::make_unique<ws_client>());
  REQUIRE(clients[0]->connect(svc.port, svc.ws_path(user)) == 101);
  clients[0]->send_text(send_frame("many-0", "setup"));
  auto ack0 = expect_ack(*clients[0], "many-0");
  CHECK(read_reply_of(*clients[0], ack0.message_id).complete());
  for (int i = 1; i < n; ++i) {
    clients.push_back(std::make_unique<ws_client>());
    REQUIRE(clients.back()->connect(svc.port, svc.ws_path(user)) == 101);
    clients.back()->send_text(subscribe_frame(ack0.conv, 0));
  }
  for (int i = 1; i < n; ++i) {
    CAPTURE(i);
    CHECK(num(clients[i]->read_json(), "seq") == 1);
    CHECK(num(clients[i]->read_json(), "seq") == 2);
  }
  auto t0 = clock_type::now();
  std::string words = "for all of you";
  clients[0]->send_text(send_frame("many-1", words + " [[mock delay_ms=5 tokens=50]]", ack0.conv));
  auto ack = expect_ack(*clients[0], "many-1");
  auto expected = mock_reply(words, 50);
  int complete = 0;
  for (int i = 0; i < n; ++i) {
    CAPTURE(i);
    auto r = read_reply_of(*clients[i], ack.message_id, 60s);
    bool ok
        = r.complete() && r.content() == expected && r.duplicates == 0 && r.finish_reason == "stop";
    CHECK(ok);
    if (i > 0) {
      // The user message came first, as a message event.
      REQUIRE_FALSE(r.other.empty());
      CHECK(str(parse(r.other[0]), "messageId") == ack.message_id);
    }
    complete += ok ? 1 : 0;
  }
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0).count();
  MESSAGE(complete << "/" << n << " subscribers got the whole reply, " << ms << " ms");
  CHECK(complete == n);
  for (auto& c : clients)
    CHECK(c->is_open());
  CHECK(metric(svc, "chat_connections_closed_slow_total") == 0);
}

TEST_CASE("delivery: deleting a conversation mid-reply stops the provider and removes it all") {
  service svc;
  auto user = unique_user();
  auto token = svc.token(user);
  ws_client ws;
  REQUIRE(ws.connect(svc.port, svc.ws_path(user)) == 101);
  ws.send_text(send_frame("del-1", "long [[mock delay_ms=50 tokens=200]]"));
  auto ack = expect_ack(ws, "del-1");
  read_chunks(ws, ack.message_id, 3);
  CHECK(http_request(svc.port, "DELETE", "/api/v1/conversations/" + ack.conv, token).status == 204);
  CHECK(wait_mock_stat(svc, "aborted", 1, 2s) >= 1); // no more tokens billed
  CHECK(
      http_request(svc.port, "GET", "/api/v1/conversations/" + ack.conv + "/messages", token).status
      == 404);
  CHECK(db_query1("SELECT count(*) FROM messages WHERE conversation_id = $1", ack.conv)[0]
            .as<int64_t>()
        == 0);
  // Nothing is left running, and the id now names nothing.
  auto deadline = clock_type::now() + 2s;
  while (metric(svc, "chat_replies_active") != 0 && clock_type::now() < deadline)
    std::this_thread::sleep_for(10ms);
  CHECK(metric(svc, "chat_replies_active") == 0);
  ws.send_text(R"({"type":"subscribe","conversationId":")" + ack.conv + R"("})");
  CHECK(str(ws.read_until("error"), "code") == "not_found");
}
