// HTTP edge cases over a raw socket, as a client sends them: HEAD gets the
// headers without the body, an oversized request body gets 413 and oversized
// headers 431 instead of a dropped connection, bytes that are not HTTP get
// 400, slow-header clients (slowloris) are cut off.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "tests/integration/bystander.hpp"
#include "tests/integration/harness.hpp"

using namespace chat::test;

TEST_CASE("http: HEAD answers the headers of GET, with its Content-Length, and no body") {
  service svc;
  auto get = raw_exchange(svc.port, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  auto head = raw_exchange(svc.port, "HEAD / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  REQUIRE(get.rfind("HTTP/1.1 200", 0) == 0);
  REQUIRE(head.rfind("HTTP/1.1 200", 0) == 0);
  auto get_body = get.substr(get.find("\r\n\r\n") + 4);
  CHECK_FALSE(get_body.empty());
  auto end = head.find("\r\n\r\n");
  REQUIRE(end != std::string::npos);
  CHECK(head.size() == end + 4); // nothing after the headers
  CHECK(head.find("Content-Length: " + std::to_string(get_body.size()) + "\r\n")
        != std::string::npos);
}

TEST_CASE("http: a request body over the limit is answered 413 too_large") {
  service svc;
  std::string body(200 * 1024, 'x'); // the limit is 64 KiB
  auto res = raw_exchange(svc.port, "POST /api/v1/conversations HTTP/1.1\r\nHost: t\r\n"
                                    "Content-Type: application/json\r\nContent-Length: "
                                        + std::to_string(body.size()) + "\r\n\r\n" + body);
  CAPTURE(res.substr(0, 200));
  CHECK(res.rfind("HTTP/1.1 413", 0) == 0);
  CHECK(res.find("\"too_large\"") != std::string::npos);
  // The node goes on serving.
  CHECK(http_request(svc.port, "GET", "/healthz").status == 200);
}

TEST_CASE("http: headers over the limit get 431, bytes that are not HTTP get 400, and the node "
          "goes on serving") {
  service svc;
  auto big = raw_exchange(svc.port, "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: "
                                        + std::string(20 * 1024, 'x') + "\r\n\r\n");
  CAPTURE(big.substr(0, 200));
  CHECK(big.rfind("HTTP/1.1 431", 0) == 0);
  CHECK(big.find("\"too_large\"") != std::string::npos);
  auto garbage = raw_exchange(svc.port, "\x16\x03\x01\x02\x00 not HTTP at all\r\n\r\n");
  CAPTURE(garbage.substr(0, 200));
  CHECK(garbage.rfind("HTTP/1.1 400", 0) == 0);
  CHECK(garbage.find("\"bad_request\"") != std::string::npos);
  CHECK(http_request(svc.port, "GET", "/healthz").status == 200);
}

namespace {

/// The status of a WebSocket upgrade sent by hand with `extra` headers.
int upgrade_status(uint16_t port, const std::string& path, const std::string& extra) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  auto request = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port)
                 + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                 + extra + "\r\n";
  REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL)
          == static_cast<ssize_t>(request.size()));
  std::string out;
  char buf[1024];
  while (out.find("\r\n\r\n") == std::string::npos) {
    auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0)
      break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  REQUIRE(out.rfind("HTTP/1.1 ", 0) == 0);
  return std::stoi(out.substr(9, 3));
}

} // namespace

TEST_CASE("http: a browser may open the WebSocket only from an allowed origin") {
  service svc;
  auto path = svc.ws_path(unique_user());
  auto self = "http://127.0.0.1:" + std::to_string(svc.port);
  CHECK(upgrade_status(svc.port, path, "") == 101); // no Origin: not a browser
  CHECK(upgrade_status(svc.port, path, "Origin: " + self + "\r\n") == 101); // the page's own
  CHECK(upgrade_status(svc.port, path, "Origin: http://evil.example\r\n") == 403);
  CHECK(upgrade_status(svc.port, path, "Origin: http://127.0.0.1:1\r\n") == 403);

  service::options opts;
  opts.chatd_env["CHAT_ALLOWED_ORIGINS"] = "https://chat.example, http://localhost:3000";
  service listed{opts};
  auto listed_path = listed.ws_path(unique_user());
  CHECK(upgrade_status(listed.port, listed_path, "Origin: https://chat.example\r\n") == 101);
  CHECK(upgrade_status(listed.port, listed_path, "Origin: http://localhost:3000\r\n") == 101);
  CHECK(upgrade_status(listed.port, listed_path, "Origin: http://evil.example\r\n") == 403);
  CHECK(listed.chatd->log().find("\"reason\":\"origin\"") != std::string::npos);
}

TEST_CASE("http: 1,000 clients dribbling request headers (slowloris), half of them a "
          "WebSocket upgrade, are cut off after the request timeout while a user chats") {
  service::options opts;
  opts.chatd_env["CHAT_REQUEST_TIMEOUT"] = "2";
  opts.chatd_env["CHAT_USER_SENDS_PER_MIN"] = "0"; // the chatter sends without pause
  service svc{opts};
  // 1,000 sockets here: the soft open-files limit may be 1024.
  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = lim.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &lim);
  const int n = static_cast<int>(std::min<rlim_t>(1000, lim.rlim_cur - 100));
  auto upgrade = "GET " + svc.ws_path(unique_user())
                 + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(svc.port)
                 + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                   "X-Slow: ";
  std::vector<int> fds;
  for (int i = 0; i < n; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(svc.port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    std::string start = i % 2 == 0 ? upgrade : "GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ";
    ::send(fd, start.data(), start.size(), MSG_NOSIGNAL);
    fds.push_back(fd);
  }
  auto t0 = std::chrono::steady_clock::now();
  // A normal user chats the whole time.
  bystander calm{svc, "slow-", "hello [[mock tokens=3]]"};
  // One more byte every 250 ms, never the end of the headers.
  std::vector<bool> closed(n, false);
  int open = n;
  while (open > 0 && std::chrono::steady_clock::now() - t0 < 10s) {
    std::this_thread::sleep_for(250ms);
    for (int i = 0; i < n; ++i) {
      if (closed[i])
        continue;
      char c = 'x';
      char buf[512];
      auto r = ::recv(fds[i], buf, sizeof buf, MSG_DONTWAIT);
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
          || ::send(fds[i], &c, 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        closed[i] = true;
        --open;
      }
    }
  }
  auto took = std::chrono::steady_clock::now() - t0;
  calm.stop();
  MESSAGE((n - open) << " of " << n << " slow clients cut off after "
                     << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                     << " ms (request timeout 2 s); a user chatted " << calm.chats()
                     << " times meanwhile, " << calm.broken() << " broken");
  CHECK(open == 0);
  CHECK(calm.chats() > 0);
  CHECK(calm.broken() == 0);
  for (int fd : fds)
    ::close(fd);
  CHECK(http_request(svc.port, "GET", "/healthz").status == 200);
}
