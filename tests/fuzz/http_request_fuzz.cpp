/// libFuzzer target: the HTTP request path up to the point where a request
/// reaches the actors. Raw bytes go through Beast's request parser with the
/// gateway's limits (request_checks.hpp: header and body limits, the
/// bounded read buffer), as http_session reads them, in pieces of any size
/// (the first input byte); each parsed request then goes through what
/// http_session does with it: the target split into path and query, the
/// path's segments, integer query parameters, the token from
/// `Authorization: Bearer` or `?token=`, the Origin check (own origin and a
/// list) and the WebSocket upgrade checks. Properties: no crash, leak or
/// undefined behaviour; the buffer never exceeds its bound; a parsed
/// request's headers are within the header limit and its body within the
/// body limit.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include "gateway/http_util.hpp"
#include "gateway/request_checks.hpp"
#include "tests/fuzz/fuzz_input.hpp"

namespace beast = boost::beast;
namespace http = boost::beast::http;
using namespace chat::gateway;

namespace {

constexpr size_t max_body = 64 * 1024; // gateway_config::max_body_bytes

std::string_view sv(beast::string_view s) {
  return {s.data(), s.size()};
}

/// What http_session::on_read, upgrade() and route() compute before any
/// actor is asked.
void check_request(const request& req) {
  CHAT_FUZZ_CHECK(req.body().size() <= max_body);
  auto t = parse_target(sv(req.target()));
  CHAT_FUZZ_CHECK(t.path.size() <= req.target().size());
  for (auto seg : split_path(t.path)) {
    CHAT_FUZZ_CHECK(!seg.empty());
    CHAT_FUZZ_CHECK(seg.find('/') == std::string_view::npos);
  }
  bool ok = true;
  if (auto limit = int_param(t, "limit", 1, 200, ok))
    CHAT_FUZZ_CHECK(ok && *limit >= 1 && *limit <= 200);
  (void)int_param(t, "before", 0, INT64_MAX, ok);
  auto token = find_token(sv(req[http::field::authorization]), t);
  CHAT_FUZZ_CHECK(token.size() <= max_header_bytes);
  (void)origin_allowed(req, {});
  (void)origin_allowed(req, {"https://chat.example", "http://127.0.0.1:8080"});
  CHAT_FUZZ_CHECK(origin_allowed(req, {"*"}));
  if (boost::beast::websocket::is_upgrade(req)) {
    auto refusal = check_upgrade(req);
    CHAT_FUZZ_CHECK(refusal.status == 0 || refusal.status == 400 || refusal.status == 426);
  }
  (void)req.keep_alive();
  (void)req.method_string();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  chat::fuzz::input in{data, size};
  size_t piece = 1 + in.byte() % 128;
  auto bytes = in.rest();

  // As http::async_read does on a keep-alive connection: read into the
  // bounded buffer, let the parser take what it can, one request after
  // another (pipelined requests share the buffer).
  beast::flat_buffer buffer{max_read_buffer_bytes};
  for (int requests = 0; requests < 8; ++requests) {
    request_parser parser;
    limit_request_parser(parser, max_body);
    parser.eager(true);
    beast::error_code ec;
    while (!parser.is_done()) {
      if (buffer.size() > 0) {
        auto used = parser.put(buffer.data(), ec);
        buffer.consume(used);
        if (ec == http::error::need_more)
          ec = {};
        if (ec)
          break;
        if (used > 0)
          continue;
      }
      if (bytes.empty()) {
        parser.put_eof(ec);
        break;
      }
      if (buffer.size() == buffer.max_size()) {
        ec = http::error::buffer_overflow; // what http::read reports
        break;
      }
      auto n = std::min({piece, bytes.size(), buffer.max_size() - buffer.size()});
      auto b = buffer.prepare(n);
      std::memcpy(b.data(), bytes.data(), n);
      buffer.commit(n);
      bytes.remove_prefix(n);
      CHAT_FUZZ_CHECK(buffer.size() <= max_read_buffer_bytes);
    }
    if (ec || !parser.is_done())
      return 0; // the session answers 413 or closes the connection
    check_request(parser.get());
    if (!parser.keep_alive())
      return 0;
  }
  return 0;
}
