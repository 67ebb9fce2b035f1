// The mock LLM server: its pure reply logic, then the real binary
// (build/bin/mock_llm, found through CHAT_BIN_DIR) driven by libcurl.
#include "ai/mock_llm/mock_reply.hpp"

#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <curl/curl.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "mock_process.hpp"

using namespace chat::mock_llm;
using chat::test::mock_process;
using namespace std::chrono_literals;

namespace {

struct http_result {
  CURLcode code = CURLE_OK;
  long status = 0;
  std::string body;
};

size_t append_body(char* data, size_t size, size_t nmemb, void* user) {
  static_cast<std::string*>(user)->append(data, size * nmemb);
  return size * nmemb;
}

/// One request with a fresh connection. `body` empty means GET. `auth` is
/// the Authorization value, or whole header lines ("x-api-key: K") when it
/// holds a colon; several separated by '\n'.
http_result fetch(const std::string& url, const std::string& body = {},
                  const std::string& auth = {}, long timeout_ms = 10000) {
  http_result res;
  CURL* curl = curl_easy_init();
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  if (!auth.empty() && auth.find(':') == std::string::npos)
    headers = curl_slist_append(headers, ("Authorization: " + auth).c_str());
  else if (!auth.empty())
    for (size_t pos = 0; pos < auth.size();) {
      auto end = std::min(auth.find('\n', pos), auth.size());
      headers = curl_slist_append(headers, auth.substr(pos, end - pos).c_str());
      pos = end + 1;
    }
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &res.body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
  if (!body.empty()) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  res.code = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &res.status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return res;
}

std::string chat_body(const std::string& prompt, bool stream, const std::string& extra = {}) {
  // The prompts below need no JSON escaping except the quotes we avoid.
  return R"({"model":"mock-1","messages":[{"role":"system","content":"be brief"},)"
         R"({"role":"user","content":")"
         + prompt + R"("}],"stream":)" + (stream ? "true" : "false") + extra + "}";
}

/// The `data: ` payloads of an SSE body.
std::vector<std::string> sse_data(const std::string& body) {
  std::vector<std::string> result;
  size_t pos = 0;
  while (pos < body.size()) {
    auto end = body.find("\n\n", pos);
    if (end == std::string::npos)
      break;
    auto event = body.substr(pos, end - pos);
    if (event.rfind("data: ", 0) == 0)
      result.push_back(event.substr(6));
    pos = end + 2;
  }
  return result;
}

/// The concatenated delta contents of streamed chunks.
std::string streamed_content(const std::vector<std::string>& events) {
  std::string result;
  for (auto& ev : events) {
    rapidjson::Document doc;
    if (doc.Parse(ev.c_str()).HasParseError() || !doc.IsObject())
      continue;
    for (auto& choice : doc["choices"].GetArray()) {
      auto& delta = choice["delta"];
      if (delta.HasMember("content"))
        result += delta["content"].GetString();
    }
  }
  return result;
}

rapidjson::Document parse(const std::string& text) {
  rapidjson::Document doc;
  doc.Parse(text.c_str());
  REQUIRE_MESSAGE(!doc.HasParseError(), "not JSON: " << text);
  return doc;
}

uint64_t stat(const mock_process& mock, const char* key) {
  auto doc = parse(fetch(mock.url("/stats")).body);
  return doc[key].GetUint64();
}

struct curl_global {
  curl_global() {
    curl_global_init(CURL_GLOBAL_DEFAULT);
  }
} curl_global_instance;

} // namespace

// -- pure logic -----------------------------------------------------------------

TEST_CASE("mock_llm: reply tokens echo the words, then fillers, exactly n") {
  CHECK(reply_tokens("hi there", 5)
        == std::vector<std::string>{"Echo:", " hi", " there", " w3", " w4"});
  CHECK(reply_tokens("  a\tb\nc  ", 3) == std::vector<std::string>{"Echo:", " a", " b"});
  CHECK(reply_tokens("", 2) == std::vector<std::string>{"Echo:", " w1"});
}

TEST_CASE("mock_llm: directives are removed and applied") {
  chat_request req;
  std::string text = "hello [[mock tokens=5 delay_ms=100 fail=stall]] world";
  take_directives(text, req);
  CHECK(split_words(text).size() == 2);
  CHECK(req.tokens == 5);
  CHECK(req.delay_ms == 100);
  CHECK(req.fail == fail_mode::stall);
  auto s = effective_settings(req, reply_settings{});
  CHECK(s.tokens == 5);
  CHECK(s.ttft_ms == 20);
  std::string other = "[[mockery]] stays";
  take_directives(other, req);
  CHECK(other == "[[mockery]] stays");
}

TEST_CASE("mock_llm: a bad body is an error, not a crash") {
  chat_request req;
  CHECK(parse_chat_request("{nope", req).has_value());
  CHECK(parse_chat_request(R"({"model":"x"})", req).has_value());
  CHECK(!parse_chat_request(R"({"messages":[]})", req).has_value());
}

// -- the server -----------------------------------------------------------------

TEST_CASE("mock_llm: streamed reply follows the spec byte for byte") {
  mock_process mock{{"--tokens", "7", "--ttft-ms", "5", "--token-delay-ms", "1"}};
  auto prompt = std::string{"hello <b>w\xc3\xb6rld</b> & co"};
  auto res = fetch(mock.url("/v1/chat/completions"),
                   chat_body(prompt, true, R"(,"stream_options":{"include_usage":true})"));
  REQUIRE(res.code == CURLE_OK);
  CHECK(res.status == 200);
  auto events = sse_data(res.body);
  // 7 tokens, final, usage, [DONE]
  REQUIRE(events.size() == 10);
  CHECK(streamed_content(events) == "Echo: hello <b>w\xc3\xb6rld</b> & co w5 w6");
  auto first = parse(events[0]);
  auto created = std::to_string(first["created"].GetInt64());
  auto id = std::string{first["id"].GetString()};
  CHECK(id.rfind("chatcmpl-mock-", 0) == 0);
  CHECK(
      events[0]
      == R"({"id":")" + id + R"(","object":"chat.completion.chunk","created":)" + created
             + R"(,"model":"mock-1","choices":[{"index":0,"delta":{"role":"assistant","content":"Echo:"},"finish_reason":null}]})");
  CHECK(
      events[1]
      == R"({"id":")" + id + R"(","object":"chat.completion.chunk","created":)" + created
             + R"(,"model":"mock-1","choices":[{"index":0,"delta":{"content":" hello"},"finish_reason":null}]})");
  CHECK(events[7]
        == R"({"id":")" + id + R"(","object":"chat.completion.chunk","created":)" + created
               + R"(,"model":"mock-1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})");
  // P: "be brief" (2) + 4 words of the prompt.
  CHECK(
      events[8]
      == R"({"id":")" + id + R"(","object":"chat.completion.chunk","created":)" + created
             + R"(,"model":"mock-1","choices":[],"usage":{"prompt_tokens":6,"completion_tokens":7,"total_tokens":13}})");
  CHECK(events[9] == "[DONE]");
  CHECK(stat(mock, "completed") == 1);
  CHECK(stat(mock, "streams_started") == 1);
  CHECK(mock.stop() == 0);
}

TEST_CASE("mock_llm: non-streaming reply, max_tokens cuts with finish_reason length") {
  mock_process mock{{"--ttft-ms", "1", "--token-delay-ms", "0"}};
  auto res
      = fetch(mock.url("/v1/chat/completions"), chat_body("hi there", false, R"(,"max_tokens":5)"));
  REQUIRE(res.code == CURLE_OK);
  CHECK(res.status == 200);
  auto doc = parse(res.body);
  CHECK(std::string{doc["object"].GetString()} == "chat.completion");
  auto& choice = doc["choices"][0];
  CHECK(std::string{choice["message"]["content"].GetString()} == "Echo: hi there w3 w4");
  CHECK(std::string{choice["finish_reason"].GetString()} == "length");
  CHECK(doc["usage"]["completion_tokens"].GetInt() == 5);
  CHECK(doc["usage"]["prompt_tokens"].GetInt() == 4);
  auto full = parse(fetch(mock.url("/v1/chat/completions"), chat_body("hi", false)).body);
  CHECK(std::string{full["choices"][0]["finish_reason"].GetString()} == "stop");
  CHECK(split_words(full["choices"][0]["message"]["content"].GetString()).size() == 24);
}

TEST_CASE("mock_llm: a directive overrides length and timing and is not echoed") {
  mock_process mock{{"--ttft-ms", "1", "--token-delay-ms", "1"}};
  auto t0 = std::chrono::steady_clock::now();
  auto res = fetch(mock.url("/v1/chat/completions"),
                   chat_body("hello [[mock tokens=3 delay_ms=100]] there", true));
  auto took = std::chrono::steady_clock::now() - t0;
  REQUIRE(res.code == CURLE_OK);
  CHECK(streamed_content(sse_data(res.body)) == "Echo: hello there");
  CHECK(took >= 200ms);
  CHECK(took < 2s);
}

TEST_CASE("mock_llm: fail modes: http500 every 2nd request, mid-stream, 429") {
  mock_process mock{
      {"--fail", "http500", "--fail-every", "2", "--ttft-ms", "1", "--token-delay-ms", "1"}};
  auto url = mock.url("/v1/chat/completions");
  CHECK(fetch(url, chat_body("a", false)).status == 200);
  auto failed = fetch(url, chat_body("a", true));
  CHECK(failed.status == 500);
  CHECK(parse(failed.body)["error"]["message"].IsString());
  CHECK(fetch(url, chat_body("a", false)).status == 200);
  auto mid = fetch(url, chat_body("a [[mock fail=mid-stream tokens=10]]", true));
  CHECK(mid.code != CURLE_OK); // the chunked body never ends
  CHECK(mid.status == 200);
  CHECK(streamed_content(sse_data(mid.body)) == "Echo: a w2 w3 w4");
  CHECK(mid.body.find("[DONE]") == std::string::npos);
  CHECK(fetch(url, chat_body("a [[mock fail=http429]]", true)).status == 429);
}

namespace {

/// Closes the connection (by failing the write callback) once the first
/// token arrived.
size_t abort_after_first(char*, size_t size, size_t nmemb, void* user) {
  auto& seen = *static_cast<std::string*>(user);
  seen.append(size * nmemb, 'x');
  return 0;
}

} // namespace

TEST_CASE("mock_llm: a client closing mid-stream counts as aborted at once") {
  mock_process mock{{"--ttft-ms", "1"}};
  // 2 s between tokens: detection must come from the socket, not a write.
  auto body = chat_body("bye [[mock delay_ms=2000]]", true);
  std::string seen;
  CURL* curl = curl_easy_init();
  auto url = mock.url("/v1/chat/completions");
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, abort_after_first);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &seen);
  CHECK(curl_easy_perform(curl) == CURLE_WRITE_ERROR);
  curl_easy_cleanup(curl); // closes the connection
  auto t0 = std::chrono::steady_clock::now();
  while (stat(mock, "aborted") == 0 && std::chrono::steady_clock::now() - t0 < 1s)
    std::this_thread::sleep_for(10ms);
  CHECK(stat(mock, "aborted") == 1);
  CHECK(std::chrono::steady_clock::now() - t0 < 500ms);
  CHECK(stat(mock, "active") == 0);
  CHECK(stat(mock, "completed") == 0);
  // A stalled stream the client times out on counts the same.
  auto stalled = fetch(url, chat_body("x [[mock fail=stall]]", true), {}, 300);
  CHECK(stalled.code == CURLE_OPERATION_TIMEDOUT);
  t0 = std::chrono::steady_clock::now();
  while (stat(mock, "aborted") < 2 && std::chrono::steady_clock::now() - t0 < 1s)
    std::this_thread::sleep_for(10ms);
  CHECK(stat(mock, "aborted") == 2);
  auto reset = parse(fetch(mock.url("/stats/reset"), "{}").body);
  CHECK(reset["aborted"].GetInt() == 0);
  CHECK(reset["requests"].GetInt() == 0);
}

TEST_CASE("mock_llm: models, 404, bad JSON, api key, keep-alive") {
  mock_process mock{{"--api-key", "sekret", "--ttft-ms", "0", "--token-delay-ms", "0"}};
  CHECK(fetch(mock.url("/v1/models")).status == 401);
  auto models = fetch(mock.url("/v1/models"), {}, "Bearer sekret");
  CHECK(models.body == R"({"object":"list","data":[{"id":"mock-1","object":"model"}]})");
  CHECK(fetch(mock.url("/nope"), {}, "Bearer sekret").status == 404);
  auto bad = fetch(mock.url("/v1/chat/completions"), "{oops", "Bearer sekret");
  CHECK(bad.status == 400);
  CHECK(parse(bad.body)["error"]["type"].IsString());
  // Two requests on one connection: the second makes no new connect.
  CURL* curl = curl_easy_init();
  std::string out;
  auto url = mock.url("/v1/chat/completions");
  auto body = chat_body("k", true);
  curl_slist* headers = curl_slist_append(nullptr, "Authorization: Bearer sekret");
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &out);
  CHECK(curl_easy_perform(curl) == CURLE_OK);
  CHECK(curl_easy_perform(curl) == CURLE_OK);
  long connects = -1;
  curl_easy_getinfo(curl, CURLINFO_NUM_CONNECTS, &connects);
  CHECK(connects == 0);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  CHECK(sse_data(out).size() == 2 * 26);
}

// -- Anthropic Messages: POST /v1/messages ------------------------------------------

namespace {

const std::string anthropic_headers = "anthropic-version: 2023-06-01";

std::string messages_body(const std::string& prompt, bool stream, int max_tokens = 1024) {
  return R"({"model":"mock-1","max_tokens":)" + std::to_string(max_tokens)
         + R"(,"system":"be brief","messages":[)"
           R"({"role":"user","content":")"
         + prompt + R"("}],"stream":)" + (stream ? "true" : "false") + "}";
}

/// The (event name, data) pairs of an SSE body with `event:` lines.
std::vector<std::pair<std::string, std::string>> named_events(const std::string& body) {
  std::vector<std::pair<std::string, std::string>> result;
  size_t pos = 0;
  while (pos < body.size()) {
    auto end = body.find("\n\n", pos);
    if (end == std::string::npos)
      break;
    auto event = body.substr(pos, end - pos);
    auto nl = event.find('\n');
    if (event.rfind("event: ", 0) == 0 && nl != std::string::npos
        && event.compare(nl + 1, 6, "data: ") == 0)
      result.emplace_back(event.substr(7, nl - 7), event.substr(nl + 7));
    pos = end + 2;
  }
  return result;
}

std::string anthropic_text(const std::vector<std::pair<std::string, std::string>>& events) {
  std::string result;
  for (auto& [name, data] : events)
    if (name == "content_block_delta")
      result += parse(data)["delta"]["text"].GetString();
  return result;
}

} // namespace

TEST_CASE("mock_llm anthropic: streamed reply follows the spec byte for byte") {
  mock_process mock{{"--tokens", "7", "--ttft-ms", "5", "--token-delay-ms", "1"}};
  auto prompt = std::string{"hello <b>w\xc3\xb6rld</b> & co"};
  auto res = fetch(mock.url("/v1/messages"), messages_body(prompt, true), anthropic_headers);
  REQUIRE(res.code == CURLE_OK);
  CHECK(res.status == 200);
  auto events = named_events(res.body);
  // message_start, content_block_start, ping, 7 deltas, content_block_stop,
  // message_delta, message_stop
  REQUIRE(events.size() == 13);
  for (auto& [name, data] : events)
    CHECK(std::string{parse(data)["type"].GetString()} == name);
  CHECK(anthropic_text(events) == "Echo: hello <b>w\xc3\xb6rld</b> & co w5 w6");
  auto id = std::string{parse(events[0].second)["message"]["id"].GetString()};
  CHECK(id.rfind("msg_mock_", 0) == 0);
  // P: "be brief" (2) + 4 words of the prompt.
  CHECK(
      events[0].second
      == R"({"type":"message_start","message":{"id":")" + id
             + R"(","type":"message","role":"assistant","model":"mock-1","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":6,"output_tokens":1}}})");
  CHECK(events[1].second
        == R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})");
  CHECK(events[2].first == "ping");
  CHECK(events[2].second == R"({"type":"ping"})");
  CHECK(
      events[3].second
      == R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Echo:"}})");
  CHECK(
      events[4].second
      == R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" hello"}})");
  CHECK(events[10].second == R"({"type":"content_block_stop","index":0})");
  CHECK(
      events[11].second
      == R"({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":7}})");
  CHECK(events[12].second == R"({"type":"message_stop"})");
  CHECK(stat(mock, "requests") == 1);
  CHECK(stat(mock, "streams_started") == 1);
  CHECK(stat(mock, "completed") == 1);
  CHECK(mock.stop() == 0);
}

TEST_CASE("mock_llm anthropic: non-streaming message, max_tokens, errors, key") {
  mock_process mock{{"--api-key", "sekret", "--ttft-ms", "1", "--token-delay-ms", "0"}};
  auto url = mock.url("/v1/messages");
  auto key = anthropic_headers + "\nx-api-key: sekret";
  auto res = fetch(url, messages_body("hi there", false, 5), key);
  CHECK(res.status == 200);
  auto doc = parse(res.body);
  CHECK(std::string{doc["type"].GetString()} == "message");
  CHECK(std::string{doc["role"].GetString()} == "assistant");
  CHECK(std::string{doc["content"][0]["type"].GetString()} == "text");
  CHECK(std::string{doc["content"][0]["text"].GetString()} == "Echo: hi there w3 w4");
  CHECK(std::string{doc["stop_reason"].GetString()} == "max_tokens");
  CHECK(doc["usage"]["input_tokens"].GetInt() == 4);
  CHECK(doc["usage"]["output_tokens"].GetInt() == 5);
  auto full = parse(fetch(url, messages_body("hi", false), key).body);
  CHECK(std::string{full["stop_reason"].GetString()} == "end_turn");
  CHECK(split_words(full["content"][0]["text"].GetString()).size() == 24);
  // The key goes in x-api-key; Bearer is not enough here.
  auto no_key = fetch(url, messages_body("hi", true), anthropic_headers);
  CHECK(no_key.status == 401);
  CHECK(std::string{parse(no_key.body)["error"]["type"].GetString()} == "authentication_error");
  CHECK(fetch(url, messages_body("hi", true), "Bearer sekret").status == 401);
  auto no_version = fetch(url, messages_body("hi", true), "x-api-key: sekret");
  CHECK(no_version.status == 400);
  CHECK(std::string{parse(no_version.body)["type"].GetString()} == "error");
  auto bad = fetch(url, "{oops", key);
  CHECK(bad.status == 400);
  CHECK(std::string{parse(bad.body)["error"]["type"].GetString()} == "invalid_request_error");
  auto e500 = fetch(url, messages_body("a [[mock fail=http500]]", true), key);
  CHECK(e500.status == 500);
  CHECK(std::string{parse(e500.body)["error"]["type"].GetString()} == "api_error");
  CHECK(fetch(url, messages_body("a [[mock fail=http429]]", true), key).status == 429);
  // The OpenAI endpoint keeps its Bearer check.
  CHECK(fetch(mock.url("/v1/chat/completions"), chat_body("a", false), key).status == 401);
  CHECK(fetch(mock.url("/v1/chat/completions"), chat_body("a", false), "Bearer sekret").status
        == 200);
}

TEST_CASE("mock_llm anthropic: mid-stream cut, before-first, client abort") {
  mock_process mock{{"--ttft-ms", "1", "--token-delay-ms", "1"}};
  auto url = mock.url("/v1/messages");
  auto mid
      = fetch(url, messages_body("a [[mock fail=mid-stream tokens=10]]", true), anthropic_headers);
  CHECK(mid.code != CURLE_OK); // the chunked body never ends
  CHECK(mid.status == 200);
  auto events = named_events(mid.body);
  CHECK(anthropic_text(events) == "Echo: a w2 w3 w4");
  CHECK(events.back().first == "content_block_delta");
  auto first = fetch(url, messages_body("a [[mock fail=before-first]]", true), anthropic_headers);
  CHECK(first.code != CURLE_OK);
  CHECK(first.body.empty());
  // A stalled stream the client gives up on counts as aborted.
  auto stalled = fetch(url, messages_body("x [[mock fail=stall]]", true), anthropic_headers, 300);
  CHECK(stalled.code == CURLE_OPERATION_TIMEDOUT);
  auto t0 = std::chrono::steady_clock::now();
  while (stat(mock, "aborted") < 1 && std::chrono::steady_clock::now() - t0 < 1s)
    std::this_thread::sleep_for(10ms);
  CHECK(stat(mock, "aborted") == 1);
  CHECK(stat(mock, "active") == 0);
  CHECK(stat(mock, "requests") == 3);
  CHECK(stat(mock, "completed") == 0);
}

TEST_CASE("mock_llm anthropic: the plan without sockets") {
  chat_request req;
  REQUIRE_FALSE(parse_messages_request(
      R"({"model":"m","max_tokens":2,"system":[{"type":"text","text":"one two"}],"messages":[{"role":"user","content":[{"type":"text","text":"hi [[mock tokens=3]]"}]}],"stream":true})",
      req));
  CHECK(req.text == "hi ");
  CHECK(req.prompt_tokens == 3);
  auto plan = make_messages_plan(req, effective_settings(req, reply_settings{}), 9, true);
  CHECK(plan.stream);
  CHECK(plan.last == after_steps::finish);
  std::string all;
  for (auto& step : plan.steps)
    all += step.bytes;
  CHECK(all.find(R"("stop_reason":"max_tokens")") != std::string::npos);
  CHECK(all.find(R"("output_tokens":2})") != std::string::npos);
  CHECK(all.find("msg_mock_9") != std::string::npos);
  CHECK(all.size() > 5);
  CHECK(all.substr(all.size() - 5) == "0\r\n\r\n");
  CHECK(parse_messages_request("{nope", req).has_value());
}
