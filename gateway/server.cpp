#include "gateway/server.hpp"

#include <unistd.h>

#include <algorithm>

#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include "common/log.hpp"
#include "common/metrics.hpp"
#include "gateway/http_util.hpp"
#include "gateway/jwt.hpp"
#include "gateway/request_checks.hpp"
#include "gateway/rest.hpp"
#include "gateway/server_impl.hpp"
#include "gateway/static_files.hpp"
#include "gateway/websocket_session.hpp"

namespace chat::gateway {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace websocket = boost::beast::websocket;
namespace net = boost::asio;

namespace {

int64_t unix_now() {
  using namespace std::chrono;
  return duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
}

/// One HTTP connection: reads requests (keep-alive), answers REST, health and
/// metrics, and hands WebSocket upgrades over to a websocket_session.
class http_session : public std::enable_shared_from_this<http_session> {
public:
  /// An empty `slot`: the node is full, the connection answers one request
  /// (503, but health and metrics as usual) and closes.
  http_session(net::ip::tcp::socket&& socket, std::shared_ptr<server::impl> srv,
               connection_limits::slot slot)
      : stream_(std::move(socket)), server_(std::move(srv)), slot_(std::move(slot)) {}

  void run() {
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&http_session::do_read, shared_from_this()));
  }

private:
  void do_read() {
    parser_.emplace();
    limit_request_parser(*parser_, server_->cfg.max_body_bytes);
    // A whole request (headers and body) must arrive within the request
    // timeout: a client dribbling bytes (slowloris) holds a descriptor and
    // is cut off. A connection over the limit gets even less time.
    stream_.expires_after(
        slot_ ? server_->cfg.request_timeout
              : std::min(server_->cfg.request_timeout, std::chrono::milliseconds{1000}));
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&http_session::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, size_t) {
    if (auto refusal = refusal_for(ec); refusal.status != 0) {
      // Answered, not dropped: the client learns why (the rest of its
      // request is not read, so the connection ends after the answer).
      metrics::global().http_requests++;
      log::info("http_request_refused",
                {{"status", static_cast<int64_t>(refusal.status)}, {"error", ec.message()}});
      auto version = parser_->get().version() == 10 ? 10u : 11u;
      return write(version, false,
                   rest_error(static_cast<unsigned>(refusal.status), refusal.code, refusal.message),
                   false);
    }
    if (ec) {
      stream_.socket().shutdown(net::ip::tcp::socket::shutdown_send, ec);
      return;
    }
    // The read deadline ends with the read: a REST call answers within its
    // own timeout, and the write gets a deadline of its own.
    stream_.expires_never();
    metrics::global().http_requests++;
    auto req = parser_->release();
    auto t = parse_target(std::string_view{req.target().data(), req.target().size()});
    if (!slot_ && t.path != "/healthz" && t.path != "/readyz" && t.path != "/metrics") {
      // Probes still get their answer: a full node is alive, and an
      // orchestrator must not replace it for being busy.
      return write(req, rest_error(503, "unavailable", "too many connections"));
    }
    if (websocket::is_upgrade(req)) {
      if (t.path != "/api/v1/chat/ws")
        return write(req, rest_error(404, "not_found", "no such endpoint"));
      upgrade(std::move(req), t);
      return;
    }
    route(req, t);
  }

  void upgrade(http::request<http::string_body> req, const target& t) {
    if (server_->draining)
      return write(req, rest_error(503, "unavailable", "server shutting down"));
    // Today tokens are not cookies, so another site's page could not use a
    // user's session anyway; the check closes that door before anyone adds
    // cookie sign-in.
    if (!origin_allowed(req, server_->cfg.allowed_origins)) {
      auto origin = req[http::field::origin];
      log::info("upgrade_refused",
                {{"reason", "origin"}, {"origin", std::string{origin.data(), origin.size()}}});
      return write(req, rest_error(403, "forbidden", "origin not allowed"));
    }
    auto auth = authenticate(req, t);
    if (auto err = std::get_if<auth::token_error>(&auth)) {
      log::info("upgrade_refused", {{"reason", auth::to_string(*err)}});
      return write(req, rest_error(401, "unauthorized", "missing or invalid token"));
    }
    auto& tok = std::get<auth::verified_token>(auth);
    auto user_slot = server_->limits->try_user_connection(tok.user_id);
    if (!user_slot) {
      metrics::global().refused_max_connections_per_user++;
      log::info("upgrade_refused", {{"reason", "max_connections_per_user"}, {"user", tok.user_id}});
      return write(req, rest_error(429, "rate_limited", "too many connections for this user"));
    }
    auto refusal = check_upgrade(req);
    if (refusal.status != 0) {
      // As Beast answered: the reason as the body, then the connection ends.
      http_reply r{static_cast<unsigned>(refusal.status), refusal.message, ""};
      if (refusal.status == 426)
        r.headers = {{"Sec-WebSocket-Version", "13"}};
      return write(req.version(), false, std::move(r));
    }
    hand_over(req, tok.user_id, tok.accepted_until(), std::move(user_slot));
  }

  /// The socket leaves Beast here: the WebSocket runs over the bare socket,
  /// on the connection's strand (see websocket_session.hpp).
  void hand_over(const http::request<http::string_body>& req, const std::string& user,
                 int64_t expires_at, connection_limits::slot user_slot) {
    stream_.expires_never();
    // Bytes the client sent after the request (its first frames, if it did
    // not wait for our 101) were read with it.
    auto rest = buffer_.data();
    std::string early{static_cast<const char*>(rest.data()), rest.size()};
    auto strand = stream_.get_executor().target<websocket_session::strand_type>();
    auto exec = strand ? *strand : net::make_strand(server_->ioc);
    beast::error_code ec;
    auto socket = stream_.release_socket();
    auto protocol = socket.local_endpoint(ec).protocol();
    websocket_session::socket_type ws_socket{exec};
    if (!ec) {
      auto fd = socket.release(ec);
      if (!ec) {
        ws_socket.assign(protocol, fd, ec);
        if (ec)
          ::close(fd);
      }
    }
    if (ec) {
      log::warn("websocket_handover_failed", {{"error", ec.message()}});
      return;
    }
    std::make_shared<websocket_session>(std::move(ws_socket), server_, user, expires_at,
                                        std::move(slot_), std::move(user_slot), std::move(early))
        ->run(req);
  }

  std::variant<auth::verified_token, auth::token_error>
  authenticate(const http::request<http::string_body>& req, const target& t) {
    auto h = req[http::field::authorization];
    auto token = find_token(std::string_view{h.data(), h.size()}, t);
    return auth::verify_token(token, server_->cfg.jwt_secret, unix_now());
  }

  void route(const http::request<http::string_body>& req, const target& t) {
    auto method = std::string{req.method_string()};
    if (t.path == "/healthz")
      return write(req, healthz_reply(server_->services));
    if (t.path == "/metrics")
      return write(req, {200, metrics::render_prometheus(), "text/plain; version=0.0.4"});
    if (t.path == "/readyz")
      return handle_readyz(server_->services, server_->draining, replier(req));
    if (t.path.rfind("/api/v1/", 0) == 0) {
      auto auth = authenticate(req, t);
      if (std::holds_alternative<auth::token_error>(auth))
        return write(req, rest_error(401, "unauthorized", "missing or invalid token"));
      auto& user = std::get<auth::verified_token>(auth).user_id;
      return handle_rest(server_->services, method, t, user, replier(req));
    }
    if (method == "GET" || method == "HEAD") {
      if (auto f = find_static(t.path)) {
        http_reply r{200, std::string{f->body}, std::string{f->content_type}};
        // The page renders untrusted text (AI replies): no inline script,
        // no foreign origins.
        r.headers = {{"Content-Security-Policy",
                      "default-src 'self'; script-src 'self'; style-src 'self'; "
                      "img-src 'self' data:; connect-src 'self'; object-src 'none'; "
                      "base-uri 'none'; frame-ancestors 'none'"},
                     {"X-Content-Type-Options", "nosniff"},
                     {"Referrer-Policy", "no-referrer"}};
        return write(req, std::move(r));
      }
    }
    write(req, rest_error(404, "not_found", "no such endpoint"));
  }

  /// A callback that may run on any thread (an actor's): it posts the reply
  /// back onto this connection's strand.
  reply_fn replier(const http::request<http::string_body>& req) {
    auto version = req.version();
    auto keep_alive = req.keep_alive();
    return [self = shared_from_this(), version, keep_alive](http_reply r) {
      net::post(self->stream_.get_executor(),
                [self, version, keep_alive, r = std::move(r)]() mutable {
                  self->write(version, keep_alive, std::move(r));
                });
    };
  }

  void write(const http::request<http::string_body>& req, http_reply r) {
    write(req.version(), req.keep_alive(), std::move(r), req.method() == http::verb::head);
  }

  /// `head`: the answer to a HEAD request: its headers (Content-Length
  /// included) without the body.
  void write(unsigned version, bool keep_alive, http_reply r, bool head = false) {
    auto res = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(r.status), version);
    res->set(http::field::server, "chatd");
    if (!r.content_type.empty())
      res->set(http::field::content_type, r.content_type);
    res->set(http::field::cache_control, "no-store");
    for (auto& [name, value] : r.headers)
      res->set(name, value);
    res->keep_alive(keep_alive && slot_); // over the limit: one answer only
    res->body() = std::move(r.body);
    res->prepare_payload();
    if (head)
      res->body().clear(); // Content-Length still says what GET would send
    stream_.expires_after(std::chrono::seconds{30});
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res](beast::error_code ec, size_t) {
                        if (ec || !res->keep_alive()) {
                          self->stream_.socket().shutdown(net::ip::tcp::socket::shutdown_send, ec);
                          return;
                        }
                        self->do_read();
                      });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_{max_read_buffer_bytes}; // bounded: see request_checks.hpp
  std::optional<request_parser> parser_;
  std::shared_ptr<server::impl> server_;
  connection_limits::slot slot_; // after server_: given back first
};

/// accept() failures that only time cures: retrying at once spins.
bool out_of_resources(const beast::error_code& ec) {
  return ec == net::error::no_descriptors // EMFILE
         || ec == beast::error_code{ENFILE, beast::system_category()}
         || ec == net::error::no_buffer_space // ENOBUFS
         || ec == net::error::no_memory;      // ENOMEM
}

} // namespace

void server::impl::do_accept() {
  acceptor.async_accept(
      net::make_strand(ioc),
      [self = shared_from_this()](beast::error_code ec, net::ip::tcp::socket socket) {
        if (!self->acceptor.is_open())
          return; // draining
        if (ec)
          return self->on_accept_error(ec);
        self->end_accept_pause();
        socket.set_option(net::ip::tcp::no_delay{true}, ec);
        socket.set_option(net::socket_base::send_buffer_size{self->cfg.socket_send_buffer}, ec);
        auto slot = self->limits->try_connection();
        if (!slot)
          metrics::global().refused_max_connections++;
        std::make_shared<http_session>(std::move(socket), self, std::move(slot))->run();
        self->do_accept();
      });
}

void server::impl::sweep() {
  // One timer for every connection's deadlines (idle, token expiry,
  // keep-alive pings, close handshakes) instead of two per connection: a
  // connection only posts work to itself when something is due. A quarter
  // of the idle limit keeps the idle close within 25 % of it; a second at
  // most is plenty for token expiry (whole seconds).
  auto period = std::clamp<std::chrono::milliseconds>(
      cfg.idle_timeout / 4, std::chrono::milliseconds{50}, std::chrono::seconds{1});
  sweep_timer.expires_after(period);
  sweep_timer.async_wait([self = shared_from_this()](beast::error_code ec) {
    if (ec)
      return;
    auto now = std::chrono::steady_clock::now();
    auto unix_time = unix_now();
    {
      std::lock_guard<std::mutex> guard{self->sessions_mtx};
      for (auto& w : self->sessions)
        if (auto s = w.lock())
          s->check(now, unix_time);
    }
    self->sweep();
  });
}

void server::impl::on_accept_error(const beast::error_code& ec) {
  if (!out_of_resources(ec)) {
    // E.g. a client gone before we took it: the next one may be fine.
    log::warn("accept_failed", {{"error", ec.message()}});
    return do_accept();
  }
  // Connections wait in the listen backlog meanwhile; closing ones free
  // descriptors and the next try takes them.
  metrics::global().accept_failures++;
  if (accept_failures++ == 0) {
    accept_paused_since = std::chrono::steady_clock::now();
    metrics::global().accept_paused = 1;
    log::warn("accept_paused", {{"error", ec.message()},
                                {"retryMs", static_cast<int64_t>(cfg.accept_backoff.count())},
                                {"connectionsOpen", static_cast<int64_t>(limits->open())}});
  }
  accept_timer.expires_after(cfg.accept_backoff);
  accept_timer.async_wait([self = shared_from_this()](beast::error_code timer_ec) {
    if (!timer_ec && self->acceptor.is_open())
      self->do_accept();
  });
}

void server::impl::end_accept_pause() {
  if (accept_failures == 0)
    return;
  auto paused = std::chrono::steady_clock::now() - accept_paused_since;
  log::info(
      "accept_resumed",
      {{"failures", accept_failures},
       {"pausedMs", static_cast<int64_t>(
                        std::chrono::duration_cast<std::chrono::milliseconds>(paused).count())}});
  accept_failures = 0;
  metrics::global().accept_paused = 0;
}

server::server(net::io_context& ioc, gateway_config cfg, gateway_services services)
    : impl_(std::make_shared<impl>(ioc, std::move(cfg), std::move(services))) {}

server::~server() = default;

uint16_t server::start() {
  beast::error_code ec;
  auto addr = net::ip::make_address(impl_->cfg.listen_host, ec);
  if (ec)
    throw std::runtime_error("bad listen address " + impl_->cfg.listen_host);
  net::ip::tcp::endpoint ep{addr, impl_->cfg.listen_port};
  auto& acc = impl_->acceptor;
  acc.open(ep.protocol(), ec);
  if (!ec)
    acc.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec)
    acc.bind(ep, ec);
  if (!ec)
    acc.listen(net::socket_base::max_listen_connections, ec);
  if (ec)
    throw std::runtime_error("cannot listen on " + impl_->cfg.listen_host + ":"
                             + std::to_string(impl_->cfg.listen_port) + ": " + ec.message());
  metrics::global().node_connections_max = static_cast<int64_t>(impl_->cfg.max_connections);
  impl_->do_accept();
  impl_->sweep();
  return acc.local_endpoint().port();
}

void server::begin_drain() {
  impl_->draining = true;
  net::post(impl_->accept_strand, [i = impl_] {
    beast::error_code ec;
    i->acceptor.close(ec);
    i->accept_timer.cancel();
  });
}

void server::close_all(uint16_t code) {
  std::vector<std::shared_ptr<websocket_session>> live;
  {
    std::lock_guard<std::mutex> guard{impl_->sessions_mtx};
    for (auto& w : impl_->sessions)
      if (auto s = w.lock())
        live.push_back(std::move(s));
  }
  for (auto& s : live)
    s->close(code, "server shutting down");
}

size_t server::open_connections() const {
  std::lock_guard<std::mutex> guard{impl_->sessions_mtx};
  return impl_->sessions.size();
}

} // namespace chat::gateway
