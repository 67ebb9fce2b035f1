// The real chatd with the real PostgreSQL, the mock LLM and a real WebSocket
// client: what a user of the service sees.

#include <signal.h>

#include <thread>

#include <doctest/doctest.h>

#include "tests/integration/harness.hpp"

using namespace chat::test;

namespace {

/// Reads one reply with nothing in between but error frames: chunks with
/// indexes 0, 1, 2, ... in order (after those in `start`), then `done`
/// counting them.
assembled read_reply(ws_client& ws, std::chrono::milliseconds timeout = 20s, assembled start = {}) {
  auto r = read_reply_of(ws, "", timeout, std::move(start));
  for (auto& o : r.other)
    if (str(parse(o), "type") != "error")
      FAIL("unexpected frame while reading a reply: " << o);
  REQUIRE_FALSE(r.whole_message);
  CHECK(r.duplicates == 0);
  CHECK(r.out_of_order == 0);
  CHECK(r.complete());
  return r;
}

} // namespace

TEST_CASE("integration: send, ack, streamed reply, both messages stored") {
  service svc;
  auto user = unique_user();
  ws_client ws;
  REQUIRE(ws.connect(svc.port, svc.ws_path(user)) == 101);

  std::string text = "hello there <b>friend</b> ünïcode";
  ws.send_text(send_frame("c-1", text));
  auto ack = ws.read_json();
  REQUIRE(str(ack, "type") == "ack");
  CHECK(str(ack, "clientMsgId") == "c-1");
  CHECK(num(ack, "seq") == 1);
  auto conv = str(ack, "conversationId");
  auto user_msg = str(ack, "messageId");
  REQUIRE_FALSE(conv.empty());

  auto reply = read_reply(ws);
  CHECK(reply.finish_reason == "stop");
  CHECK(reply.seq == 2);
  CHECK(reply.reply_to == user_msg);
  CHECK(reply.content() == mock_reply(text, 24));
  CHECK(reply.done_chunks >= 2); // streamed, not delivered whole

  // A second message in the same conversation gets the next seqs.
  ws.send_text(send_frame("c-2", "again", conv));
  auto ack2 = ws.read_json();
  REQUIRE(str(ack2, "type") == "ack");
  CHECK(num(ack2, "seq") == 3);
  auto reply2 = read_reply(ws);
  CHECK(reply2.seq == 4);
  CHECK(reply2.content() == mock_reply("again", 24));

  auto rows = db_query("SELECT seq, role, content, coalesce(finish_reason, '') FROM messages "
                       "WHERE conversation_id = $1 ORDER BY seq",
                       conv);
  REQUIRE(rows.size() == 4);
  CHECK(rows[0][1].as<std::string>() == "user");
  CHECK(rows[0][2].as<std::string>() == text);
  CHECK(rows[1][1].as<std::string>() == "assistant");
  CHECK(rows[1][2].as<std::string>() == reply.content());
  CHECK(rows[1][3].as<std::string>() == "stop");
  CHECK(rows[3][2].as<std::string>() == reply2.content());
  auto owner = db_query1("SELECT user_id FROM conversations WHERE id = $1", conv);
  CHECK(owner[0].as<std::string>() == user);

  // Nothing secret in the logs.
  CHECK(svc.chatd->log().find("sk-test-key-never-logged") == std::string::npos);
  CHECK(svc.chatd->log().find(svc.secret) == std::string::npos);
}

TEST_CASE("integration: a bad token is refused with 401 before any WebSocket") {
  service svc;
  ws_client a;
  CHECK(a.connect(svc.port, "/api/v1/chat/ws") == 401);
  ws_client b;
  CHECK(b.connect(svc.port, "/api/v1/chat/ws?token=not.a.jwt") == 401);
  ws_client c;
  auto expired = svc.token("someone", -3600);
  CHECK(c.connect(svc.port, "/api/v1/chat/ws?token=" + expired) == 401);
  CHECK(http_request(svc.port, "GET", "/api/v1/models").status == 401);
  CHECK(http_request(svc.port, "GET", "/api/v1/models", "garbage").status == 401);
}

TEST_CASE("integration: malformed frames get error frames, the connection keeps working") {
  service svc;
  ws_client ws;
  REQUIRE(ws.connect(svc.port, svc.ws_path(unique_user())) == 101);
  const char* bad[] = {
      "not json",
      "[1,2,3]",
      R"({"type":"nope"})",
      R"({"type":"send","content":"x"})",
      R"({"type":"send","clientMsgId":"bad id!","content":"x"})",
      R"({"type":"send","clientMsgId":"c1","content":""})",
      R"({"type":"subscribe","conversationId":"x","afterSeq":-1})",
      R"({"type":"subscribe","conversationId":7})",
  };
  for (auto frame : bad) {
    CAPTURE(frame);
    ws.send_text(frame);
    auto e = ws.read_json();
    CHECK(str(e, "type") == "error");
    CHECK(str(e, "code") == "bad_request");
  }
  // A conversation that does not exist (or is someone else's).
  ws.send_text(R"({"type":"subscribe","conversationId":"00000000-0000-4000-8000-000000000000"})");
  auto nf = ws.read_json();
  CHECK(str(nf, "code") == "not_found");
  ws.send_text(send_frame("c-x", "hi", "not-a-conversation"));
  auto nf2 = ws.read_json();
  CHECK(str(nf2, "code") == "not_found");
  CHECK(str(nf2, "clientMsgId") == "c-x");
  // Unknown model.
  ws.send_text(R"({"type":"send","clientMsgId":"c-m","content":"hi","model":"nope"})");
  CHECK(str(ws.read_json(), "code") == "bad_request");
  // Too large content.
  ws.send_text(send_frame("c-big", std::string(40000, 'a')));
  CHECK(str(ws.read_json(), "code") == "too_large");
  // Still alive: ping/pong with the nonce echoed as it came, and a real send.
  ws.send_text(R"({"type":"ping","nonce":{"a":[1,"x"]}})");
  auto pong = ws.read_json();
  CHECK(str(pong, "type") == "pong");
  CHECK(pong["nonce"]["a"][1].GetString() == std::string{"x"});
  ws.send_text(send_frame("c-ok", "still here"));
  CHECK(str(ws.read_json(), "type") == "ack");
  CHECK(read_reply(ws).finish_reason == "stop");
}

TEST_CASE("integration: binary frames close with 1003, oversized frames with 1009") {
  service svc;
  auto token = svc.token(unique_user());
  ws_client a;
  REQUIRE(a.connect(svc.port, "/api/v1/chat/ws?token=" + token) == 101);
  a.send_binary("\x01\x02");
  CHECK_FALSE(a.read(5s).has_value());
  CHECK(a.close_code() == 1003);

  ws_client b;
  REQUIRE(b.connect(svc.port, "/api/v1/chat/ws?token=" + token) == 101);
  b.send_text(std::string(70 * 1024, ' '));
  CHECK_FALSE(b.read(5s).has_value());
  CHECK(b.close_code() == 1009);
}

TEST_CASE("integration: a provider failure ends the reply with provider_error and done error") {
  service svc;
  ws_client ws;
  REQUIRE(ws.connect(svc.port, svc.ws_path(unique_user())) == 101);
  ws.send_text(send_frame("c-f1", "fail now [[mock fail=http500]]"));
  REQUIRE(str(ws.read_json(), "type") == "ack");
  auto r1 = read_reply(ws);
  CHECK(r1.finish_reason == "error");
  CHECK(r1.errors == std::vector<std::string>{"provider_error"});

  ws.send_text(send_frame("c-f2", "cut me [[mock fail=mid-stream tokens=10]]"));
  REQUIRE(str(ws.read_json(), "type") == "ack");
  auto r2 = read_reply(ws);
  CHECK(r2.finish_reason == "error");
  CHECK(r2.errors == std::vector<std::string>{"provider_error"});
  CHECK(r2.done_chunks >= 1); // what was streamed is kept
}

TEST_CASE("integration: health, readiness, metrics and REST") {
  service svc;
  auto user = unique_user();
  auto token = svc.token(user);
  CHECK(http_request(svc.port, "GET", "/healthz").status == 200);
  CHECK(http_request(svc.port, "GET", "/readyz").status == 200);
  auto models = http_request(svc.port, "GET", "/api/v1/models", token);
  CHECK(models.status == 200);
  CHECK(models.body.find(R"("default":"gpt-4o-mini")") != std::string::npos);

  ws_client ws;
  REQUIRE(ws.connect(svc.port, "/api/v1/chat/ws?token=" + token) == 101);
  ws.send_text(send_frame("r-1", "first title line\nsecond"));
  auto conv = str(ws.read_json(), "conversationId");
  read_reply(ws);

  auto list = http_request(svc.port, "GET", "/api/v1/conversations", token);
  CHECK(list.status == 200);
  CHECK(list.body.find(conv) != std::string::npos);
  CHECK(list.body.find("first title line") != std::string::npos);
  auto msgs = http_request(svc.port, "GET",
                           "/api/v1/conversations/" + conv + "/messages?afterSeq=0", token);
  CHECK(msgs.status == 200);
  CHECK(msgs.body.find(R"("seq":2)") != std::string::npos);

  // Another user sees nothing, exactly as if it did not exist.
  auto other = svc.token(unique_user());
  auto foreign
      = http_request(svc.port, "GET", "/api/v1/conversations/" + conv + "/messages", other);
  auto missing
      = http_request(svc.port, "GET",
                     "/api/v1/conversations/00000000-0000-4000-8000-000000000000/messages", other);
  CHECK(foreign.status == 404);
  CHECK(foreign.body == missing.body);
  CHECK(http_request(svc.port, "DELETE", "/api/v1/conversations/" + conv, other).status == 404);
  CHECK(http_request(svc.port, "GET", "/api/v1/conversations", other).body.find(conv)
        == std::string::npos);

  CHECK(http_request(svc.port, "DELETE", "/api/v1/conversations/" + conv, token).status == 204);
  CHECK(http_request(svc.port, "GET", "/api/v1/conversations/" + conv + "/messages", token).status
        == 404);

  auto metrics = http_request(svc.port, "GET", "/metrics");
  CHECK(metrics.status == 200);
  CHECK(metrics.body.find("chat_messages_acked_total 1") != std::string::npos);
  // The operators' histograms counted that one message and its reply.
  CHECK(gauge(svc.port, "chat_ack_latency_seconds_count") == 1);
  CHECK(gauge(svc.port, "chat_first_chunk_overhead_seconds_count") == 1);
  CHECK(gauge(svc.port, "chat_provider_ttft_seconds_count") == 1);
  CHECK(gauge(svc.port, "chat_db_commit_seconds_count") >= 2); // the message, the reply
  CHECK(gauge(svc.port, "chat_db_batch_size_count") == gauge(svc.port, "chat_db_commit_seconds_count"));
  CHECK(gauge(svc.port, "chat_heap_in_use_bytes") > 0);
}

TEST_CASE("integration: a second connection of the user sees the same live stream") {
  service svc;
  auto token = svc.token(unique_user());
  ws_client a;
  ws_client b;
  REQUIRE(a.connect(svc.port, "/api/v1/chat/ws?token=" + token) == 101);
  REQUIRE(b.connect(svc.port, "/api/v1/chat/ws?token=" + token) == 101);
  a.send_text(send_frame("t-1", "first"));
  auto conv = str(a.read_json(), "conversationId");
  auto first = read_reply(a);
  b.send_text(subscribe_frame(conv, 0));
  // b gets the history as message events.
  auto m1 = b.read_json();
  CHECK(str(m1, "type") == "message");
  CHECK(num(m1, "seq") == 1);
  auto m2 = b.read_json();
  CHECK(num(m2, "seq") == 2);
  CHECK(str(m2, "content") == first.content());
  // Then both see the next exchange live; b sees a's message as an event.
  a.send_text(send_frame("t-2", "second [[mock delay_ms=20 tokens=6]]", conv));
  CHECK(str(a.read_json(), "type") == "ack");
  auto m3 = b.read_json();
  CHECK(str(m3, "type") == "message");
  CHECK(str(m3, "content") == "second [[mock delay_ms=20 tokens=6]]");
  auto ra = read_reply(a);
  auto rb = read_reply(b);
  CHECK(ra.content() == rb.content());
  CHECK(ra.content() == mock_reply("second", 6));
}

TEST_CASE("integration: chatd refuses to start without a required setting") {
  process p{bin_dir() + "/chatd", {}, {{"DATABASE_URL", ""}, {"CHAT_JWT_SECRET", "x"}}};
  CHECK(p.wait(10s) == 2);
  CHECK(p.log().find("DATABASE_URL") != std::string::npos);
}

TEST_CASE("integration: SIGTERM drains and exits 0") {
  service svc;
  ws_client ws;
  REQUIRE(ws.connect(svc.port, svc.ws_path(unique_user())) == 101);
  ws.send_text(send_frame("d-1", "slow [[mock delay_ms=50 tokens=20]]"));
  REQUIRE(str(ws.read_json(), "type") == "ack");
  auto first = ws.read();
  REQUIRE(first.has_value());
  assembled started;
  REQUIRE_FALSE(started.feed(*first));
  REQUIRE(started.chunks.size() == 1); // the next frame was a chunk
  svc.chatd->signal(SIGTERM);
  auto reply = read_reply(ws, 20s, started); // the reply in progress completes
  CHECK(reply.finish_reason == "stop");
  CHECK_FALSE(ws.read(10s).has_value());
  CHECK(ws.close_code() == 1001);
  CHECK(svc.chatd->wait(20s) == 0);
}

TEST_CASE(
    "integration: sends beyond CHAT_USER_SENDS_PER_MIN get rate_limited, across connections") {
  service::options opts;
  opts.chatd_env["CHAT_USER_SENDS_PER_MIN"] = "2";
  service svc{opts};
  auto token = svc.token(unique_user());
  ws_client a;
  ws_client b;
  REQUIRE(a.connect(svc.port, "/api/v1/chat/ws?token=" + token) == 101);
  REQUIRE(b.connect(svc.port, "/api/v1/chat/ws?token=" + token) == 101);
  a.send_text(send_frame("rl-1", "one [[mock tokens=2]]"));
  CHECK(str(a.read_until("ack"), "clientMsgId") == "rl-1");
  b.send_text(send_frame("rl-2", "two [[mock tokens=2]]"));
  CHECK(str(b.read_until("ack"), "clientMsgId") == "rl-2");
  a.send_text(send_frame("rl-3", "three"));
  auto e = a.read_until("error");
  CHECK(str(e, "code") == "rate_limited");
  CHECK(str(e, "clientMsgId") == "rl-3");
}

TEST_CASE("integration: unsubscribe stops live events for that connection only") {
  service svc;
  auto token = svc.token(unique_user());
  ws_client a;
  ws_client b;
  REQUIRE(a.connect(svc.port, "/api/v1/chat/ws?token=" + token) == 101);
  REQUIRE(b.connect(svc.port, "/api/v1/chat/ws?token=" + token) == 101);
  a.send_text(send_frame("u-1", "first [[mock tokens=3]]"));
  auto conv = str(a.read_until("ack"), "conversationId");
  a.read_until("done");
  // b subscribes (the replay of seq 2 shows it is attached), unsubscribes,
  // then cancels an unknown reply: its not_found comes from the conversation
  // after it handled the unsubscribe.
  b.send_text(subscribe_frame(conv, 1));
  CHECK(num(b.read_until("message"), "seq") == 2);
  b.send_text(R"({"type":"unsubscribe","conversationId":")" + conv + R"("})");
  b.send_text(cancel_frame(conv, "nope"));
  CHECK(str(b.read_until("error"), "code") == "not_found");
  // Unsubscribing from something not subscribed does nothing.
  b.send_text(R"({"type":"unsubscribe","conversationId":"00000000-0000-4000-8000-000000000000"})");
  a.send_text(send_frame("u-2", "second [[mock tokens=3]]", conv));
  a.read_until("done");
  // b got nothing of the second exchange: its next frame is the pong.
  auto before_pong = frames_before_pong(b, 1);
  CHECK_MESSAGE(before_pong.empty(), "got " << before_pong.front());
}

TEST_CASE("integration: a token that expires while connected closes the socket with 1008") {
  // Accepted while it is within the verifier's leeway (60 s past exp), and
  // closed when the leeway ends, not the moment after the upgrade: exp was
  // 57 s ago.
  service svc;
  ws_client ws;
  REQUIRE(ws.connect(svc.port, "/api/v1/chat/ws?token=" + svc.token(unique_user(), -57)) == 101);
  auto t0 = std::chrono::steady_clock::now();
  CHECK_FALSE(ws.read(10s).has_value());
  CHECK(ws.close_code() == 1008);
  CHECK(std::chrono::steady_clock::now() - t0 >= 1500ms); // not at once: about 3 s
}

TEST_CASE("integration: a connection silent for longer than the idle limit is closed with 1001") {
  service::options opts;
  opts.chatd_env["CHAT_IDLE_TIMEOUT"] = "1";
  service svc{opts};
  ws_client quiet;
  ws_client talking;
  REQUIRE(quiet.connect(svc.port, svc.ws_path(unique_user())) == 101);
  REQUIRE(talking.connect(svc.port, svc.ws_path(unique_user())) == 101);
  // `talking` sends a frame every 300 ms and stays open past the limit.
  for (int i = 0; i < 6; ++i) {
    talking.send_text(R"({"type":"ping","nonce":)" + std::to_string(i) + "}");
    CHECK(str(talking.read_until("pong"), "type") == "pong");
    std::this_thread::sleep_for(300ms);
  }
  CHECK(talking.is_open());
  CHECK_FALSE(quiet.read(5s).has_value());
  CHECK(quiet.close_code() == 1001);
}

TEST_CASE("integration: a model of the anthropic provider streams through the Messages API") {
  service svc;
  auto user = unique_user();
  ws_client ws;
  REQUIRE(ws.connect(svc.port, svc.ws_path(user)) == 101);
  ws.send_text(
      R"({"type":"send","clientMsgId":"an-1","content":"bonjour claude","model":"claude-mock"})");
  auto ack = ws.read_until("ack");
  auto reply = read_reply(ws);
  CHECK(reply.finish_reason == "stop");
  CHECK(reply.content() == mock_reply("bonjour claude", 24));
  auto row = db_query1("SELECT model FROM messages WHERE conversation_id = $1 AND seq = 2",
                       str(ack, "conversationId"));
  CHECK(row[0].as<std::string>() == "claude-mock");
  CHECK(svc.chatd->log().find("sk-ant-test-key-never-logged") == std::string::npos);
}
