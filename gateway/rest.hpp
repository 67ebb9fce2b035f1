#pragma once
/// The REST API (PROTOCOL.md "REST") as plain request -> reply functions:
/// no Beast here. Answers come through a callback, from whichever thread the
/// actor reply arrives on; the caller posts them back to its connection.

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "gateway/http_util.hpp"
#include "gateway/server.hpp"

namespace chat::gateway {

struct http_reply {
  unsigned status = 200;
  std::string body;
  std::string content_type = "application/json";
  /// Extra response headers (name, value).
  std::vector<std::pair<std::string, std::string>> headers = {};
};

using reply_fn = std::function<void(http_reply)>;

/// A JSON error body {"error":{"code","message"}} with its status.
http_reply rest_error(unsigned status, const char* code, std::string message);

/// Handles an authenticated request under /api/v1/ (not the WebSocket).
/// `method` is "GET", "DELETE", ...
void handle_rest(const gateway_services& services, const std::string& method, const target& t,
                 const std::string& user, reply_fn reply);

/// GET /healthz: 200 while the actors the node needs are alive, else 503
/// naming the dead ones.
http_reply healthz_reply(const gateway_services& services);

/// GET /readyz: 200 when the database answers, the node is healthy and we
/// are not draining.
void handle_readyz(const gateway_services& services, bool draining, reply_fn reply);

} // namespace chat::gateway
