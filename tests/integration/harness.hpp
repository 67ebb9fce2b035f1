#pragma once
/// Whole-system test harness: starts the real programs (mock_llm, chatd) as
/// child processes against the test PostgreSQL, and talks to them as a
/// client would (WebSocket and HTTP over loopback, Beast client side).

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/pqxx>
#include <rapidjson/document.h>

#include "common/json_fields.hpp"

namespace chat::test {

using namespace std::chrono_literals;
using json::num; // an integer member of a JSON object (-1 when missing)
using json::str; // a string member of a JSON object ("" when missing)

/// A child process with its stdout+stderr in a log file; killed (SIGKILL)
/// when destroyed unless it already exited.
class process {
public:
  process(const std::string& program, const std::vector<std::string>& args,
          const std::map<std::string, std::string>& env);
  ~process();
  process(const process&) = delete;

  /// Waits until a line of the log contains `needle`; returns that line.
  std::string wait_for_line(const std::string& needle, std::chrono::milliseconds timeout = 20s);
  /// The whole log so far.
  std::string log() const;
  void signal(int sig);
  /// Waits for exit; returns the exit status (or -1 on timeout, -2 on signal).
  int wait(std::chrono::milliseconds timeout);
  int pid() const {
    return pid_;
  }

private:
  /// Fails the test when a sanitizer build's process wrote a report.
  void check_sanitizers();
  int pid_ = -1;
  std::string log_path_;
  bool exited_ = false;
};

/// The mock LLM and chatd, started fresh for one test.
struct service {
  struct options {
    std::vector<std::string> mock_args;           // e.g. {"--tokens", "8"}
    std::map<std::string, std::string> chatd_env; // extra settings
    /// CHAT_NODE_ID; empty: chatd's default (the host name).
    std::string node_id;
    /// A command chatd runs under (full path first), e.g.
    /// {"/usr/bin/prlimit", "--nofile=600:600", "--"}; it must exec chatd
    /// so that the process id stays chatd's.
    std::vector<std::string> chatd_prefix;
  };

  explicit service(options opts);
  service() : service(options{}) {}
  /// Checks chatd's log and /metrics for leaks (tests/integration/leak_watch.hpp).
  ~service();

  /// Kills chatd if it still runs and starts it again with the same
  /// settings (database, secret, mock LLM, node id); updates `port`.
  void restart_chatd();
  /// The same, with some settings changed first (e.g. another CHAT_NODE_ID,
  /// as a container gets a new host name on every restart).
  void restart_chatd(const std::map<std::string, std::string>& changed_env);

  std::string token(const std::string& user, int64_t ttl = 3600) const;
  /// The WebSocket path with a fresh token of `user`.
  std::string ws_path(const std::string& user) const;
  uint16_t port = 0;
  uint16_t mock_port = 0;
  std::string secret;
  std::unique_ptr<process> mock;
  std::unique_ptr<process> chatd;

  static constexpr const char* openai_key = "sk-test-key-never-logged";
  static constexpr const char* anthropic_key = "sk-ant-test-key-never-logged";

private:
  void start_chatd();
  void check_for_leaks();
  size_t watch_from_ = 0;
  std::map<std::string, std::string> chatd_env_;
  std::vector<std::string> chatd_prefix_;
};

/// The database URL of the test PostgreSQL (CHAT_TEST_DATABASE_URL).
std::string database_url();
/// The directory holding chatd and mock_llm (CHAT_BIN_DIR).
std::string bin_dir();
/// A fresh unique user id.
std::string unique_user();
/// The time left until `deadline` (negative once it passed).
std::chrono::milliseconds left_until(std::chrono::steady_clock::time_point deadline);

/// A synchronous WebSocket client with timeouts.
class ws_client {
public:
  ws_client();
  ~ws_client();

  /// Opens ws://127.0.0.1:port/path; returns the HTTP status of the upgrade
  /// response (101 on success).
  int connect(uint16_t port, const std::string& path_and_query);
  void send_text(const std::string& text);
  void send_binary(const std::string& bytes);
  /// The next text frame, or nullopt on timeout or close.
  std::optional<std::string> read(std::chrono::milliseconds timeout = 10s);
  /// The next frame parsed as JSON (fails the test on timeout).
  rapidjson::Document read_json(std::chrono::milliseconds timeout = 10s);
  /// Reads until a frame with "type" == type arrives; returns it. Frames
  /// before it are appended to `skipped` when given.
  rapidjson::Document read_until(const std::string& type,
                                 std::vector<std::string>* skipped = nullptr,
                                 std::chrono::milliseconds timeout = 10s);
  /// The close code the server sent, once a read saw the close (0: none).
  int close_code() const;
  bool is_open() const;
  /// Drops the TCP connection without a close handshake.
  void cut();
  /// Sets SO_RCVBUF on the socket before connect() (0: the kernel default);
  /// a client that then does not read lets the server's queue fill.
  void set_receive_buffer(int bytes);

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

struct http_response {
  int status = 0;
  std::string body;
};

/// Sends `request` (raw bytes) to 127.0.0.1:port and returns everything
/// the server sends until it closes (or 10 s pass).
std::string raw_exchange(uint16_t port, const std::string& request);

/// A plain HTTP request to 127.0.0.1:port (Bearer token when given).
http_response http_request(uint16_t port, const std::string& method, const std::string& target,
                           const std::string& token = {});

/// Builds a `send` frame.
std::string send_frame(const std::string& client_msg_id, const std::string& content,
                       const std::string& conversation_id = {});
/// Builds a `subscribe` frame.
std::string subscribe_frame(const std::string& conv, int64_t after_seq);
/// Builds a `cancel` frame.
std::string cancel_frame(const std::string& conv, const std::string& message_id);

/// Parses a frame as JSON (fails the test when it is not).
rapidjson::Document parse(const std::string& text);

/// One reply as a client assembles it: chunks deduplicated by index (the
/// protocol allows resends after a subscribe), or a whole `message`.
struct assembled {
  std::string message_id;
  std::string reply_to;
  int64_t seq = 0;
  std::map<int64_t, std::string> chunks; // index -> delta (first copy)
  int64_t duplicates = 0;                // chunks dropped as already had
  int64_t out_of_order = 0;              // new chunks whose index was not the next one
  int dones = 0;
  int64_t done_chunks = -1;
  std::string finish_reason;
  bool whole_message = false; // arrived as a finished `message`
  std::string message_content;
  std::vector<std::string> other;  // other frames seen (raw)
  std::vector<std::string> errors; // error codes

  std::string content() const;
  /// Every index 0..done_chunks-1 present exactly once after dedupe.
  bool complete() const;
  /// Feeds one frame; returns true when the reply has ended (done, or the
  /// finished assistant message replying to `reply_to`).
  bool feed(const std::string& text);
};

/// Reads frames until the reply to `reply_to` (a user messageId; empty: the
/// first reply seen) ends.
assembled read_reply_of(ws_client& ws, const std::string& reply_to,
                        std::chrono::milliseconds timeout = 30s, assembled start = {});
/// Reads frames until the reply to `reply_to` (empty: the first reply seen)
/// has `n` chunks; it must not end before.
assembled read_chunks(ws_client& ws, const std::string& reply_to, size_t n);

/// Sends a ping and returns every frame that came before its pong.
std::vector<std::string> frames_before_pong(ws_client& ws, int nonce,
                                            std::chrono::milliseconds timeout = 10s);

/// Runs one read-only query on the test database; returns its rows.
template<class... Args>
pqxx::result db_query(const std::string& sql, Args&&... args) {
  pqxx::connection db{database_url()};
  pqxx::read_transaction tx{db};
  return tx.exec_params(sql, std::forward<Args>(args)...);
}

/// The same for a query that must return exactly one row.
template<class... Args>
pqxx::row db_query1(const std::string& sql, Args&&... args) {
  pqxx::connection db{database_url()};
  pqxx::read_transaction tx{db};
  return tx.exec_params1(sql, std::forward<Args>(args)...);
}

/// The conversation's history as the database holds it is whole: seqs
/// 1..n with no gap and no repeat, user and assistant alternating (user
/// first), every assistant reply finished and replying to the user message
/// before it. Checks with doctest (CHECK); returns n.
int64_t check_history_whole(const std::string& conversation_id);

/// The mock LLM's GET /stats counter `key`.
int64_t mock_stat(const service& svc, const char* key);

/// Polls the mock's /stats until `key` >= want (or `timeout`); returns the
/// last value.
int64_t wait_mock_stat(const service& svc, const char* key, int64_t want,
                       std::chrono::milliseconds timeout);

/// Provider requests that went on to stream a reply: the mock's requests
/// minus those its client closed first. A reply starts while its message
/// commits, so a repeated clientMsgId the conversation does not hold costs
/// one request, cancelled once the write says "repeat"; polls until the
/// count is `want` (the cancels arrive a moment later) or `timeout`.
int64_t provider_replies(const service& svc, int64_t want,
                         std::chrono::milliseconds timeout = std::chrono::seconds{3});

/// A gauge's value from the node's /metrics (-1 when absent).
int64_t gauge(uint16_t port, const std::string& name);

/// Waits until the node on `port` counts `n` live cluster members; returns
/// how long it took, in ms (fails the test after `timeout`).
int64_t wait_live_nodes(uint16_t port, int64_t n, std::chrono::milliseconds timeout = 15s);

/// The mock LLM's deterministic reply (see ai/mock_llm/main.cpp) to `text`
/// with `tokens` tokens.
std::string mock_reply(const std::string& text, int tokens);

} // namespace chat::test
