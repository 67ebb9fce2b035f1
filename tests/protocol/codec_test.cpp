#include "protocol/codec.hpp"

#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <string>

#include <rapidjson/document.h>

using namespace chat;
using namespace chat::protocol;

namespace {

template<class T>
T decode_as(std::string_view text, const limits& lim = {}) {
  auto r = decode(text, lim);
  if (auto* e = std::get_if<decode_error>(&r))
    FAIL("unexpected error: " << e->error.message << " for " << text);
  auto& f = std::get<client_frame>(r);
  REQUIRE(std::holds_alternative<T>(f));
  return std::get<T>(f);
}

error_frame decode_fail(std::string_view text, const limits& lim = {}) {
  auto r = decode(text, lim);
  REQUIRE_MESSAGE(std::holds_alternative<decode_error>(r), text);
  auto e = std::get<decode_error>(r).error;
  // A short message for people, never the input echoed back.
  CHECK(!e.message.empty());
  CHECK(e.message.size() < 100);
  return e;
}

void check_bad(std::string_view text, error_code code = error_code::bad_request,
               const limits& lim = {}) {
  CAPTURE(text);
  auto e = decode_fail(text, lim);
  CHECK(e.code == code);
}

rapidjson::Document parse_json(const std::string& s) {
  rapidjson::Document d;
  d.Parse(s);
  REQUIRE_MESSAGE(!d.HasParseError(), s);
  return d;
}

std::string str(const rapidjson::Value& v, const char* key) {
  REQUIRE_MESSAGE(v.HasMember(key), key);
  REQUIRE(v[key].IsString());
  return {v[key].GetString(), v[key].GetStringLength()};
}

int64_t num(const rapidjson::Value& v, const char* key) {
  REQUIRE_MESSAGE(v.HasMember(key), key);
  REQUIRE(v[key].IsInt64());
  return v[key].GetInt64();
}

std::string nested(int depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

stored_message user_msg() {
  stored_message m;
  m.id = "m-1";
  m.conversation_id = "c-1";
  m.seq = 1;
  m.role = "user";
  m.content = "Hello \"world\"";
  m.user_id = "alice";
  m.client_msg_id = "c1";
  m.created_at = 1795467600000;
  return m;
}

stored_message assistant_msg() {
  stored_message m;
  m.id = "m-2";
  m.conversation_id = "c-1";
  m.seq = 2;
  m.role = "assistant";
  m.content = "Hi!";
  m.user_id = "alice";
  m.reply_to = "m-1";
  m.model = "gpt-4o-mini";
  m.finish_reason = "stop";
  m.prompt_tokens = 9;
  m.completion_tokens = 3;
  m.created_at = 1795467600123;
  return m;
}

} // namespace

// -- decoding: valid frames ---------------------------------------------------

TEST_CASE("codec: decode send: minimal") {
  auto f = decode_as<send_frame>(R"({"type":"send","clientMsgId":"c1","content":"Hello"})");
  CHECK(f.client_msg_id == "c1");
  CHECK(f.content == "Hello");
  CHECK(f.conversation_id.empty());
  CHECK(f.model.empty());
}

TEST_CASE("codec: decode send: all fields, unknown fields ignored") {
  auto f = decode_as<send_frame>(
      R"({"extra":{"deep":[1,2,{"x":null}]},"type":"send","clientMsgId":"A-z_09",
        "conversationId":"not-a-uuid-but-fine","content":"H\u00e9 \"q\" \n 😀",
        "model":"gpt-4o","attachments":[],"v":2})");
  CHECK(f.client_msg_id == "A-z_09");
  CHECK(f.conversation_id == "not-a-uuid-but-fine");
  CHECK(f.content == "H\xc3\xa9 \"q\" \n \xf0\x9f\x98\x80");
  CHECK(f.model == "gpt-4o");
}

TEST_CASE("codec: decode send: limits are inclusive") {
  std::string id(64, 'a');
  std::string content(32768, 'x');
  auto f = decode_as<send_frame>(R"({"type":"send","clientMsgId":")" + id + R"(","content":")"
                                 + content + R"("})");
  CHECK(f.client_msg_id == id);
  CHECK(f.content.size() == 32768);
  // Multi-byte content is counted in bytes: 2 x 2 bytes = 4.
  limits lim{4};
  auto g = decode_as<send_frame>(R"({"type":"send","clientMsgId":"c","content":"éé"})", lim);
  CHECK(g.content == "éé");
  std::string conv(128, 'c');
  auto h
      = decode_as<send_frame>(R"({"type":"send","clientMsgId":"c","content":"x","conversationId":")"
                              + conv + R"(","model":")" + conv + R"("})");
  CHECK(h.conversation_id == conv);
  CHECK(h.model == conv);
}

TEST_CASE("codec: decode subscribe") {
  auto a = decode_as<subscribe_frame>(R"({"type":"subscribe","conversationId":"c-1"})");
  CHECK(a.conversation_id == "c-1");
  CHECK(a.after_seq == 0);
  auto b = decode_as<subscribe_frame>(
      R"({"type":"subscribe","conversationId":"c-1","afterSeq":4,"x":"y"})");
  CHECK(b.after_seq == 4);
  auto c = decode_as<subscribe_frame>(R"({"type":"subscribe","conversationId":"c","afterSeq":0})");
  CHECK(c.after_seq == 0);
  auto d = decode_as<subscribe_frame>(
      R"({"type":"subscribe","conversationId":"c","afterSeq":9223372036854775807})");
  CHECK(d.after_seq == INT64_MAX);
}

TEST_CASE("codec: decode unsubscribe") {
  auto f = decode_as<unsubscribe_frame>(
      R"({"type":"unsubscribe","conversationId":"c-9","afterSeq":"ignored"})");
  CHECK(f.conversation_id == "c-9");
}

TEST_CASE("codec: decode cancel") {
  auto f = decode_as<cancel_frame>(
      R"({"type":"cancel","conversationId":"c-9","messageId":"m-3","why":1})");
  CHECK(f.conversation_id == "c-9");
  CHECK(f.message_id == "m-3");
}

TEST_CASE("codec: decode ping: nonce kept as JSON text") {
  CHECK(decode_as<ping_frame>(R"({"type":"ping"})").nonce_json.empty());
  CHECK(decode_as<ping_frame>(R"({"type":"ping","nonce":7})").nonce_json == "7");
  CHECK(decode_as<ping_frame>(R"({"type":"ping","nonce":-12})").nonce_json == "-12");
  CHECK(decode_as<ping_frame>(R"({"type":"ping","nonce":"a\"b"})").nonce_json == R"("a\"b")");
  CHECK(decode_as<ping_frame>(R"({"type":"ping","nonce":null})").nonce_json == "null");
  CHECK(decode_as<ping_frame>(R"({"type":"ping","nonce":true})").nonce_json == "true");
  CHECK(decode_as<ping_frame>(R"({"type":"ping", "nonce" : { "a" : [1, 2, {"b":null}] }, "z":0})")
            .nonce_json
        == R"({"a":[1,2,{"b":null}]})");
  CHECK(decode_as<ping_frame>(R"({"type":"ping","nonce":[]})").nonce_json == "[]");
  CHECK(decode_as<ping_frame>(R"({"type":"ping","nonce":1.5})").nonce_json == "1.5");
  CHECK(decode_as<ping_frame>(R"({"type":"ping","nonce":18446744073709551615})").nonce_json
        == "18446744073709551615");
}

TEST_CASE("codec: decode ping: nonce nested up to the depth limit") {
  // Root object is level 1, so 31 arrays inside make 32 levels.
  auto f = decode_as<ping_frame>(R"({"type":"ping","nonce":)" + nested(31) + "}");
  CHECK(f.nonce_json == nested(31));
  check_bad(R"({"type":"ping","nonce":)" + nested(32) + "}");
}

TEST_CASE("codec: decode: whitespace around the frame is fine") {
  decode_as<ping_frame>(" \n\t{\"type\" : \"ping\"}\r\n ");
}

// -- decoding: bad frames -----------------------------------------------------

TEST_CASE("codec: decode: not JSON") {
  for (auto text : {"", " ", "{", "}", "hello", "{\"type\":\"ping\"", "nul", "{'type':'ping'}",
                    "{type:\"ping\"}", "{\"type\":\"ping\"} {}", "{\"type\":\"ping\"}x",
                    "{\"type\":\"ping\",}", "{\"type\":\"ping\" \"a\":1}",
                    "{\"type\":\"ping\",\"nonce\":NaN}", "{\"type\":\"ping\",\"nonce\":Infinity}",
                    "{\"type\":\"ping\",\"nonce\":01}", "{\"type\":\"ping\",\"nonce\":\"\t\"}",
                    "{\"type\":\"ping\",\"nonce\":\"\\x\"}", "/* c */ {\"type\":\"ping\"}"})
    check_bad(text);
}

TEST_CASE("codec: decode: not an object") {
  for (auto text : {"[]", R"([{"type":"ping"}])", "\"ping\"", "42", "null", "true", "-1.5"})
    check_bad(text);
}

TEST_CASE("codec: decode: type missing, mistyped or unknown") {
  for (auto text :
       {R"({})", R"({"nonce":1})", R"({"type":null})", R"({"type":1})", R"({"type":true})",
        R"({"type":["send"]})", R"({"type":{"a":1}})", R"({"type":""})", R"({"type":"Send"})",
        R"({"type":"pong"})", R"({"type":"send "})", R"({"type":"ack"})", R"({"Type":"ping"})",
        R"({"type":"ping\u0000"})"})
    check_bad(text);
  auto e = decode_fail(R"({"type":"frobnicate","clientMsgId":"c1"})");
  CHECK(e.code == error_code::bad_request);
  CHECK(e.client_msg_id.empty()); // not a send
  CHECK(e.message.find("frobnicate") == std::string::npos);
}

TEST_CASE("codec: decode send: clientMsgId") {
  auto bad_id = [](std::string id_json) {
    check_bad(R"({"type":"send","content":"x","clientMsgId":)" + id_json + "}");
  };
  check_bad(R"({"type":"send","content":"x"})");
  bad_id("null");
  bad_id("1");
  bad_id("true");
  bad_id("[\"c1\"]");
  bad_id("{}");
  bad_id(R"("")");
  bad_id("\"" + std::string(65, 'a') + "\"");
  for (auto id : {"a b", "a.b", "a/b", "a+b", "é", "a\\u0000", "a\\n", "<x>", "a:b", "😀"})
    bad_id(std::string{"\""} + id + "\"");
  auto e = decode_fail(R"({"type":"send","content":"x","clientMsgId":"bad id!"})");
  CHECK(e.client_msg_id.empty()); // invalid ids are not echoed
}

TEST_CASE("codec: decode send: content") {
  check_bad(R"({"type":"send","clientMsgId":"c1"})");
  for (auto v : {"null", "1", "true", "[\"x\"]", "{\"text\":\"x\"}", "\"\""})
    check_bad(std::string{R"({"type":"send","clientMsgId":"c1","content":)"} + v + "}");
  // NUL cannot be stored (PostgreSQL text).
  check_bad(R"({"type":"send","clientMsgId":"c1","content":"a\u0000b"})");
}

TEST_CASE("codec: decode send: content over the limit is too_large") {
  std::string content(32769, 'x');
  auto e = decode_fail(R"({"type":"send","clientMsgId":"c1","conversationId":"c-7","content":")"
                       + content + R"("})");
  CHECK(e.code == error_code::too_large);
  CHECK(e.client_msg_id == "c1");
  CHECK(e.conversation_id == "c-7");
  limits lim{3};
  check_bad(R"({"type":"send","clientMsgId":"c1","content":"abcd"})", error_code::too_large, lim);
  check_bad(R"({"type":"send","clientMsgId":"c1","content":"éé"})", error_code::too_large, lim);
  // A megabyte of content: still a short message.
  auto big = decode_fail(R"({"type":"send","clientMsgId":"c1","content":")"
                         + std::string(1 << 20, 'y') + R"("})");
  CHECK(big.code == error_code::too_large);
}

TEST_CASE("codec: decode send: conversationId and model") {
  auto with = [](std::string field, std::string v) {
    return R"({"type":"send","clientMsgId":"c1","content":"x",")" + field + "\":" + v + "}";
  };
  for (auto field : {"conversationId", "model"}) {
    CAPTURE(field);
    for (auto v : {"null", "1", "false", "[]", "{}", "\"\""})
      check_bad(with(field, v));
    check_bad(with(field, "\"" + std::string(129, 'a') + "\""));
  }
}

TEST_CASE("codec: decode: error context") {
  // send: clientMsgId and conversationId are echoed when well-formed.
  auto a = decode_fail(R"({"type":"send","clientMsgId":"c1","conversationId":"c-1","content":""})");
  CHECK(a.code == error_code::bad_request);
  CHECK(a.client_msg_id == "c1");
  CHECK(a.conversation_id == "c-1");
  auto b = decode_fail(
      R"({"type":"send","clientMsgId":"c1","conversationId":"c-1","model":7,"content":"x"})");
  CHECK(b.client_msg_id == "c1");
  CHECK(b.conversation_id == "c-1");
  // A conversationId too long to be an id is not echoed.
  auto c = decode_fail(R"({"type":"send","clientMsgId":"c1","content":"x","conversationId":")"
                       + std::string(5000, 'z') + R"("})");
  CHECK(c.client_msg_id == "c1");
  CHECK(c.conversation_id.empty());
  // Not a send: no clientMsgId, but the conversation it is about.
  auto d = decode_fail(
      R"({"type":"subscribe","clientMsgId":"c1","conversationId":"c-2","afterSeq":-1})");
  CHECK(d.client_msg_id.empty());
  CHECK(d.conversation_id == "c-2");
  auto e = decode_fail(R"({"type":"cancel","conversationId":"c-3"})");
  CHECK(e.conversation_id == "c-3");
  // Unparseable input: no context at all.
  auto f = decode_fail(R"({"type":"send","clientMsgId":"c1")");
  CHECK(f.client_msg_id.empty());
  CHECK(f.conversation_id.empty());
}

TEST_CASE("codec: decode subscribe: bad fields") {
  check_bad(R"({"type":"subscribe"})");
  check_bad(R"({"type":"subscribe","afterSeq":1})");
  for (auto v : {"null", "1", "[]", "{}", "\"\"", "true"})
    check_bad(std::string{R"({"type":"subscribe","conversationId":)"} + v + "}");
  check_bad(R"({"type":"subscribe","conversationId":")" + std::string(129, 'a') + "\"}");
  for (auto v :
       {"-1", "-9223372036854775808", "1.5", "4.0", "1e3", "1e30", "-0.5", "9223372036854775808",
        "18446744073709551615", "99999999999999999999999", "\"4\"", "null", "true", "[4]", "{}"})
    check_bad(std::string{R"({"type":"subscribe","conversationId":"c","afterSeq":)"} + v + "}");
}

TEST_CASE("codec: decode unsubscribe: bad fields") {
  check_bad(R"({"type":"unsubscribe"})");
  for (auto v : {"null", "1", "[]", "{}", "\"\""})
    check_bad(std::string{R"({"type":"unsubscribe","conversationId":)"} + v + "}");
}

TEST_CASE("codec: decode cancel: bad fields") {
  check_bad(R"({"type":"cancel"})");
  check_bad(R"({"type":"cancel","conversationId":"c"})");
  check_bad(R"({"type":"cancel","messageId":"m"})");
  for (auto v : {"null", "1", "[]", "{}", "\"\""}) {
    check_bad(std::string{R"({"type":"cancel","messageId":"m","conversationId":)"} + v + "}");
    check_bad(std::string{R"({"type":"cancel","conversationId":"c","messageId":)"} + v + "}");
  }
  check_bad(R"({"type":"cancel","conversationId":"c","messageId":")" + std::string(129, 'm')
            + "\"}");
}

TEST_CASE("codec: decode: invalid UTF-8 is refused, never a crash") {
  for (std::string bytes : {"\xff", "\xc0\xaf", "\xe2\x82", "\xed\xa0\x80", "\xf8\x88\x80\x80\x80",
                            "\x80", "\xf4\x90\x80\x80"}) {
    check_bad(R"({"type":"send","clientMsgId":"c1","content":"a)" + bytes + "\"}");
    check_bad("{\"type\":\"ping\",\"" + bytes + "\":1}");
    check_bad(bytes);
  }
  // Lone surrogates in \u escapes.
  check_bad(R"({"type":"send","clientMsgId":"c1","content":"\ud800"})");
  check_bad(R"({"type":"send","clientMsgId":"c1","content":"\udc00x"})");
  check_bad(R"({"type":"send","clientMsgId":"c1","content":"a\udfffb"})");
  check_bad(R"({"type":"ping","nonce":"\udc00"})");
  check_bad(R"({"type":"ping","\udc00":1})");
  check_bad(R"({"type":"send","clientMsgId":"c1","content":"\ud800\u0041"})");
  // U+D7FF and U+E000 are ordinary characters (ED 9F BF, EE 80 80).
  CHECK(decode_as<send_frame>(R"({"type":"send","clientMsgId":"c1","content":"\ud7ff\ue000"})")
            .content
        == "\xed\x9f\xbf\xee\x80\x80");
  // A valid pair is fine.
  CHECK(decode_as<send_frame>(R"({"type":"send","clientMsgId":"c1","content":"\ud83d\ude00"})")
            .content
        == "\xf0\x9f\x98\x80");
}

TEST_CASE("codec: decode: deeply nested JSON") {
  check_bad(nested(33));
  check_bad(std::string(100000, '['));
  check_bad(nested(100000));
  std::string objs;
  for (int i = 0; i < 50000; ++i)
    objs += R"({"a":)";
  check_bad(objs + "1" + std::string(50000, '}'));
  // Depth in an ignored field counts too.
  check_bad(R"({"type":"cancel","conversationId":"c","messageId":"m","x":)" + nested(40) + "}");
}

TEST_CASE("codec: decode: every truncation of a valid frame is an error") {
  std::string full
      = R"({"type":"send","clientMsgId":"c1","conversationId":"c-1","content":"H\u00e9llo \ud83d\ude00","model":"m","nonce":[1,{"a":null}]})";
  decode_as<send_frame>(full);
  for (size_t n = 0; n < full.size(); ++n) {
    CAPTURE(n);
    auto r = decode(std::string_view{full}.substr(0, n));
    CHECK(std::holds_alternative<decode_error>(r));
  }
}

TEST_CASE("codec: decode: random bytes and mutations never crash") {
  std::mt19937 rng{12345};
  std::uniform_int_distribution<int> byte{0, 255};
  std::string base
      = R"({"type":"send","clientMsgId":"c1","content":"hi","nonce":[1,"x",{"y":2.5}]})";
  const char* frames[]
      = {R"({"type":"subscribe","conversationId":"c","afterSeq":3})",
         R"({"type":"ping","nonce":{"a":[true,false,null]}})",
         R"({"type":"cancel","conversationId":"c","messageId":"m"})", base.c_str()};
  int decoded = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string s = frames[i % 4];
    int edits = 1 + i % 5;
    for (int k = 0; k < edits; ++k) {
      size_t pos = static_cast<size_t>(byte(rng)) % (s.size() + 1);
      switch (byte(rng) % 3) {
        case 0:
          if (pos < s.size())
            s[pos] = static_cast<char>(byte(rng));
          break;
        case 1:
          s.insert(pos, 1, static_cast<char>(byte(rng)));
          break;
        default:
          if (pos < s.size())
            s.erase(pos, 1);
      }
    }
    auto r = decode(s);
    if (auto* e = std::get_if<decode_error>(&r))
      REQUIRE(e->error.message.size() < 100);
    else
      ++decoded;
  }
  for (int i = 0; i < 2000; ++i) {
    std::string s(static_cast<size_t>(byte(rng)), '\0');
    for (auto& c : s)
      c = static_cast<char>(byte(rng));
    CHECK(std::holds_alternative<decode_error>(decode(s)));
  }
  MESSAGE(decoded << " mutated frames still decoded");
}

TEST_CASE("codec: valid_client_msg_id") {
  CHECK(valid_client_msg_id("a"));
  CHECK(valid_client_msg_id("AZaz09_-"));
  CHECK(valid_client_msg_id(std::string(64, '-')));
  CHECK_FALSE(valid_client_msg_id(""));
  CHECK_FALSE(valid_client_msg_id(std::string(65, 'a')));
  CHECK_FALSE(valid_client_msg_id("a b"));
  CHECK_FALSE(valid_client_msg_id(std::string_view{"a\0b", 3}));
  CHECK_FALSE(valid_client_msg_id("\xc3\xa9"));
}

// -- encoding -----------------------------------------------------------------

TEST_CASE("codec: error codes on the wire") {
  CHECK(std::string{to_string(error_code::bad_request)} == "bad_request");
  CHECK(std::string{to_string(error_code::not_found)} == "not_found");
  CHECK(std::string{to_string(error_code::too_large)} == "too_large");
  CHECK(std::string{to_string(error_code::rate_limited)} == "rate_limited");
  CHECK(std::string{to_string(error_code::provider_error)} == "provider_error");
  CHECK(std::string{to_string(error_code::unavailable)} == "unavailable");
  CHECK(std::string{to_string(error_code::internal)} == "internal");
}

TEST_CASE("codec: encode ack") {
  auto s = encode(ack_frame{"c1", "conv", "msg", 41});
  CHECK(
      s
      == R"({"type":"ack","clientMsgId":"c1","conversationId":"conv","messageId":"msg","seq":41})");
  auto d = parse_json(s);
  CHECK(d.MemberCount() == 5);
}

TEST_CASE("codec: encode chunk: escaping round-trips") {
  std::string tricky = "q\"uo\\te </script><!-- \n\r\t\b\f \x01\x1f \x7f "
                       "h\xc3\xa9llo \xf0\x9f\x98\x80 \xe2\x80\xa8";
  chunk_frame c{"conv", "m2", "m1", 2, 7, tricky};
  auto s = encode(c);
  CHECK(s.find('\n') == std::string::npos); // one line, controls escaped
  CHECK(s.find('\x01') == std::string::npos);
  auto d = parse_json(s);
  CHECK(str(d, "type") == "chunk");
  CHECK(str(d, "conversationId") == "conv");
  CHECK(str(d, "messageId") == "m2");
  CHECK(str(d, "replyTo") == "m1");
  CHECK(num(d, "seq") == 2);
  CHECK(num(d, "index") == 7);
  CHECK(str(d, "delta") == tricky);
  CHECK(d.MemberCount() == 7);
  // Embedded NUL survives as \u0000.
  chunk_frame z{"c", "m", "r", 1, 0, std::string{"a\0b", 3}};
  auto zd = parse_json(encode(z));
  CHECK(str(zd, "delta") == std::string{"a\0b", 3});
}

TEST_CASE("codec: encode done: with and without usage") {
  done_frame x{"conv", "m2", "m1", 2, 12, "stop", 9, 12};
  auto d = parse_json(encode(x));
  CHECK(str(d, "type") == "done");
  CHECK(str(d, "conversationId") == "conv");
  CHECK(str(d, "messageId") == "m2");
  CHECK(str(d, "replyTo") == "m1");
  CHECK(num(d, "seq") == 2);
  CHECK(num(d, "chunks") == 12);
  CHECK(str(d, "finishReason") == "stop");
  REQUIRE(d.HasMember("usage"));
  CHECK(num(d["usage"], "promptTokens") == 9);
  CHECK(num(d["usage"], "completionTokens") == 12);
  CHECK(d["usage"].MemberCount() == 2);

  x.prompt_tokens = -1;
  x.completion_tokens = -1;
  x.finish_reason = "cancelled";
  x.chunks = 0;
  auto e = parse_json(encode(x));
  CHECK_FALSE(e.HasMember("usage"));
  CHECK(num(e, "chunks") == 0);
  CHECK(str(e, "finishReason") == "cancelled");

  x.prompt_tokens = 0;
  auto f = parse_json(encode(x));
  REQUIRE(f.HasMember("usage"));
  CHECK(num(f["usage"], "promptTokens") == 0);
}

TEST_CASE("codec: encode error: optional context") {
  auto a = parse_json(encode(error_frame{error_code::not_found, "no such conversation", "", ""}));
  CHECK(str(a, "type") == "error");
  CHECK(str(a, "code") == "not_found");
  CHECK(str(a, "message") == "no such conversation");
  CHECK_FALSE(a.HasMember("clientMsgId"));
  CHECK_FALSE(a.HasMember("conversationId"));
  auto b = parse_json(encode(error_frame{error_code::rate_limited, "slow \"down\"", "c1", "conv"}));
  CHECK(str(b, "code") == "rate_limited");
  CHECK(str(b, "message") == "slow \"down\"");
  CHECK(str(b, "clientMsgId") == "c1");
  CHECK(str(b, "conversationId") == "conv");
  auto c = parse_json(encode(error_frame{error_code::provider_error, "x", "", "conv"}));
  CHECK_FALSE(c.HasMember("clientMsgId"));
  CHECK(str(c, "conversationId") == "conv");
  // A decode error encodes straight away.
  auto r = decode(R"({"type":"send","clientMsgId":"c9"})");
  auto d = parse_json(encode(std::get<decode_error>(r).error));
  CHECK(str(d, "code") == "bad_request");
  CHECK(str(d, "clientMsgId") == "c9");
}

TEST_CASE("codec: encode pong: nonce echoed as it came") {
  CHECK(encode_pong("") == R"({"type":"pong"})");
  CHECK_FALSE(parse_json(encode_pong("")).HasMember("nonce"));
  for (std::string nonce :
       {"7", "-3", "1.5", "\"abc\"", "\"q\\\"\\u0001\"", "null", "true", "[]", "{}",
        R"({"a":[1,"two",{"b":null}],"c":false})", "18446744073709551615"}) {
    CAPTURE(nonce);
    auto ping = decode_as<ping_frame>(R"({"type":"ping","nonce":)" + nonce + "}");
    auto pong = parse_json(encode_pong(ping.nonce_json));
    CHECK(str(pong, "type") == "pong");
    REQUIRE(pong.HasMember("nonce"));
    rapidjson::Document original;
    original.Parse(nonce);
    REQUIRE_FALSE(original.HasParseError());
    CHECK(pong["nonce"] == original);
  }
  auto pong
      = parse_json(encode_pong(decode_as<ping_frame>(R"({"type":"ping","nonce":7})").nonce_json));
  CHECK(num(pong, "nonce") == 7);
}

TEST_CASE("codec: encode message event: user") {
  auto d = parse_json(encode_message_event(user_msg()));
  CHECK(str(d, "type") == "message");
  CHECK(str(d, "conversationId") == "c-1");
  CHECK(str(d, "messageId") == "m-1");
  CHECK(num(d, "seq") == 1);
  CHECK(str(d, "role") == "user");
  CHECK(str(d, "content") == "Hello \"world\"");
  CHECK(str(d, "clientMsgId") == "c1");
  CHECK(str(d, "createdAt") == "2026-11-23T21:00:00.000Z");
  CHECK_FALSE(d.HasMember("replyTo"));
  CHECK_FALSE(d.HasMember("model"));
  CHECK_FALSE(d.HasMember("finishReason"));
  CHECK_FALSE(d.HasMember("userId")); // never another user's data
  CHECK(d.MemberCount() == 8);
}

TEST_CASE("codec: encode message event: assistant") {
  auto d = parse_json(encode_message_event(assistant_msg()));
  CHECK(str(d, "type") == "message");
  CHECK(str(d, "messageId") == "m-2");
  CHECK(num(d, "seq") == 2);
  CHECK(str(d, "role") == "assistant");
  CHECK(str(d, "content") == "Hi!");
  CHECK(str(d, "replyTo") == "m-1");
  CHECK(str(d, "model") == "gpt-4o-mini");
  CHECK(str(d, "finishReason") == "stop");
  CHECK(str(d, "createdAt") == "2026-11-23T21:00:00.123Z");
  CHECK_FALSE(d.HasMember("clientMsgId"));
  CHECK(d.MemberCount() == 10);
}

TEST_CASE("codec: encode message list (REST)") {
  message_page page;
  page.found = true;
  page.messages = {user_msg(), assistant_msg()};
  auto d = parse_json(encode_message_list(page));
  REQUIRE(d.HasMember("messages"));
  auto& list = d["messages"];
  REQUIRE(list.IsArray());
  REQUIRE(list.Size() == 2);
  CHECK_FALSE(list[0].HasMember("type"));
  CHECK(str(list[0], "role") == "user");
  CHECK(str(list[0], "clientMsgId") == "c1");
  CHECK(str(list[0], "createdAt") == "2026-11-23T21:00:00.000Z");
  CHECK(list[0].MemberCount() == 7);
  CHECK_FALSE(list[1].HasMember("type"));
  CHECK(str(list[1], "finishReason") == "stop");
  CHECK(num(list[1], "seq") == 2);
  CHECK(list[1].MemberCount() == 9);
  CHECK(encode_message_list(message_page{}) == R"({"messages":[]})");
}

TEST_CASE("codec: encode conversation list (REST)") {
  conversation_page page;
  page.conversations
      = {{"c-1", "Hello \"there\"", 0, 1795467600000}, {"c-2", "", 1709210096000, 1709210096001}};
  page.next_before = "cursor-xyz";
  auto d = parse_json(encode_conversation_list(page));
  auto& list = d["conversations"];
  REQUIRE(list.Size() == 2);
  CHECK(str(list[0], "id") == "c-1");
  CHECK(str(list[0], "title") == "Hello \"there\"");
  CHECK(str(list[0], "createdAt") == "1970-01-01T00:00:00.000Z");
  CHECK(str(list[0], "updatedAt") == "2026-11-23T21:00:00.000Z");
  CHECK(list[0].MemberCount() == 4);
  CHECK(str(list[1], "title") == "");
  CHECK(str(list[1], "updatedAt") == "2024-02-29T12:34:56.001Z");
  CHECK(str(d, "nextBefore") == "cursor-xyz");

  page.next_before.clear();
  auto e = parse_json(encode_conversation_list(page));
  CHECK_FALSE(e.HasMember("nextBefore"));
  CHECK(encode_conversation_list(conversation_page{}) == R"({"conversations":[]})");
}

TEST_CASE("codec: encode rest error") {
  auto s = encode_rest_error("not_found", "no such \"conversation\"");
  CHECK(s == R"({"error":{"code":"not_found","message":"no such \"conversation\""}})");
  parse_json(s);
}

TEST_CASE("codec: format_timestamp") {
  CHECK(format_timestamp(0) == "1970-01-01T00:00:00.000Z");
  CHECK(format_timestamp(1) == "1970-01-01T00:00:00.001Z");
  CHECK(format_timestamp(999) == "1970-01-01T00:00:00.999Z");
  CHECK(format_timestamp(1000) == "1970-01-01T00:00:01.000Z");
  CHECK(format_timestamp(86'399'999) == "1970-01-01T23:59:59.999Z");
  CHECK(format_timestamp(1795467600000) == "2026-11-23T21:00:00.000Z");
  CHECK(format_timestamp(1795467600042) == "2026-11-23T21:00:00.042Z");
  CHECK(format_timestamp(1709210096000) == "2024-02-29T12:34:56.000Z");
  CHECK(format_timestamp(951868800000 - 1) == "2000-02-29T23:59:59.999Z");
  CHECK(format_timestamp(951868800000) == "2000-03-01T00:00:00.000Z");
  CHECK(format_timestamp(253402300799999) == "9999-12-31T23:59:59.999Z");
  CHECK(format_timestamp(-1) == "1969-12-31T23:59:59.999Z");
  CHECK(format_timestamp(-86'400'000) == "1969-12-31T00:00:00.000Z");
}

TEST_CASE("codec: completed_seq_of reads the seq of a message, a done or an ack, nothing else") {
  stored_message m;
  m.id = "m1";
  m.conversation_id = "c1";
  m.seq = 7;
  m.role = "user";
  m.content = R"(a "seq":99 in the text)";
  CHECK(completed_seq_of(encode_message_event(m)) == 7);
  done_frame d;
  d.conversation_id = "c1";
  d.message_id = "m2";
  d.reply_to = "m1";
  d.seq = 8;
  d.finish_reason = "stop";
  CHECK(completed_seq_of(encode(d)) == 8);
  CHECK(completed_seq_of(encode(ack_frame{"k1", "c1", "m1", 12})) == 12);
  CHECK(completed_seq_of(encode(chunk_frame{"c1", "m2", "m1", 8, 0, "x"})) == -1);
  CHECK(completed_seq_of("") == -1);
  CHECK(completed_seq_of(R"({"type":"message",)") == -1);
}

// Found by tests/fuzz/protocol_codec_fuzz.cpp (input kept in
// tests/fuzz/corpus/protocol_codec_fuzz/crash-b88dcef63b43e284a52a89d8ffb4034d41335b91):
// a seq of more digits than int64 holds was a signed overflow.
TEST_CASE("codec: completed_seq_of refuses a seq past int64") {
  CHECK(completed_seq_of(R"({"type":"done",:184:18 y"seq":444674440440734144446744404)") == -1);
  CHECK(completed_seq_of(R"({"type":"ack","seq":9223372036854775807})")
        == std::numeric_limits<int64_t>::max());
  CHECK(completed_seq_of(R"({"type":"ack","seq":9223372036854775808})") == -1);
  CHECK(completed_seq_of(R"({"type":"ack","seq":99999999999999999999999})") == -1);
}
