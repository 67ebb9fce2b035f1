#include "gateway/request_checks.hpp"

#include <boost/beast/http/error.hpp>
#include <boost/beast/http/rfc7230.hpp>
#include <boost/beast/websocket/detail/hybi13.hpp>
#include <boost/beast/websocket/error.hpp>

namespace chat::gateway {

namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;

void limit_request_parser(request_parser& p, size_t max_body_bytes) {
  p.header_limit(static_cast<std::uint32_t>(max_header_bytes));
  p.body_limit(max_body_bytes);
}

read_refusal refusal_for(const boost::system::error_code& ec) {
  if (ec.category() != http::make_error_code(http::error::end_of_stream).category())
    return {}; // the socket's own errors, the read deadline
  switch (static_cast<http::error>(ec.value())) {
    case http::error::end_of_stream:   // closed between requests
    case http::error::partial_message: // closed mid-request
      return {};
    case http::error::body_limit:
    case http::error::buffer_overflow: // a chunk header outgrew the read buffer
      return {413, "too_large", "request body too large"};
    case http::error::header_limit:
      return {431, "too_large", "request headers too large"};
    default: // the bytes are not an HTTP/1 request
      return {400, "bad_request", "malformed HTTP request"};
  }
}

bool origin_allowed(std::string_view origin, std::string_view host,
                    const std::vector<std::string>& allowed) {
  if (origin.empty())
    return true; // not a browser
  if (allowed.empty()) {
    auto scheme_end = origin.find("://");
    return scheme_end != std::string_view::npos && !host.empty()
           && origin.substr(scheme_end + 3) == host;
  }
  for (auto& a : allowed)
    if (a == "*" || a == origin)
      return true;
  return false;
}

bool origin_allowed(const request& req, const std::vector<std::string>& allowed) {
  auto origin = req[http::field::origin];
  auto host = req[http::field::host];
  return origin_allowed(std::string_view{origin.data(), origin.size()},
                        std::string_view{host.data(), host.size()}, allowed);
}

upgrade_refusal check_upgrade(const request& req) {
  // The checks and messages of Beast's websocket::stream::accept, which
  // answered upgrades before.
  auto refuse = [](websocket::error e) {
    return upgrade_refusal{400, beast::error_code{e}.message()};
  };
  if (req.version() != 11)
    return refuse(websocket::error::bad_http_version);
  if (req.method() != http::verb::get)
    return refuse(websocket::error::bad_method);
  if (req.count(http::field::host) == 0)
    return refuse(websocket::error::no_host);
  auto conn = req.find(http::field::connection);
  if (conn == req.end())
    return refuse(websocket::error::no_connection);
  if (!http::token_list{conn->value()}.exists("upgrade"))
    return refuse(websocket::error::no_connection_upgrade);
  auto upgrade = req.find(http::field::upgrade);
  if (upgrade == req.end())
    return refuse(websocket::error::no_upgrade);
  if (!http::token_list{upgrade->value()}.exists("websocket"))
    return refuse(websocket::error::no_upgrade_websocket);
  auto key = req.find(http::field::sec_websocket_key);
  if (key == req.end())
    return refuse(websocket::error::no_sec_key);
  if (key->value().size() > websocket::detail::sec_ws_key_type::max_size_n)
    return refuse(websocket::error::bad_sec_key);
  auto version = req.find(http::field::sec_websocket_version);
  if (version == req.end())
    return refuse(websocket::error::no_sec_version);
  if (version->value() != "13")
    return {426, beast::error_code{websocket::error::bad_sec_version}.message()};
  return {};
}

} // namespace chat::gateway
