#include "mock_process.hpp"

#include <doctest/doctest.h>

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

namespace chat::test {

mock_process::mock_process(std::vector<std::string> args) {
  const char* dir = std::getenv("CHAT_BIN_DIR");
  REQUIRE_MESSAGE(dir != nullptr, "CHAT_BIN_DIR is not set");
  std::string bin = std::string{dir} + "/mock_llm";
  args.insert(args.begin(), {bin, "--listen", "127.0.0.1:0"});
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    std::vector<char*> argv;
    for (auto& arg : args)
      argv.push_back(arg.data());
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  close(fds[1]);
  // The port line, within 5 s.
  std::string line;
  pollfd pfd{fds[0], POLLIN, 0};
  while (line.find('\n') == std::string::npos && poll(&pfd, 1, 5000) > 0) {
    char buf[256];
    auto n = read(fds[0], buf, sizeof(buf));
    if (n <= 0)
      break;
    line.append(buf, static_cast<size_t>(n));
  }
  close(fds[0]);
  std::string prefix = "mock_llm listening on 127.0.0.1:";
  REQUIRE_MESSAGE(line.rfind(prefix, 0) == 0, "mock_llm said: " << line);
  port = std::stoi(line.substr(prefix.size()));
  REQUIRE(port > 0);
}

mock_process::~mock_process() {
  stop();
}

int mock_process::stop() {
  if (pid < 0)
    return -1;
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  pid = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string mock_process::base() const {
  return "http://127.0.0.1:" + std::to_string(port);
}

} // namespace chat::test
