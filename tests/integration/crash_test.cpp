// Crash safety and shutdown: what a user keeps when chatd dies (kill -9) or
// is stopped while a reply is being generated.

#include <signal.h>

#include <doctest/doctest.h>
#include <pqxx/pqxx>

#include "common/ids.hpp"
#include "gateway/jwt.hpp"
#include "tests/integration/harness.hpp"

using namespace chat::test;

namespace {

/// A chatd that can be killed and started again on the same database and
/// node id, with its own mock LLM.
struct restartable {
  std::string secret = "crash-test-secret-" + chat::new_uuid();
  std::string node = "node-" + chat::new_uuid().substr(0, 8);
  std::unique_ptr<process> mock;
  std::unique_ptr<process> chatd;
  uint16_t mock_port = 0;
  uint16_t port = 0;
  std::map<std::string, std::string> extra;

  explicit restartable(std::map<std::string, std::string> extra_env = {})
      : extra(std::move(extra_env)) {
    mock
        = std::make_unique<process>(bin_dir() + "/mock_llm",
                                    std::vector<std::string>{"--listen", "127.0.0.1:0", "--ttft-ms",
                                                             "5", "--token-delay-ms", "2"},
                                    std::map<std::string, std::string>{});
    auto line = mock->wait_for_line("listening on");
    mock_port = static_cast<uint16_t>(std::stoi(line.substr(line.rfind(':') + 1)));
    start();
  }

  void start() {
    std::map<std::string, std::string> env{
        {"DATABASE_URL", database_url()},
        {"CHAT_JWT_SECRET", secret},
        {"CHAT_LISTEN", "127.0.0.1:0"},
        {"CHAT_NODE_ID", node},
        {"OPENAI_BASE_URL", "http://127.0.0.1:" + std::to_string(mock_port) + "/v1"},
        {"CHAT_THREADS", "2"},
    };
    for (auto& kv : extra)
      env[kv.first] = kv.second;
    chatd = std::make_unique<process>(bin_dir() + "/chatd", std::vector<std::string>{}, env);
    auto line = chatd->wait_for_line("\"event\":\"listening\"");
    auto pos = line.find("127.0.0.1:") + 10;
    port = static_cast<uint16_t>(std::stoi(line.substr(pos)));
  }

  std::string token(const std::string& user) const {
    auto now = std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
    return chat::auth::make_token(user, secret, now, 3600);
  }
};

} // namespace

TEST_CASE(
    "crash: kill -9 mid-reply, restart: every acked message is there, the reply is interrupted") {
  restartable svc;
  auto user = unique_user();
  std::string conv;
  std::string reply_prefix;
  {
    ws_client ws;
    REQUIRE(ws.connect(svc.port, "/api/v1/chat/ws?token=" + svc.token(user)) == 101);
    ws.send_text(send_frame("k-1", "quick [[mock tokens=3]]"));
    auto ack1 = ws.read_until("ack");
    conv = str(ack1, "conversationId");
    ws.read_until("done");
    ws.send_text(send_frame("k-2", "slow [[mock delay_ms=60 tokens=200]]", conv));
    CHECK(num(ws.read_until("ack"), "seq") == 3);
    // Stream for well over one checkpoint interval (1 s).
    auto until = std::chrono::steady_clock::now() + 1800ms;
    while (std::chrono::steady_clock::now() < until) {
      auto f = ws.read_json();
      REQUIRE(str(f, "type") == "chunk");
      reply_prefix += str(f, "delta");
    }
    svc.chatd->signal(SIGKILL);
    CHECK(svc.chatd->wait(10s) == -2);
  }
  svc.start();
  CHECK(svc.chatd->log().find("replies_interrupted_recovered") != std::string::npos);
  ws_client ws;
  REQUIRE(ws.connect(svc.port, "/api/v1/chat/ws?token=" + svc.token(user)) == 101);
  ws.send_text(R"({"type":"subscribe","conversationId":")" + conv + R"(","afterSeq":0})");
  std::vector<rapidjson::Document> msgs;
  for (int i = 0; i < 4; ++i) {
    msgs.push_back(ws.read_json());
    CHECK(str(msgs.back(), "type") == "message");
    CHECK(num(msgs.back(), "seq") == i + 1);
  }
  CHECK(str(msgs[2], "content") == "slow [[mock delay_ms=60 tokens=200]]");
  auto& interrupted = msgs[3];
  CHECK(str(interrupted, "role") == "assistant");
  CHECK(str(interrupted, "finishReason") == "interrupted");
  auto kept = str(interrupted, "content");
  CHECK_FALSE(kept.empty());               // the checkpoint
  CHECK(reply_prefix.rfind(kept, 0) == 0); // a prefix of what was streamed
  // The conversation goes on with the next seqs.
  ws.send_text(send_frame("k-3", "after the crash", conv));
  CHECK(num(ws.read_until("ack"), "seq") == 5);
  CHECK(str(ws.read_until("done"), "finishReason") == "stop");
}

TEST_CASE("crash: a reply that outlives the drain timeout is stored interrupted, chatd exits 0") {
  restartable svc{{{"CHAT_DRAIN_TIMEOUT", "1"}}};
  auto user = unique_user();
  ws_client ws;
  REQUIRE(ws.connect(svc.port, "/api/v1/chat/ws?token=" + svc.token(user)) == 101);
  ws.send_text(send_frame("t-1", "endless [[mock delay_ms=50 tokens=1000]]"));
  auto conv = str(ws.read_until("ack"), "conversationId");
  ws.read_until("chunk");
  auto t0 = std::chrono::steady_clock::now();
  svc.chatd->signal(SIGTERM);
  auto done = ws.read_until("done", nullptr, 15s);
  CHECK(str(done, "finishReason") == "interrupted");
  CHECK_FALSE(ws.read(10s).has_value());
  CHECK(ws.close_code() == 1001);
  CHECK(svc.chatd->wait(15s) == 0);
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now()
                                                                    - t0);
  MESSAGE("SIGTERM to exit with a reply cut at the 1 s drain timeout: " << took.count() << " ms");
  pqxx::connection db{database_url()};
  pqxx::read_transaction tx{db};
  auto row = tx.exec_params1(
      "SELECT finish_reason, length(content) FROM messages WHERE conversation_id = $1 AND seq = 2",
      conv);
  CHECK(row[0].as<std::string>() == "interrupted");
  CHECK(row[1].as<int>() > 0);
}
