// Faults at the front door, against the real chatd: descriptors running out,
// the node's connection limit (503) and the per-user limit (429). After each
// fault a user's conversation carries on whole.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include <doctest/doctest.h>

#include "tests/integration/harness.hpp"

using namespace chat::test;

namespace {

/// chatd's CPU time so far (user + system), in seconds, from /proc/PID/stat.
double cpu_seconds(int pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/stat"};
  std::string stat;
  std::getline(in, stat);
  // After "pid (comm) ", which may hold spaces: field 3 onwards; utime and
  // stime are fields 14 and 15.
  std::istringstream rest{stat.substr(stat.rfind(')') + 2)};
  std::vector<std::string> fields;
  for (std::string f; rest >> f;)
    fields.push_back(f);
  REQUIRE(fields.size() > 12);
  return (std::stod(fields[11]) + std::stod(fields[12]))
         / static_cast<double>(sysconf(_SC_CLK_TCK));
}

/// chatd's CPU use over `span`, in percent of one core.
double cpu_percent_over(int pid, std::chrono::milliseconds span) {
  auto c0 = cpu_seconds(pid);
  auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(span);
  auto c1 = cpu_seconds(pid);
  std::chrono::duration<double> wall = std::chrono::steady_clock::now() - t0;
  return 100.0 * (c1 - c0) / wall.count();
}

/// Plain TCP connections to chatd that never say anything.
class silent_connections {
public:
  silent_connections(uint16_t port, int n) {
    // This process holds them all: lift its own soft limit.
    rlimit lim{};
    getrlimit(RLIMIT_NOFILE, &lim);
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < n; ++i) {
      int fd = socket(AF_INET, SOCK_STREAM, 0);
      REQUIRE(fd >= 0);
      // The kernel completes the handshake from the listen backlog, even
      // while chatd cannot accept.
      REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
      fds_.push_back(fd);
    }
  }
  ~silent_connections() {
    close_all();
  }

  void close_all() {
    for (int fd : fds_)
      close(fd);
    fds_.clear();
  }

  /// Waits until chatd has closed `expected` of them (EOF or reset) or
  /// `timeout` passed; returns how many it closed.
  size_t wait_closed_by_server(size_t expected, std::chrono::milliseconds timeout) {
    std::vector<bool> closed(fds_.size(), false);
    size_t n = 0;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    do {
      for (size_t i = 0; i < fds_.size(); ++i) {
        pollfd p{fds_[i], POLLIN, 0};
        char c;
        if (!closed[i] && poll(&p, 1, 0) == 1 && recv(fds_[i], &c, 1, MSG_DONTWAIT) <= 0) {
          closed[i] = true;
          ++n;
        }
      }
      if (n >= expected)
        return n;
      std::this_thread::sleep_for(50ms);
    } while (left_until(deadline).count() > 0);
    return n;
  }

private:
  std::vector<int> fds_;
};

/// chatd under an open-files limit of 600 (soft and hard).
service::options with_600_files() {
  service::options opts;
  opts.chatd_prefix = {"/usr/bin/prlimit", "--nofile=600:600", "--"};
  return opts;
}

size_t count_lines(const std::string& log, const std::string& needle) {
  size_t n = 0;
  std::istringstream lines{log};
  for (std::string line; std::getline(lines, line);)
    n += line.find(needle) != std::string::npos;
  return n;
}

/// The value of a metric line `name value` in /metrics text (-1: absent).
int64_t metric(const std::string& text, const std::string& name) {
  auto pos = text.find("\n" + name + " ");
  if (pos == std::string::npos)
    return -1;
  return std::stoll(text.substr(pos + name.size() + 2));
}

/// Sends `content` into `conv` and reads its ack and complete reply.
void send_and_read_reply(ws_client& ws, const std::string& id, const std::string& content,
                         const std::string& conv) {
  ws.send_text(send_frame(id, content, conv));
  auto ack = ws.read_until("ack");
  CHECK(str(ack, "clientMsgId") == id);
  auto reply = read_reply_of(ws, str(ack, "messageId"));
  CHECK(reply.complete());
  CHECK(reply.finish_reason == "stop");
}

/// A WebSocket of `user`, retrying while the server is still letting go of
/// the connections it held.
std::unique_ptr<ws_client> connect_within(const service& svc, const std::string& user,
                                          std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto ws = std::make_unique<ws_client>();
    auto status = ws->connect(svc.port, svc.ws_path(user));
    if (status == 101)
      return ws;
    REQUIRE_MESSAGE(left_until(deadline).count() > 0, "still " << status << " after the fault");
    std::this_thread::sleep_for(100ms);
  }
}

} // namespace

TEST_CASE("integration: out of descriptors, chatd backs off instead of spinning, then recovers") {
  auto opts = with_600_files();
  opts.chatd_env["CHAT_MAX_CONNECTIONS"] = "100000"; // let accept() itself run out
  service svc{opts};
  CHECK(svc.chatd->wait_for_line("open_files_limit").find(R"("limit":600)") != std::string::npos);

  auto user = unique_user();
  ws_client ws;
  REQUIRE(ws.connect(svc.port, svc.ws_path(user)) == 101);
  ws.send_text(send_frame("fd-1", "before the fault [[mock tokens=5]]"));
  auto conv = str(ws.read_until("ack"), "conversationId");
  CHECK(read_reply_of(ws, "").complete());

  {
    silent_connections silent{svc.port, 700};
    svc.chatd->wait_for_line("accept_paused");
    auto cpu = cpu_percent_over(svc.chatd->pid(), 3s);
    MESSAGE("chatd CPU over 3 s with 700 silent connections against 600 files: " << cpu
                                                                                 << " % of a core");
    CHECK(cpu < 50);
    // One line for the episode, not one per failure.
    CHECK(count_lines(svc.chatd->log(), "accept_paused") == 1);
    CHECK(count_lines(svc.chatd->log(), "accept_failed") == 0);
  }
  // The silent connections are gone: accepting works again, said once.
  auto resumed = svc.chatd->wait_for_line("accept_resumed");
  CHECK(resumed.find(R"("failures":)") != std::string::npos);
  CHECK(resumed.find(R"("failures":0)") == std::string::npos);

  auto again = connect_within(svc, user, 10s);
  send_and_read_reply(*again, "fd-2", "after the fault [[mock tokens=5]]", conv);
  CHECK(check_history_whole(conv) == 4);
  auto metrics = http_request(svc.port, "GET", "/metrics").body;
  CHECK(metric(metrics, "chat_accept_failures_total") > 0);
  CHECK(metric(metrics, "chat_accept_paused") == 0);
}

TEST_CASE("integration: past CHAT_MAX_CONNECTIONS new connections get 503, probes still answer") {
  auto opts = with_600_files();
  opts.chatd_env["CHAT_MAX_CONNECTIONS"] = "400";
  service svc{opts};
  auto user = unique_user();
  ws_client ws;
  REQUIRE(ws.connect(svc.port, svc.ws_path(user)) == 101);
  ws.send_text(send_frame("mc-1", "before the fault [[mock tokens=5]]"));
  auto conv = str(ws.read_until("ack"), "conversationId");
  CHECK(read_reply_of(ws, "").complete());

  {
    silent_connections silent{svc.port, 700};
    auto cpu = cpu_percent_over(svc.chatd->pid(), 3s);
    MESSAGE("chatd CPU over 3 s with 700 silent connections, CHAT_MAX_CONNECTIONS 400: "
            << cpu << " % of a core");
    CHECK(cpu < 50);
    // Those past the limit said nothing and were let go quickly; the 399
    // within it stay open (the HTTP read timeout is 30 s).
    CHECK(silent.wait_closed_by_server(700 - 399, 10s) == 700 - 399);

    auto refused = http_request(svc.port, "GET", "/api/v1/models", svc.token(user));
    CHECK(refused.status == 503);
    CHECK(refused.body.find(R"("code":"unavailable")") != std::string::npos);
    ws_client late;
    CHECK(late.connect(svc.port, svc.ws_path(unique_user())) == 503);
    CHECK(http_request(svc.port, "GET", "/healthz").status == 200);
    auto metrics = http_request(svc.port, "GET", "/metrics").body;
    CHECK(metric(metrics, "chat_node_connections_open") == 400);
    CHECK(metric(metrics, "chat_node_connections_max") == 400);
    CHECK(metric(metrics, R"(chat_connections_refused_total{reason="max_connections"})")
          >= 700 - 399 + 2);
    // The user already connected is not affected.
    send_and_read_reply(ws, "mc-2", "during the fault [[mock tokens=5]]", conv);
  }
  auto again = connect_within(svc, user, 10s);
  send_and_read_reply(*again, "mc-3", "after the fault [[mock tokens=5]]", conv);
  CHECK(check_history_whole(conv) == 6);
}

TEST_CASE("integration: past CHAT_MAX_CONNECTIONS_PER_USER the upgrade gets 429, others connect") {
  service::options opts;
  opts.chatd_env["CHAT_MAX_CONNECTIONS_PER_USER"] = "2";
  service svc{opts};
  auto user = unique_user();
  ws_client a;
  ws_client b;
  ws_client c;
  REQUIRE(a.connect(svc.port, svc.ws_path(user)) == 101);
  REQUIRE(b.connect(svc.port, svc.ws_path(user)) == 101);
  CHECK(c.connect(svc.port, svc.ws_path(user)) == 429);
  ws_client other;
  CHECK(other.connect(svc.port, svc.ws_path(unique_user())) == 101);
  // The two still work.
  a.send_text(send_frame("pu-1", "hello [[mock tokens=3]]"));
  auto conv = str(a.read_until("ack"), "conversationId");
  CHECK(read_reply_of(a, "").complete());

  a.cut();
  auto d = connect_within(svc, user, 5s);
  send_and_read_reply(*d, "pu-2", "again [[mock tokens=3]]", conv);
  CHECK(check_history_whole(conv) == 4);
  auto metrics = http_request(svc.port, "GET", "/metrics").body;
  CHECK(metric(metrics, R"(chat_connections_refused_total{reason="max_connections_per_user"})")
        >= 1);
}

TEST_CASE("integration: a bad CHAT_MAX_CONNECTIONS or CHAT_MAX_CONNECTIONS_PER_USER exits 2") {
  for (auto name : {"CHAT_MAX_CONNECTIONS", "CHAT_MAX_CONNECTIONS_PER_USER"}) {
    CAPTURE(name);
    process p{bin_dir() + "/chatd",
              {},
              {{"DATABASE_URL", database_url()},
               {"CHAT_JWT_SECRET", "0123456789abcdef0123456789abcdef0123"},
               {"CHAT_LISTEN", "127.0.0.1:0"},
               {name, "0"}}};
    CHECK(p.wait(10s) == 2);
    CHECK(p.log().find(name) != std::string::npos);
  }
}
