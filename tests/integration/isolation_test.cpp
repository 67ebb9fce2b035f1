// Isolation: another user's conversation must be indistinguishable from one
// that does not exist, to the byte. Every frame and endpoint that names a
// conversation or a message is tried by bob twice, once with alice's ids and
// once with ids that exist nowhere; the answers are compared byte for byte
// after alice's ids are replaced by the missing ones (HTTP: status line,
// headers but Date, and body). What leaks into logs, /metrics and error texts
// is watched across the whole suite (leak_watch.hpp).

#include <map>
#include <regex>
#include <thread>

#include <doctest/doctest.h>

#include "tests/integration/harness.hpp"
#include "tests/integration/leak_watch.hpp"

using namespace chat::test;

namespace {

const std::string missing_conv = "00000000-0000-4000-8000-0000000000c1";
const std::string missing_message = "00000000-0000-4000-8000-0000000000a1";
const std::string missing_reply = "00000000-0000-4000-8000-0000000000a2";

/// One HTTP/1.1 exchange: the whole response as sent, without its Date
/// header (the only part allowed to differ).
std::string http_exchange(uint16_t port, const std::string& method, const std::string& target,
                          const std::string& token) {
  auto out = raw_exchange(port, method + " " + target
                                    + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
                                    + token + "\r\nConnection: close\r\n\r\n");
  return std::regex_replace(out, std::regex{"\r\nDate: [^\r]*"}, "");
}

/// `text` with every alice id replaced by its missing counterpart.
std::string as_missing(std::string text, const std::map<std::string, std::string>& ids) {
  for (auto& [from, to] : ids)
    for (size_t at; (at = text.find(from)) != std::string::npos;)
      text.replace(at, from.size(), to);
  return text;
}

} // namespace

TEST_CASE("isolation: every frame and endpoint answers another user's ids exactly as missing "
          "ones") {
  service svc;
  auto alice = unique_user();
  auto bob = unique_user();
  auto bob_token = svc.token(bob);
  ws_client a;
  REQUIRE(a.connect(svc.port, svc.ws_path(alice)) == 101);
  a.send_text(send_frame("alice-1", "alice's private question [[mock tokens=4]]"));
  auto ack = a.read_until("ack");
  auto conv = str(ack, "conversationId");
  auto message = str(ack, "messageId");
  auto first_reply = read_reply_of(a, message);
  REQUIRE(first_reply.complete());
  // A reply of alice's still streaming while bob probes.
  a.send_text(send_frame("alice-2", "alice's slow one [[mock delay_ms=50 tokens=60]]", conv));
  auto ack2 = a.read_until("ack");
  auto streaming = read_chunks(a, str(ack2, "messageId"), 1);
  std::map<std::string, std::string> ids{
      {conv, missing_conv}, {message, missing_message}, {streaming.message_id, missing_reply}};

  ws_client b;
  REQUIRE(b.connect(svc.port, svc.ws_path(bob)) == 101);
  // The one frame bob's connection gets for `frame` (its pong would not
  // say it came last: pings are answered by the gateway at once).
  auto answer = [&](const std::string& frame) {
    b.send_text(frame);
    auto text = b.read(10s);
    REQUIRE_MESSAGE(text.has_value(), "no answer to " << frame);
    return *text;
  };
  auto same_ws = [&](const std::string& what, const std::string& foreign, const std::string& miss) {
    CAPTURE(what);
    auto f = answer(foreign);
    auto m = answer(miss);
    CAPTURE(f);
    CHECK(as_missing(f, ids) == m);
    CHECK(str(parse(f), "code") == "not_found");
    return f;
  };
  auto subscribe = [](const std::string& c, int64_t after) { return subscribe_frame(c, after); };
  auto cancel = [](const std::string& c, const std::string& m) { return cancel_frame(c, m); };
  auto unsubscribe = [](const std::string& c) {
    return R"({"type":"unsubscribe","conversationId":")" + c + R"("})";
  };

  same_ws("subscribe from 0", subscribe(conv, 0), subscribe(missing_conv, 0));
  same_ws("subscribe from 1", subscribe(conv, 1), subscribe(missing_conv, 1));
  same_ws("subscribe from far ahead", subscribe(conv, 1000000), subscribe(missing_conv, 1000000));
  // A send into alice's conversation, also with a clientMsgId alice used
  // (clientMsgIds are per user: bob's is a new message, and refused).
  same_ws("send", send_frame("bob-1", "bob intrudes here", conv),
          send_frame("bob-1", "bob intrudes here", missing_conv));
  same_ws("send with alice's clientMsgId", send_frame("alice-1", "bob intrudes again", conv),
          send_frame("alice-1", "bob intrudes again", missing_conv));
  same_ws("cancel of alice's streaming reply", cancel(conv, streaming.message_id),
          cancel(missing_conv, missing_reply));
  same_ws("cancel of alice's finished message", cancel(conv, message),
          cancel(missing_conv, missing_message));
  // unsubscribe is answered by nothing, either way.
  b.send_text(unsubscribe(conv));
  b.send_text(unsubscribe(missing_conv));
  // Nothing else came, nothing of alice's stream reached bob meanwhile.
  std::this_thread::sleep_for(300ms);
  auto stray = frames_before_pong(b, 1);
  CHECK_MESSAGE(stray.empty(), "bob got: " << (stray.empty() ? "" : stray[0]));

  auto same_http = [&](const std::string& method, const std::string& path_of_conv,
                       const std::string& query = "") {
    auto target = [&](const std::string& c) {
      return std::regex_replace(path_of_conv, std::regex{"\\{id\\}"}, c) + query;
    };
    CAPTURE(method + " " + target(conv));
    auto foreign = http_exchange(svc.port, method, target(conv), bob_token);
    auto miss = http_exchange(svc.port, method, target(missing_conv), bob_token);
    CHECK(as_missing(foreign, ids) == miss);
    return foreign;
  };
  auto got = same_http("GET", "/api/v1/conversations/{id}/messages");
  CHECK(got.rfind("HTTP/1.1 404", 0) == 0);
  same_http("GET", "/api/v1/conversations/{id}/messages", "?afterSeq=0&limit=1");
  same_http("GET", "/api/v1/conversations/{id}/messages", "?afterSeq=1");
  same_http("HEAD", "/api/v1/conversations/{id}/messages");
  same_http("GET", "/api/v1/conversations/{id}");
  same_http("DELETE", "/api/v1/conversations/{id}");
  same_http("GET", "/api/v1/conversations/{id}/messages/" + message);
  // Bob's own list names nothing of alice's.
  auto list = http_request(svc.port, "GET", "/api/v1/conversations", bob_token);
  CHECK(list.status == 200);
  CHECK(list.body.find(conv) == std::string::npos);

  // Alice lost nothing: her reply streamed on and both messages are hers.
  streaming = read_reply_of(a, str(ack2, "messageId"), 30s, streaming);
  CHECK(streaming.finish_reason == "stop");
  CHECK(streaming.complete());
  auto mine = http_request(svc.port, "GET", "/api/v1/conversations/" + conv + "/messages",
                           svc.token(alice));
  CHECK(mine.status == 200);
  CHECK(parse(mine.body)["messages"].Size() == 4);
}

// The watch itself: it must fail a test whose texts hold what it watches
// (expected_failures: this case passes only if all three checks fail).
TEST_CASE("isolation: the leak watch catches a content, a secret and, in metrics, a user id"
          * doctest::expected_failures(3)) {
  namespace lw = chat::test::leak_watch;
  auto from = lw::mark();
  lw::content("a sentence only one user typed [[mock tokens=3]]");
  lw::secret("sk-watched-secret");
  lw::user("user-watched");
  lw::check("a log", "{\"event\":\"x\",\"text\":\"a sentence only one user typed\"}", from);
  lw::check("a log", "key=sk-watched-secret", from);
  lw::check("metrics", "chat_things{user=\"user-watched\"} 1", from, true);
}
