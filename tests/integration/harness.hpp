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

#include <rapidjson/document.h>

namespace chat::test {

using namespace std::chrono_literals;

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
  int pid_ = -1;
  std::string log_path_;
  bool exited_ = false;
};

/// The mock LLM and chatd, started fresh for one test.
struct service {
  struct options {
    std::vector<std::string> mock_args;           // e.g. {"--tokens", "8"}
    std::map<std::string, std::string> chatd_env; // extra settings
  };

  explicit service(options opts);
  service() : service(options{}) {}

  std::string token(const std::string& user, int64_t ttl = 3600) const;
  uint16_t port = 0;
  uint16_t mock_port = 0;
  std::string secret;
  std::unique_ptr<process> mock;
  std::unique_ptr<process> chatd;
};

/// The database URL of the test PostgreSQL (CHAT_TEST_DATABASE_URL).
std::string database_url();
/// The directory holding chatd and mock_llm (CHAT_BIN_DIR).
std::string bin_dir();
/// A fresh unique user id.
std::string unique_user();

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

/// A plain HTTP request to 127.0.0.1:port (Bearer token when given).
http_response http_request(uint16_t port, const std::string& method, const std::string& target,
                           const std::string& token = {});

/// Builds a `send` frame.
std::string send_frame(const std::string& client_msg_id, const std::string& content,
                       const std::string& conversation_id = {});

/// The mock LLM's deterministic reply (see ai/mock_llm/main.cpp) to `text`
/// with `tokens` tokens.
std::string mock_reply(const std::string& text, int tokens);

/// A string member of a JSON object ("" when missing).
std::string str(const rapidjson::Value& v, const char* key);
int64_t num(const rapidjson::Value& v, const char* key);

} // namespace chat::test
