#pragma once
/// A WebSocket client over a raw socket, for tests of hostile clients: it
/// writes any frame (any opcode, any announced length, no answer to a close)
/// as fast as asked, tolerates the server closing meanwhile, and reads the
/// server's frames and the end of the TCP connection. Well-behaved clients
/// use ws_client (harness.hpp).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <doctest/doctest.h>

#include "tests/integration/harness.hpp"

namespace chat::test {

class raw_ws {
public:
  /// A server frame (unmasked, final: chatd never fragments).
  struct frame {
    int opcode = 0;
    std::string payload;
    /// The code of a close frame (0: none).
    int close_code() const {
      if (opcode != 0x8 || payload.size() < 2)
        return 0;
      return (static_cast<unsigned char>(payload[0]) << 8) | static_cast<unsigned char>(payload[1]);
    }
  };

  /// Connects and upgrades; REQUIREs a 101. `receive_buffer` > 0 sets
  /// SO_RCVBUF first (a client that then does not read fills the server's
  /// queue sooner).
  raw_ws(uint16_t port, const std::string& path, int receive_buffer = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    if (receive_buffer > 0)
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(write_all("GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port)
                      + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n"));
    auto deadline = std::chrono::steady_clock::now() + 10s;
    size_t end;
    while ((end = in_.find("\r\n\r\n")) == std::string::npos)
      REQUIRE_MESSAGE(fill(deadline), "no upgrade response");
    REQUIRE_MESSAGE(in_.rfind("HTTP/1.1 101", 0) == 0, in_.substr(0, end));
    in_.erase(0, end + 4);
  }
  ~raw_ws() {
    if (fd_ >= 0)
      ::close(fd_);
  }
  raw_ws(const raw_ws&) = delete;

  /// The header and mask of a client frame announcing `length` payload
  /// bytes (masked with a fixed key), without the payload.
  static std::string header(int opcode, uint64_t length, bool fin = true) {
    std::string h;
    h += static_cast<char>((fin ? 0x80 : 0) | opcode);
    if (length < 126) {
      h += static_cast<char>(0x80 | length);
    } else if (length <= 0xFFFF) {
      h += static_cast<char>(0x80 | 126);
      h += static_cast<char>(length >> 8);
      h += static_cast<char>(length & 0xFF);
    } else {
      h += static_cast<char>(0x80 | 127);
      for (int i = 7; i >= 0; --i)
        h += static_cast<char>((length >> (8 * i)) & 0xFF);
    }
    h.append(mask, 4);
    return h;
  }

  /// A whole masked client frame.
  static std::string encode(int opcode, const std::string& payload) {
    auto out = header(opcode, payload.size());
    for (size_t i = 0; i < payload.size(); ++i)
      out += static_cast<char>(payload[i] ^ mask[i % 4]);
    return out;
  }

  /// Writes bytes; false once the server no longer takes them (it closed).
  bool write_all(const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      auto n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0)
        return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }

  bool send(int opcode, const std::string& payload) {
    return write_all(encode(opcode, payload));
  }
  bool send_text(const std::string& text) {
    return send(0x1, text);
  }

  /// The next server frame, or nullopt when the connection ended (see
  /// ended()) or nothing came within `timeout`.
  std::optional<frame> read(std::chrono::milliseconds timeout = 10s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (auto f = parse())
        return f;
      if (!fill(deadline))
        return std::nullopt;
    }
  }

  /// Reads (and drops) whatever comes until the server ends the TCP
  /// connection (FIN or reset); false if it is still open after `timeout`.
  bool wait_closed(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!ended_)
      if (!fill(deadline) && !ended_)
        return false;
    return true;
  }

  /// The server ended the TCP connection (a read saw FIN or a reset).
  bool ended() const {
    return ended_;
  }

private:
  static constexpr char mask[4] = {0x11, 0x22, 0x33, 0x44};

  /// Reads what is there into in_, waiting until `deadline`; false on
  /// timeout or end.
  bool fill(std::chrono::steady_clock::time_point deadline) {
    if (ended_)
      return false;
    auto left = left_until(deadline);
    if (left.count() <= 0)
      return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0)
      return false;
    char buf[65536];
    auto n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      ended_ = true;
      return false;
    }
    in_.append(buf, static_cast<size_t>(n));
    return true;
  }

  std::optional<frame> parse() {
    if (in_.size() < 2)
      return std::nullopt;
    auto b1 = static_cast<unsigned char>(in_[1]) & 0x7F;
    size_t pos = 2;
    uint64_t len = b1;
    if (b1 == 126 || b1 == 127) {
      size_t n = b1 == 126 ? 2 : 8;
      if (in_.size() < 2 + n)
        return std::nullopt;
      len = 0;
      for (size_t i = 0; i < n; ++i)
        len = (len << 8) | static_cast<unsigned char>(in_[2 + i]);
      pos += n;
    }
    if (in_.size() < pos + len)
      return std::nullopt;
    frame f{static_cast<unsigned char>(in_[0]) & 0x0F, in_.substr(pos, len)};
    in_.erase(0, pos + len);
    return f;
  }

  int fd_ = -1;
  std::string in_;
  bool ended_ = false;
};

} // namespace chat::test
