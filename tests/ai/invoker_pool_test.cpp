// The invoker pool against the real mock LLM (build/bin/mock_llm, found
// through CHAT_BIN_DIR): a real actor system, a scoped_actor as the sink.
#include "ai/invoker_pool.hpp"

#include <doctest/doctest.h>

#include <caf/all.hpp>
#include <curl/curl.h>
#include <rapidjson/document.h>

#include <chrono>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "mock_process.hpp"

using namespace chat;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using chat::test::mock_process;

namespace {

// -- the mock LLM's counters ---------------------------------------------------

/// GET /stats as a map of counters.
std::map<std::string, int64_t> stats(const mock_process& mock) {
  std::string body;
  auto* curl = curl_easy_init();
  auto url = mock.url("/stats");
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(
      curl, CURLOPT_WRITEFUNCTION, +[](char* p, size_t size, size_t nmemb, void* user) -> size_t {
        static_cast<std::string*>(user)->append(p, size * nmemb);
        return size * nmemb;
      });
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_perform(curl);
  curl_easy_cleanup(curl);
  std::map<std::string, int64_t> out;
  rapidjson::Document doc;
  doc.Parse(body.c_str());
  if (doc.IsObject())
    for (auto& m : doc.GetObject())
      if (m.value.IsInt64())
        out[m.name.GetString()] = m.value.GetInt64();
  return out;
}

/// Polls /stats until `key` reaches `min` or `timeout` passes.
int64_t wait_for_stat(const mock_process& mock, const std::string& key, int64_t min,
                      std::chrono::milliseconds timeout) {
  auto deadline = clock_type::now() + timeout;
  int64_t value = 0;
  while ((value = stats(mock)[key]) < min && clock_type::now() < deadline)
    std::this_thread::sleep_for(20ms);
  return value;
}

// -- expected replies ---------------------------------------------------------

/// The mock's reply to `text` with `n` tokens (see mock_llm --help).
std::string expected_reply(const std::string& text, int n) {
  std::istringstream in{text};
  std::string out = "Echo:";
  int i = 1;
  for (std::string word; i < n && in >> word; ++i)
    out += " " + word;
  for (; i < n; ++i)
    out += " w" + std::to_string(i);
  return out;
}

// -- the actor side -----------------------------------------------------------

struct system_config : caf::actor_system_config {
  system_config() {
    // Lower latency on 2 cores than work stealing (TOOLCHAIN.md 2).
    set("scheduler.policy", caf::atom("sharing"));
  }
};

struct stream_result {
  std::vector<std::string> chunks;
  bool done = false;
  generation_outcome outcome;
  int chunks_after_done = 0;

  std::string content() const {
    std::string out;
    for (auto& c : chunks)
      out += c;
    return out;
  }
};

struct fixture {
  system_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  std::map<std::string, stream_result> results;

  ai::pool_config config(const mock_process& mock) {
    ai::pool_config pc;
    pc.openai.base_url = mock.base() + "/v1";
    // As ANTHROPIC_BASE_URL: without /v1 (a trailing slash is fine).
    pc.anthropic.base_url = mock.base() + "/";
    pc.invokers = 2;
    pc.retries = 0; // retries have their own cases, which turn them on
    pc.retry_base = 10ms;
    return pc;
  }

  /// Sends `generate` (sink: self, a scoped actor that takes any message,
  /// so it may stand in for a typed reply_sink) and returns the invoker's
  /// handle.
  caf::actor generate(const ai_actor& pool, const std::string& id, const std::string& text,
                      const std::string& provider = "openai") {
    return generate(pool, id, std::vector<chat_turn>{{"user", text}}, provider);
  }

  caf::actor generate(const ai_actor& pool, const std::string& id, std::vector<chat_turn> messages,
                      const std::string& provider) {
    generation_request req;
    req.stream_id = id;
    req.model = "mock-1";
    req.provider = provider;
    req.messages = std::move(messages);
    caf::actor invoker;
    self->request(pool, 5s, generate_atom::value, std::move(req),
                  caf::actor_cast<reply_sink>(caf::actor{self}))
        .receive([&](caf::actor& inv) { invoker = std::move(inv); },
                 [&](caf::error& err) { FAIL("generate failed: " << sys.render(err)); });
    return invoker;
  }

  /// Receives chunks and dones until `n` streams are done or `timeout`.
  /// Returns the number of streams done.
  size_t collect(size_t n, std::chrono::milliseconds timeout = 10s) {
    auto deadline = clock_type::now() + timeout;
    auto done_count = [&] {
      size_t k = 0;
      for (auto& [id, r] : results)
        k += r.done ? 1 : 0;
      return k;
    };
    bool timed_out = false;
    while (done_count() < n && !timed_out) {
      auto left
          = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
      receive_one(std::max(left, 0ms), timed_out);
    }
    return done_count();
  }

  /// Whatever arrives within `d` (to see that nothing follows a done).
  void drain(std::chrono::milliseconds d) {
    bool timed_out = false;
    while (!timed_out)
      receive_one(d, timed_out);
  }

  /// Waits (at most 5 s) for the first chunk of `id`.
  void wait_first_chunk(const std::string& id) {
    bool timed_out = false;
    while (results[id].chunks.empty() && !timed_out)
      receive_one(5s, timed_out);
    REQUIRE_FALSE(timed_out);
  }

  // -- checks shared by both providers -----------------------------------------

  /// An 8-token reply 20 ms apart: content, several chunks, usage, nothing
  /// after the done.
  void check_chunks_and_usage(const ai_actor& pool, const std::string& id,
                              const std::string& provider) {
    auto inv
        = generate(pool, id, "[[mock tokens=8 ttft_ms=0 delay_ms=20]] hello there world", provider);
    CHECK(inv != nullptr);
    REQUIRE(collect(1) == 1);
    auto& r = results[id];
    CHECK(r.outcome.error_message.empty());
    CHECK(r.content() == expected_reply("hello there world", 8));
    CHECK(r.content() == "Echo: hello there world w4 w5 w6 w7");
    CHECK(r.chunks.size() >= 4); // 20 ms apart: not coalesced into one read
    CHECK(r.outcome.finish_reason == "stop");
    CHECK(r.outcome.prompt_tokens == 3);
    CHECK(r.outcome.completion_tokens == 8);
    drain(50ms);
    CHECK(r.chunks_after_done == 0);
  }

  /// HTTP 500 and 429 end in error, no chunks; the message is ours,
  /// "provider returned HTTP CODE", without the provider's text.
  void check_http_errors(const ai_actor& pool, const std::string& provider) {
    generate(pool, "e500", "[[mock fail=http500]] hi", provider);
    generate(pool, "e429", "[[mock fail=http429]] hi", provider);
    REQUIRE(collect(2) == 2);
    for (auto [id, code] : {std::pair<std::string, std::string>{"e500", "500"}, {"e429", "429"}}) {
      auto& r = results[id];
      CHECK(r.chunks.empty());
      CHECK(r.outcome.finish_reason == "error");
      CHECK(r.outcome.error_message == "provider returned HTTP " + code);
      CHECK(r.outcome.error_code == "provider_error");
    }
  }

  /// "cut" fails mid-stream and keeps the start of the reply; "b4" fails
  /// before its first token.
  void check_cut_streams(const ai_actor& pool, const std::string& provider) {
    generate(pool, "cut", "[[mock tokens=10 ttft_ms=0 delay_ms=10 fail=mid-stream]] a b c",
             provider);
    generate(pool, "b4", "[[mock tokens=10 fail=before-first]] a b c", provider);
    REQUIRE(collect(2) == 2);
    auto& r = results["cut"];
    CHECK(r.outcome.finish_reason == "error");
    CHECK(r.outcome.error_message == "provider stream ended early");
    CHECK_FALSE(r.chunks.empty());
    // What arrived is the start of the reply.
    CHECK(expected_reply("a b c", 10).rfind(r.content(), 0) == 0);
    CHECK(r.content().size() < expected_reply("a b c", 10).size());
    CHECK(results["b4"].outcome.finish_reason == "error");
    CHECK(results["b4"].chunks.empty());
  }

  /// A cancel at the owning invoker after the first chunk ends the stream
  /// "cancelled", and the mock sees the connection close.
  void check_cancel_aborts(const mock_process& mock, const ai_actor& pool,
                           const std::string& provider) {
    auto inv = generate(pool, "c1", "[[mock tokens=500 ttft_ms=0 delay_ms=10]] go", provider);
    wait_first_chunk("c1");
    self->send(inv, ai_cancel_atom::value, std::string{"c1"});
    REQUIRE(collect(1, 2s) == 1);
    auto& r = results["c1"];
    CHECK(r.outcome.finish_reason == "cancelled");
    CHECK(r.outcome.error_message.empty());
    drain(100ms);
    CHECK(r.chunks_after_done == 0);
    CHECK(r.content().size() < expected_reply("go", 500).size());
    CHECK(wait_for_stat(mock, "aborted", 1, 2s) >= 1);
    CHECK(wait_for_stat(mock, "active", 0, 0ms) == 0);
  }

  void receive_one(std::chrono::milliseconds timeout, bool& timed_out) {
    self->receive(
        [&](ai_chunk_atom, const std::string& id, const std::string& delta) {
          CHECK_FALSE(delta.empty());
          auto& r = results[id];
          if (r.done)
            ++r.chunks_after_done;
          r.chunks.push_back(delta);
        },
        [&](ai_done_atom, const std::string& id, const generation_outcome& out) {
          auto& r = results[id];
          CHECK_FALSE_MESSAGE(r.done, "second done for " << id);
          r.done = true;
          r.outcome = out;
        },
        caf::after(timeout) >> [&] { timed_out = true; });
  }
};

} // namespace

TEST_CASE_FIXTURE(fixture, "ai invoker: content, several chunks, usage") {
  mock_process mock;
  auto pool = ai::spawn_invoker_pool(sys, config(mock));
  check_chunks_and_usage(pool, "s1", "openai");
}

TEST_CASE_FIXTURE(fixture, "ai invoker: 50 concurrent streams on one pool") {
  mock_process mock;
  auto pool = ai::spawn_invoker_pool(sys, config(mock));
  constexpr int streams = 50;
  constexpr int tokens = 20;
  std::set<caf::actor> invokers;
  auto start = clock_type::now();
  for (int i = 0; i < streams; ++i)
    invokers.insert(generate(pool, "s" + std::to_string(i),
                             "[[mock tokens=20 ttft_ms=20 delay_ms=10]] stream " + std::to_string(i)
                                 + " says hi"));
  REQUIRE(collect(streams, 20s) == streams);
  auto ms
      = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - start).count();
  // Each stream alone takes ~210 ms (20 ms + 19 x 10 ms).
  MESSAGE("50 streams x 20 tokens, 2 invokers: " << ms << " ms");
  CHECK(invokers.size() == 2); // round robin over both invokers
  size_t chunks = 0;
  for (int i = 0; i < streams; ++i) {
    auto& r = results["s" + std::to_string(i)];
    CHECK(r.content() == expected_reply("stream " + std::to_string(i) + " says hi", tokens));
    CHECK(r.outcome.finish_reason == "stop");
    CHECK(r.outcome.completion_tokens == tokens);
    chunks += r.chunks.size();
  }
  MESSAGE("chunk messages: " << chunks << " for " << streams * tokens << " tokens");
  CHECK(ms < 5000);
  CHECK(stats(mock)["completed"] == streams);
}

TEST_CASE_FIXTURE(fixture, "ai invoker: HTTP 500 and 429 end in error") {
  mock_process mock;
  auto pool = ai::spawn_invoker_pool(sys, config(mock));
  check_http_errors(pool, "openai");
}

TEST_CASE_FIXTURE(fixture, "ai invoker: a stream cut mid-way keeps its chunks") {
  mock_process mock;
  auto pool = ai::spawn_invoker_pool(sys, config(mock));
  check_cut_streams(pool, "openai");
}

TEST_CASE_FIXTURE(fixture, "ai invoker: stall and first-token timeouts") {
  mock_process mock;
  auto cfg = config(mock);
  cfg.idle_timeout = 300ms;
  cfg.first_token_timeout = 400ms;
  auto pool = ai::spawn_invoker_pool(sys, cfg);
  auto start = clock_type::now();
  generate(pool, "stall", "[[mock tokens=10 ttft_ms=0 delay_ms=10 fail=stall]] x");
  generate(pool, "slow", "[[mock tokens=3 ttft_ms=5000]] x");
  REQUIRE(collect(2, 5s) == 2);
  auto elapsed = clock_type::now() - start;
  CHECK(elapsed < 2s);
  auto& r = results["stall"];
  CHECK(r.outcome.finish_reason == "error");
  CHECK(r.outcome.error_message == "provider timed out");
  CHECK_FALSE(r.chunks.empty());
  CHECK(results["slow"].outcome.finish_reason == "error");
  CHECK(results["slow"].outcome.error_message == "provider timed out");
  CHECK(results["slow"].chunks.empty());
}

TEST_CASE_FIXTURE(fixture, "ai invoker: cancel aborts the provider request") {
  mock_process mock;
  auto pool = ai::spawn_invoker_pool(sys, config(mock));
  check_cancel_aborts(mock, pool, "openai");
}

TEST_CASE_FIXTURE(fixture, "ai invoker: cancel via the pool handle, unknown ids") {
  mock_process mock;
  auto pool = ai::spawn_invoker_pool(sys, config(mock));
  self->send(pool, ai_cancel_atom::value, std::string{"nope"}); // ignored
  generate(pool, "p0", "[[mock tokens=500 ttft_ms=0 delay_ms=10]] a");
  generate(pool, "p1", "[[mock tokens=500 ttft_ms=0 delay_ms=10]] b");
  std::this_thread::sleep_for(50ms);
  self->send(pool, ai_cancel_atom::value, std::string{"p0"});
  self->send(pool, ai_cancel_atom::value, std::string{"p1"});
  REQUIRE(collect(2, 2s) == 2);
  CHECK(results["p0"].outcome.finish_reason == "cancelled");
  CHECK(results["p1"].outcome.finish_reason == "cancelled");
  CHECK(wait_for_stat(mock, "aborted", 2, 2s) >= 2);
}

TEST_CASE_FIXTURE(fixture, "ai invoker: a dead sink's streams are aborted") {
  mock_process mock;
  auto pool = ai::spawn_invoker_pool(sys, config(mock));
  {
    caf::scoped_actor sink{sys};
    generation_request req;
    req.stream_id = "orphan";
    req.model = "mock-1";
    req.provider = "openai";
    req.messages = {{"user", "[[mock tokens=500 ttft_ms=0 delay_ms=10]] x"}};
    sink->request(pool, 5s, generate_atom::value, req,
                  caf::actor_cast<reply_sink>(caf::actor{sink}))
        .receive([](caf::actor&) {}, [](caf::error&) { FAIL("no invoker"); });
    CHECK(wait_for_stat(mock, "streams_started", 1, 2s) == 1);
  } // the sink terminates here
  CHECK(wait_for_stat(mock, "aborted", 1, 3s) >= 1);
}

TEST_CASE_FIXTURE(fixture, "ai invoker: the API key is sent and never leaked") {
  const std::string key = "sk-test-0123456789abcdef";
  mock_process mock{{"--api-key", key}};
  auto cfg = config(mock);
  cfg.openai.api_key = key;
  auto good = ai::spawn_invoker_pool(sys, cfg);
  cfg.openai.api_key = "sk-wrong-key-should-not-leak";
  auto bad = ai::spawn_invoker_pool(sys, cfg);
  cfg.openai.api_key.clear();
  auto none = ai::spawn_invoker_pool(sys, cfg);
  generate(good, "good", "[[mock tokens=4]] hi");
  generate(bad, "bad", "[[mock tokens=4]] hi");
  generate(none, "none", "[[mock tokens=4]] hi");
  REQUIRE(collect(3) == 3);
  CHECK(results["good"].outcome.finish_reason == "stop");
  CHECK(results["good"].content() == "Echo: hi w2 w3");
  for (std::string id : {"bad", "none"}) {
    auto& out = results[id].outcome;
    CHECK(out.finish_reason == "error");
    CHECK(out.error_message == "provider returned HTTP 401");
  }
}

TEST_CASE_FIXTURE(fixture, "ai invoker: unreachable provider, other providers") {
  ai::pool_config cfg;
  cfg.openai.base_url = "http://127.0.0.1:1/v1"; // nothing listens there
  cfg.anthropic.base_url = "http://127.0.0.1:1";
  cfg.invokers = 1;
  cfg.retry_base = 1ms; // connection errors are retried (3 times): quickly here
  auto pool = ai::spawn_invoker_pool(sys, cfg);
  generate(pool, "down", "hi");
  generate(pool, "anth", "hi", "anthropic");
  generate(pool, "what", "hi", "acme");
  REQUIRE(collect(3) == 3);
  CHECK(results["down"].outcome.finish_reason == "error");
  CHECK(results["down"].outcome.error_message == "provider unreachable");
  CHECK(results["anth"].outcome.finish_reason == "error");
  CHECK(results["anth"].outcome.error_message == "provider unreachable");
  CHECK(results["what"].outcome.error_message == "unknown provider");
}

TEST_CASE_FIXTURE(fixture, "ai invoker: streams outlive a dropped pool handle") {
  mock_process mock;
  {
    auto pool = ai::spawn_invoker_pool(sys, config(mock));
    generate(pool, "late", "[[mock tokens=10 ttft_ms=50 delay_ms=10]] bye");
  } // the last handle is gone; the invoker lives until its stream ends
  REQUIRE(collect(1, 5s) == 1);
  CHECK(results["late"].outcome.finish_reason == "stop");
  CHECK(results["late"].content() == expected_reply("bye", 10));
  // The invoker (and its driver) now goes away from the driver's own
  // thread, racing with the system's shutdown: must not crash or hang.
}

// -- provider "anthropic": POST {base}/v1/messages against the mock ---------------

TEST_CASE_FIXTURE(fixture, "ai invoker anthropic: content, several chunks, usage") {
  mock_process mock;
  auto pool = ai::spawn_invoker_pool(sys, config(mock));
  check_chunks_and_usage(pool, "a1", "anthropic");
  auto counters = stats(mock);
  CHECK(counters["requests"] == 1);
  CHECK(counters["completed"] == 1);
}

TEST_CASE_FIXTURE(fixture, "ai invoker anthropic: history is merged, system on top") {
  mock_process mock{{"--ttft-ms", "0", "--token-delay-ms", "0"}};
  auto pool = ai::spawn_invoker_pool(sys, config(mock));
  // Sent as system "be brief", user "one\n\ntwo", assistant "Echo: one",
  // user "three four [[mock tokens=5]]". The mock counts the words it got
  // (P, system included); the exact body is checked in
  // anthropic_stream_test.cpp.
  generate(pool, "h",
           {{"assistant", "Welcome aboard"},
            {"system", "be brief"},
            {"user", "one"},
            {"user", "two"},
            {"assistant", ""},
            {"assistant", "Echo: one"},
            {"user", "three four [[mock tokens=5]]"}},
           "anthropic");
  REQUIRE(collect(1) == 1);
  auto& r = results["h"];
  CHECK(r.outcome.finish_reason == "stop");
  CHECK(r.content() == "Echo: three four w3 w4");
  // be brief (2) + one two (2) + Echo: one (2) + three four (2); not Welcome aboard.
  CHECK(r.outcome.prompt_tokens == 8);
  CHECK(r.outcome.completion_tokens == 5);
}

TEST_CASE_FIXTURE(fixture, "ai invoker anthropic: HTTP 500 and 429 end in error") {
  mock_process mock;
  auto pool = ai::spawn_invoker_pool(sys, config(mock));
  check_http_errors(pool, "anthropic");
}

TEST_CASE_FIXTURE(fixture, "ai invoker anthropic: a stream cut mid-way keeps its chunks") {
  mock_process mock;
  auto pool = ai::spawn_invoker_pool(sys, config(mock));
  check_cut_streams(pool, "anthropic");
  CHECK(results["cut"].outcome.prompt_tokens == 3); // message_start arrived
  CHECK(results["b4"].outcome.error_message == "provider stream ended early");
}

TEST_CASE_FIXTURE(fixture, "ai invoker anthropic: cancel aborts the provider request") {
  mock_process mock;
  auto pool = ai::spawn_invoker_pool(sys, config(mock));
  check_cancel_aborts(mock, pool, "anthropic");
}

TEST_CASE_FIXTURE(fixture, "ai invoker anthropic: x-api-key is sent and never leaked") {
  const std::string key = "sk-ant-test-0123456789abcdef";
  mock_process mock{{"--api-key", key}};
  auto cfg = config(mock);
  cfg.anthropic.api_key = key;
  auto good = ai::spawn_invoker_pool(sys, cfg);
  cfg.anthropic.api_key = "sk-ant-wrong-key-should-not-leak";
  auto bad = ai::spawn_invoker_pool(sys, cfg);
  cfg.anthropic.api_key.clear();
  cfg.openai.api_key = key; // the other provider's key is not sent here
  auto none = ai::spawn_invoker_pool(sys, cfg);
  generate(good, "good", "[[mock tokens=4]] hi", "anthropic");
  generate(bad, "bad", "[[mock tokens=4]] hi", "anthropic");
  generate(none, "none", "[[mock tokens=4]] hi", "anthropic");
  REQUIRE(collect(3) == 3);
  CHECK(results["good"].outcome.finish_reason == "stop");
  CHECK(results["good"].content() == "Echo: hi w2 w3");
  for (std::string id : {"bad", "none"}) {
    auto& out = results[id].outcome;
    CHECK(out.finish_reason == "error");
    CHECK(out.error_message == "provider returned HTTP 401");
  }
}

TEST_CASE_FIXTURE(fixture, "ai invoker anthropic: streams of both providers at once") {
  mock_process mock;
  auto pool = ai::spawn_invoker_pool(sys, config(mock));
  for (int i = 0; i < 20; ++i)
    generate(pool, "m" + std::to_string(i),
             "[[mock tokens=12 ttft_ms=10 delay_ms=5]] mixed " + std::to_string(i),
             i % 2 == 0 ? "openai" : "anthropic");
  REQUIRE(collect(20, 10s) == 20);
  for (int i = 0; i < 20; ++i) {
    auto& r = results["m" + std::to_string(i)];
    CHECK(r.content() == expected_reply("mixed " + std::to_string(i), 12));
    CHECK(r.outcome.finish_reason == "stop");
    CHECK(r.outcome.completion_tokens == 12);
  }
  CHECK(stats(mock)["completed"] == 20);
}

// -- faults: timeouts, retries, limits, untrusted text ------------------------------

TEST_CASE_FIXTURE(fixture, "ai invoker faults: keep-alives do not keep a stalled stream alive") {
  mock_process mock;
  auto cfg = config(mock);
  cfg.idle_timeout = 500ms; // the mock sends ": keep-alive" every 200 ms
  auto pool = ai::spawn_invoker_pool(sys, cfg);
  generate(pool, "ka", "[[mock fail=keepalive ttft_ms=0]] hello");
  REQUIRE(collect(1, 10s) == 1);
  auto& r = results["ka"];
  CHECK(r.outcome.finish_reason == "error");
  CHECK(r.outcome.error_message == "provider timed out");
  CHECK(r.outcome.error_code == "provider_error");
  CHECK(r.content() == "Echo:"); // the first token is kept
  // Aborted at the provider: the mock sees its connection closed.
  CHECK(wait_for_stat(mock, "aborted", 1, 3s) == 1);
  CHECK(stats(mock)["active"] == 0);
}

TEST_CASE_FIXTURE(fixture, "ai invoker faults: the whole-reply timeout ends a steady stream") {
  mock_process mock;
  auto cfg = config(mock);
  cfg.reply_timeout = 600ms; // tokens every 20 ms: never idle
  auto pool = ai::spawn_invoker_pool(sys, cfg);
  generate(pool, "long", "[[mock tokens=1000 ttft_ms=0 delay_ms=20]] on and on");
  REQUIRE(collect(1, 10s) == 1);
  auto& r = results["long"];
  CHECK(r.outcome.finish_reason == "error");
  CHECK(r.outcome.error_message == "provider timed out");
  CHECK_FALSE(r.chunks.empty());
  CHECK(expected_reply("on and on", 1000).rfind(r.content(), 0) == 0);
  CHECK(wait_for_stat(mock, "aborted", 1, 3s) == 1);
}

TEST_CASE_FIXTURE(fixture, "ai invoker faults: 429 with Retry-After, then success: one reply") {
  // The 2nd request fails (--fail-every 2): a first stream takes the 1st.
  mock_process mock{{"--fail", "http429", "--fail-every", "2", "--retry-after", "1"}};
  auto cfg = config(mock);
  cfg.retries = 3;
  cfg.retry_base = 1ms; // so the wait is Retry-After's 1 s
  auto pool = ai::spawn_invoker_pool(sys, cfg);
  generate(pool, "first", "[[mock tokens=3]] one");
  REQUIRE(collect(1) == 1);
  auto start = clock_type::now();
  for (auto provider : {"openai", "anthropic"}) {
    results.clear();
    generate(pool, "again", "[[mock tokens=6]] two three", provider);
    REQUIRE(collect(1, 10s) == 1);
    auto& r = results["again"];
    CHECK(r.outcome.finish_reason == "stop");
    CHECK(r.content() == expected_reply("two three", 6)); // once, whole
    MESSAGE(
        provider
        << ": 429 + Retry-After: 1 -> answered after "
        << std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - start).count()
        << " ms");
    start = clock_type::now();
  }
  // 1, then (429, retry) per provider.
  CHECK(stats(mock)["requests"] == 5);
  CHECK(stats(mock)["completed"] == 3);
}

TEST_CASE_FIXTURE(fixture, "ai invoker faults: retries are bounded, then the error is ours") {
  mock_process mock{{"--fail", "http500"}};
  auto cfg = config(mock);
  cfg.retries = 2;
  auto pool = ai::spawn_invoker_pool(sys, cfg);
  generate(pool, "e", "[[mock tokens=3]] x");
  REQUIRE(collect(1, 10s) == 1);
  CHECK(results["e"].outcome.finish_reason == "error");
  CHECK(results["e"].outcome.error_message == "provider returned HTTP 500");
  CHECK(results["e"].chunks.empty());
  CHECK(stats(mock)["requests"] == 3); // 1 + 2 retries
}

TEST_CASE_FIXTURE(fixture, "ai invoker faults: a failure after tokens is not retried") {
  mock_process mock;
  auto cfg = config(mock);
  cfg.retries = 3;
  auto pool = ai::spawn_invoker_pool(sys, cfg);
  generate(pool, "cut", "[[mock tokens=10 ttft_ms=0 delay_ms=5 fail=mid-stream]] a b c");
  REQUIRE(collect(1) == 1);
  auto& r = results["cut"];
  CHECK(r.outcome.finish_reason == "error");
  CHECK(r.outcome.error_message == "provider stream ended early");
  CHECK(expected_reply("a b c", 10).rfind(r.content(), 0) == 0);
  CHECK_FALSE(r.chunks.empty());
  CHECK(stats(mock)["requests"] == 1);
}

TEST_CASE_FIXTURE(fixture,
                  "ai invoker faults: a cancel during the backoff ends the stream at once") {
  mock_process mock;
  auto cfg = config(mock);
  cfg.retries = 3;
  auto pool = ai::spawn_invoker_pool(sys, cfg);
  auto inv = generate(pool, "wait", "[[mock fail=http429 retry_after=30]] x");
  REQUIRE(wait_for_stat(mock, "requests", 1, 3s) == 1);
  std::this_thread::sleep_for(100ms); // the 429 has arrived: now in its 30 s backoff
  self->send(inv, ai_cancel_atom::value, std::string{"wait"});
  REQUIRE(collect(1, 5s) == 1); // far less than the 30 s wait
  CHECK(results["wait"].outcome.finish_reason == "cancelled");
  CHECK(stats(mock)["requests"] == 1);
}

TEST_CASE_FIXTURE(fixture,
                  "ai invoker faults: max streams 1: a queued request waits, or is cancelled") {
  mock_process mock;
  auto cfg = config(mock);
  cfg.max_streams = 1; // the queue holds 1 too
  auto pool = ai::spawn_invoker_pool(sys, cfg);
  // Queued behind a short stream: runs when its slot frees (on the other invoker).
  generate(pool, "a", "[[mock tokens=5 ttft_ms=0 delay_ms=20]] a");
  generate(pool, "b", "[[mock tokens=5 ttft_ms=0 delay_ms=5]] b");
  REQUIRE(collect(2) == 2);
  CHECK(results["a"].outcome.finish_reason == "stop");
  CHECK(results["b"].outcome.finish_reason == "stop");
  CHECK(results["b"].content() == expected_reply("b", 5));
  CHECK(stats(mock)["requests"] == 2);
  results.clear();
  // Queued behind a long stream, then cancelled: never sent.
  auto long_inv = generate(pool, "long", "[[mock tokens=500 ttft_ms=0 delay_ms=10]] a");
  wait_first_chunk("long");
  auto queued_inv = generate(pool, "queued", "[[mock tokens=5]] never");
  self->send(queued_inv, ai_cancel_atom::value, std::string{"queued"});
  REQUIRE(collect(1, 2s) == 1);
  CHECK(results["queued"].outcome.finish_reason == "cancelled");
  CHECK(results["queued"].chunks.empty());
  // A full queue: the second waiter is answered "unavailable" at once.
  generate(pool, "waiting", "[[mock tokens=3]] later");
  generate(pool, "refused", "[[mock tokens=3]] no room");
  REQUIRE(collect(2, 2s) == 2);
  CHECK(results["refused"].outcome.finish_reason == "error");
  CHECK(results["refused"].outcome.error_code == "unavailable");
  CHECK(results["refused"].chunks.empty());
  self->send(long_inv, ai_cancel_atom::value, std::string{"long"});
  REQUIRE(collect(4, 5s) == 4);
  CHECK(results["long"].outcome.finish_reason == "cancelled");
  CHECK(results["waiting"].outcome.finish_reason == "stop"); // got the freed slot
  CHECK(results["waiting"].content() == expected_reply("later", 3));
  // The mock saw only "long" and "waiting" after the first two.
  CHECK(stats(mock)["requests"] == 4);
  // The other provider has its own slots.
  generate(pool, "other", "[[mock tokens=3]] elsewhere", "anthropic");
  REQUIRE(collect(5, 5s) == 5);
  CHECK(results["other"].outcome.finish_reason == "stop");
}

TEST_CASE_FIXTURE(fixture, "ai invoker faults: the context is cut by bytes, newest first") {
  mock_process mock{{"--ttft-ms", "0", "--token-delay-ms", "0"}};
  auto cfg = config(mock);
  cfg.context_bytes = 30;
  auto pool = ai::spawn_invoker_pool(sys, cfg);
  std::vector<chat_turn> turns{{"user", "one two three four five"}, // 23 bytes: cut
                               {"assistant", "six seven"},          // 9
                               {"user", "[[mock tokens=3]] a b"}};  // 21: always goes
  generate(pool, "ctx", turns, "openai");
  generate(pool, "ctx-a", turns, "anthropic");
  REQUIRE(collect(2) == 2);
  // The mock counts the words it got: "six seven" and "a b"; Anthropic's
  // request then drops the leading assistant turn (its first turn must be
  // the user's): "a b".
  CHECK(results["ctx"].outcome.prompt_tokens == 4);
  CHECK(results["ctx-a"].outcome.prompt_tokens == 2);
  CHECK(results["ctx"].content() == "Echo: a b");
}

TEST_CASE_FIXTURE(fixture, "ai invoker faults: invalid UTF-8 from a provider reaches us repaired") {
  mock_process mock;
  auto pool = ai::spawn_invoker_pool(sys, config(mock));
  generate(pool, "u", "[[mock fail=bad-utf8 tokens=6 delay_ms=5]] a b c d e", "openai");
  generate(pool, "v", "[[mock fail=bad-utf8 tokens=6 delay_ms=5]] a b c d e", "anthropic");
  REQUIRE(collect(2) == 2);
  const std::string fffd = "\xEF\xBF\xBD";
  // " a" + lone surrogate (3 x U+FFFD), " b" + 0xFF, " c" + "é" split in two events.
  auto expected = "Echo: a" + fffd + fffd + fffd + " b" + fffd + " c\xC3\xA9 d e";
  for (auto id : {"u", "v"}) {
    CHECK(results[id].outcome.finish_reason == "stop");
    CHECK(results[id].content() == expected);
  }
}
