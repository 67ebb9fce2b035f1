#pragma once
/// The front door's checks on an HTTP request, as pure functions (no
/// sockets, no actors): the limits a request is read with, the Origin check
/// and the WebSocket upgrade checks. http_session (server.cpp) calls them;
/// kept apart so that they are unit-tested (tests/gateway/
/// request_checks_test.cpp) and fuzzed with Beast's parser over raw bytes
/// (tests/fuzz/http_request_fuzz.cpp). Target, query and token parsing are
/// in http_util.hpp. Internal to gateway/.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <boost/system/error_code.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

namespace chat::gateway {

namespace http = boost::beast::http;

/// The request line and headers of one request: the largest token
/// (auth::max_token_bytes, 8 KiB) fits in `Authorization` or `?token=`
/// with room for the rest, and no more (Beast's default is 8 KiB, which
/// refused the longest tokens).
constexpr size_t max_header_bytes = 16 * 1024;

/// The connection's read buffer: what is read but not yet parsed (the
/// headers while they arrive, a slice of the body, early WebSocket frames
/// sent right after the upgrade request). Without a bound Beast grows it to
/// whatever one read brings on top of the headers; with it, a connection
/// holds at most this much however it sends.
constexpr size_t max_read_buffer_bytes = 64 * 1024;

using request = http::request<http::string_body>;
using request_parser = http::request_parser<http::string_body>;

/// Sets the limits every request is read with: `max_header_bytes` and the
/// configured body limit (gateway_config::max_body_bytes).
void limit_request_parser(request_parser& p, size_t max_body_bytes);

/// The answer to a request that could not be read as one, by the error
/// of the read (Beast's parser or the bounded buffer): 413 for a body over
/// the limit (or a chunked body whose chunk header outgrows the buffer),
/// 431 for headers over `max_header_bytes`, 400 for bytes that are not
/// HTTP. Nothing (status 0) for a connection that ended or timed out,
/// which nobody is there to read an answer: it is just closed.
struct read_refusal {
  int status = 0;
  const char* code = "";
  const char* message = "";
};
read_refusal refusal_for(const boost::system::error_code& ec);

/// Whether a browser page at `origin` may open the WebSocket of a request
/// sent to `host`: no Origin (not a browser) may; with `allowed` empty only
/// the page's own origin (its host:port is `host`); else an origin in the
/// list, or any with "*" in it.
bool origin_allowed(std::string_view origin, std::string_view host,
                    const std::vector<std::string>& allowed);

/// origin_allowed() with the request's Origin and Host headers.
bool origin_allowed(const request& req, const std::vector<std::string>& allowed);

/// Why an upgrade request cannot be accepted (Beast's checks, with its
/// messages): status 0 when it can.
struct upgrade_refusal {
  int status = 0; ///< 400, or 426 for a WebSocket version other than 13
  std::string message;
};
upgrade_refusal check_upgrade(const request& req);

} // namespace chat::gateway
