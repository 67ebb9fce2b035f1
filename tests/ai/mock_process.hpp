#pragma once
// The mock LLM server as a child process, for the tests that talk to it over
// HTTP (mock_llm_test, invoker_pool_test).

#include <sys/types.h>

#include <string>
#include <vector>

namespace chat::test {

/// A running `mock_llm --listen 127.0.0.1:0 ARGS...` (the binary found
/// through CHAT_BIN_DIR); SIGTERM on destruction.
struct mock_process {
  pid_t pid = -1;
  int port = 0;

  /// Starts the mock and reads its port line, within 5 s (REQUIRE on failure).
  explicit mock_process(std::vector<std::string> args = {});
  ~mock_process();

  mock_process(const mock_process&) = delete;
  mock_process& operator=(const mock_process&) = delete;

  /// SIGTERM and the exit status (0 expected); -1 when already stopped.
  int stop();

  /// "http://127.0.0.1:PORT".
  std::string base() const;

  /// base() + path.
  std::string url(const std::string& path) const {
    return base() + path;
  }
};

} // namespace chat::test
