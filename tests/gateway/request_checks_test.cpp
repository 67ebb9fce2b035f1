#include "gateway/request_checks.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <doctest/doctest.h>

#include "gateway/jwt.hpp"

using namespace chat::gateway;
namespace beast = boost::beast;

namespace {

/// A connection whose peer sends `bytes` (then closes), `chunk` bytes per
/// read: what http::async_read sees on a socket, synchronously.
class byte_stream {
public:
  byte_stream(std::string bytes, size_t chunk) : bytes_(std::move(bytes)), chunk_(chunk) {}

  template<class Buffers>
  size_t read_some(const Buffers& buffers, beast::error_code& ec) {
    ec = {};
    if (pos_ == bytes_.size()) {
      ec = boost::asio::error::eof;
      return 0;
    }
    size_t n = 0;
    for (auto b : beast::buffers_range_ref(buffers)) {
      auto take = std::min({b.size(), bytes_.size() - pos_, chunk_ - n});
      std::memcpy(b.data(), bytes_.data() + pos_, take);
      pos_ += take;
      n += take;
    }
    return n;
  }
  template<class Buffers>
  size_t read_some(const Buffers& buffers) {
    beast::error_code ec;
    auto n = read_some(buffers, ec);
    if (ec)
      throw beast::system_error{ec};
    return n;
  }

private:
  std::string bytes_;
  size_t chunk_;
  size_t pos_ = 0;
};

struct read_result {
  beast::error_code ec;
  size_t buffered = 0; // the most the read buffer held
  request req;
};

/// Reads one request as http_session does: its parser limits, its buffer.
read_result read_request(std::string bytes, size_t max_body = 64 * 1024,
                         size_t buffer_limit = max_read_buffer_bytes) {
  byte_stream s{std::move(bytes), 4096};
  beast::flat_buffer buffer{buffer_limit};
  request_parser p;
  limit_request_parser(p, max_body);
  read_result r;
  while (!p.is_done()) {
    beast::http::read_some(s, buffer, p, r.ec);
    r.buffered = std::max(r.buffered, buffer.size());
    if (r.ec)
      return r;
  }
  r.req = p.release();
  return r;
}

request upgrade_request() {
  request req{beast::http::verb::get, "/api/v1/chat/ws", 11};
  req.set(beast::http::field::host, "127.0.0.1:8080");
  req.set(beast::http::field::upgrade, "websocket");
  req.set(beast::http::field::connection, "Upgrade");
  req.set(beast::http::field::sec_websocket_key, "dGhlIHNhbXBsZSBub25jZQ==");
  req.set(beast::http::field::sec_websocket_version, "13");
  return req;
}

} // namespace

TEST_CASE("request checks: Origin") {
  CHECK(origin_allowed("", "127.0.0.1:8080", {})); // not a browser
  CHECK(origin_allowed("http://127.0.0.1:8080", "127.0.0.1:8080", {}));
  CHECK(origin_allowed("https://chat.example", "chat.example", {}));
  CHECK_FALSE(origin_allowed("https://evil.example", "chat.example", {}));
  CHECK_FALSE(origin_allowed("chat.example", "chat.example", {})); // no scheme
  CHECK_FALSE(origin_allowed("http://", "", {}));
  CHECK(origin_allowed("https://a.example", "chat.example", {"https://a.example"}));
  CHECK_FALSE(origin_allowed("https://chat.example", "chat.example", {"https://a.example"}));
  CHECK(origin_allowed("https://anything", "chat.example", {"https://a.example", "*"}));
  auto req = upgrade_request();
  req.set(beast::http::field::origin, "http://127.0.0.1:8080");
  CHECK(origin_allowed(req, {}));
  req.set(beast::http::field::host, "localhost:8080");
  CHECK_FALSE(origin_allowed(req, {}));
}

TEST_CASE("request checks: WebSocket upgrade") {
  CHECK(check_upgrade(upgrade_request()).status == 0);
  auto old = upgrade_request();
  old.set(beast::http::field::sec_websocket_version, "8");
  CHECK(check_upgrade(old).status == 426);
  auto post = upgrade_request();
  post.method(beast::http::verb::post);
  CHECK(check_upgrade(post).status == 400);
  auto no_key = upgrade_request();
  no_key.erase(beast::http::field::sec_websocket_key);
  CHECK(check_upgrade(no_key).status == 400);
  auto http10 = upgrade_request();
  http10.version(10);
  CHECK(check_upgrade(http10).status == 400);
}

TEST_CASE("request checks: the longest token fits in the headers") {
  // Beast's default header limit (8 KiB) refused a token of
  // auth::max_token_bytes in Authorization.
  std::string token(chat::auth::max_token_bytes, 'a');
  auto r = read_request("GET /api/v1/conversations HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
                        + token + "\r\n\r\n");
  REQUIRE_FALSE(r.ec);
  CHECK(r.req[beast::http::field::authorization].size() == token.size() + 7);
  auto q = read_request("GET /api/v1/chat/ws?token=" + token + " HTTP/1.1\r\nHost: t\r\n\r\n");
  CHECK_FALSE(q.ec);
}

TEST_CASE("request checks: headers and the read buffer are bounded") {
  // Headers that never end: refused at the header limit; the buffer never
  // holds more than its bound.
  std::string endless = "GET / HTTP/1.1\r\nHost: t\r\nX-Slow: " + std::string(1 << 20, 'x');
  auto r = read_request(endless);
  CHECK(r.ec == beast::http::error::header_limit);
  CHECK(r.buffered <= max_read_buffer_bytes);
  CHECK(r.buffered <= max_header_bytes + 4096); // one read past the limit at most
  // Many small header lines: the same.
  std::string lines = "GET / HTTP/1.1\r\nHost: t\r\n";
  while (lines.size() < 200 * 1024)
    lines += "X-A: b\r\n";
  CHECK(read_request(lines).ec == beast::http::error::header_limit);
  // A body over the limit: refused (413), and never buffered whole.
  std::string big
      = "POST /api/v1/conversations HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n"
        + std::string(1000000, '{');
  auto b = read_request(big);
  CHECK(b.ec == beast::http::error::body_limit);
  CHECK(b.buffered <= max_read_buffer_bytes);
  // A chunked body whose chunk header never ends (an endless extension):
  // Beast's header limit does not cover chunk headers, so with an unbounded
  // buffer (as http_session had) it buffers all it is sent, here 1 MiB,
  // without end on a real socket. The bounded buffer stops it at 64 KiB.
  std::string chunked = "POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5;a="
                        + std::string(1 << 20, 'x');
  auto c = read_request(chunked);
  CHECK(c.ec == beast::http::error::buffer_overflow);
  CHECK(c.buffered <= max_read_buffer_bytes);
  auto unbounded = read_request(chunked, 64 * 1024, std::numeric_limits<size_t>::max());
  CHECK(unbounded.buffered > (1 << 20));
  // A body within the limit, sent in pieces, passes through the buffer.
  std::string ok
      = "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 60000\r\n\r\n" + std::string(60000, 'b');
  auto o = read_request(ok);
  REQUIRE_FALSE(o.ec);
  CHECK(o.req.body().size() == 60000);
}

TEST_CASE("request checks: a request that cannot be read is answered with why, a closed or "
          "timed-out one is not") {
  auto status_of
      = [](const std::string& bytes) { return refusal_for(read_request(bytes).ec).status; };
  CHECK(status_of("GET / HTTP/1.1\r\nHost: t\r\nX-Slow: " + std::string(1 << 20, 'x')) == 431);
  CHECK(status_of("POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n"
                  + std::string(1000000, '{'))
        == 413);
  CHECK(status_of("POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5;a="
                  + std::string(1 << 20, 'x'))
        == 413);
  CHECK(status_of("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 TLS, not HTTP\r\n\r\n") == 400);
  CHECK(status_of("GET / HTTP/1.1\r\nHost t\r\n\r\n") == 400);            // no colon
  CHECK(status_of("GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n") == 400); // bad length
  // Nobody to answer: the peer closed mid-request, or before one.
  CHECK(status_of("GET / HTTP/1.1\r\nHost: t\r\n") == 0);
  CHECK(status_of("") == 0);
  CHECK(refusal_for(boost::asio::error::connection_reset).status == 0);
  CHECK(refusal_for(beast::error::timeout).status == 0);
}
