#include "gateway/websocket_session.hpp"

#include <boost/asio/post.hpp>
#include <caf/actor_system.hpp>
#include <caf/send.hpp>

#include "common/log.hpp"
#include "common/metrics.hpp"
#include "protocol/codec.hpp"

namespace chat::gateway {

namespace {

int64_t unix_now() {
  using namespace std::chrono;
  return duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
}

// Errors that only mean "the connection is over".
bool quiet_error(beast::error_code ec) {
  return ec == net::error::operation_aborted || ec == websocket::error::closed
         || ec == net::error::eof || ec == net::error::connection_reset
         || ec == beast::error::timeout;
}

} // namespace

websocket_session::websocket_session(beast::tcp_stream&& stream,
                                     std::shared_ptr<server::impl> server, std::string user,
                                     int64_t token_expires_at, connection_limits::slot node_slot,
                                     connection_limits::slot user_slot)
    : ws_(std::move(stream)), server_(std::move(server)), node_slot_(std::move(node_slot)),
      user_slot_(std::move(user_slot)), cfg_(server_->cfg), user_(std::move(user)),
      token_expires_at_(token_expires_at), idle_timer_(ws_.get_executor()),
      expiry_timer_(ws_.get_executor()) {}

websocket_session::~websocket_session() {
  if (counted_)
    metrics::global().connections_open--;
}

void websocket_session::run(http::request<http::string_body> req) {
  // Beast's own timeouts only guard the handshake and a dead peer; the
  // protocol's idle limit (close with 1001) is our timer, so Beast's idle
  // limit sits a little beyond it. Beast's keep-alive pings make live
  // clients answer with pongs, which count as received frames.
  websocket::stream_base::timeout opt;
  opt.handshake_timeout = std::chrono::seconds{30};
  opt.idle_timeout = cfg_.idle_timeout + std::chrono::seconds{5};
  opt.keep_alive_pings = true;
  ws_.set_option(opt);
  ws_.set_option(websocket::stream_base::decorator(
      [](websocket::response_type& res) { res.set(http::field::server, "chatd"); }));
  // We enforce the frame limit ourselves (see on_read): Beast's own limit
  // tears the socket down with the rest of the oversized frame unread, and
  // the client then gets a TCP reset instead of our 1009 close frame.
  ws_.read_message_max(0);
  ws_.auto_fragment(false);
  ws_.async_accept(req,
                   beast::bind_front_handler(&websocket_session::on_accept, shared_from_this()));
}

void websocket_session::on_accept(beast::error_code ec) {
  if (ec) {
    log::debug("websocket_accept_failed", {{"error", ec.message()}});
    return;
  }
  auto& m = metrics::global();
  m.connections_opened++;
  m.connections_open++;
  counted_ = true;
  {
    std::lock_guard<std::mutex> guard{server_->sessions_mtx};
    server_->sessions.insert(weak_from_this());
  }
  session_
      = spawn_session(*server_->services.system, user_,
                      std::weak_ptr<client_link>{shared_from_this()}, server_->services.session);
  log::info("connection_opened", {{"user", user_}});
  last_receive_ = std::chrono::steady_clock::now();
  ws_.control_callback([this](websocket::frame_type, beast::string_view) {
    last_receive_ = std::chrono::steady_clock::now(); // pings and pongs count
  });
  arm_idle_timer();
  arm_expiry_timer();
  if (server_->draining)
    start_close(websocket::close_code::going_away, "server shutting down");
  do_read();
}

void websocket_session::do_read() {
  // Never buffer more than one byte past the limit.
  auto room = cfg_.max_frame_bytes + 1 - buffer_.size();
  ws_.async_read_some(buffer_, room,
                      beast::bind_front_handler(&websocket_session::on_read, shared_from_this()));
}

void websocket_session::on_read(beast::error_code ec, size_t) {
  if (ec) {
    // Oversized messages (1009) and invalid UTF-8 (1007) were already
    // answered with a close frame by Beast before the read failed.
    if (!quiet_error(ec))
      log::info("connection_error", {{"user", user_}, {"error", ec.message()}});
    shutdown();
    return;
  }
  last_receive_ = std::chrono::steady_clock::now();
  if (buffer_.size() > cfg_.max_frame_bytes) {
    // Stop reading; the close handshake drains what the client still sends.
    buffer_.clear();
    start_close(websocket::close_code::too_big, "frame too large");
    return;
  }
  if (!ws_.is_message_done()) {
    do_read();
    return;
  }
  metrics::global().frames_received++;
  if (!ws_.got_text()) {
    buffer_.consume(buffer_.size());
    start_close(websocket::close_code::unknown_data, "binary frames not supported");
  } else {
    auto data = buffer_.data();
    handle_text({static_cast<const char*>(data.data()), data.size()});
    buffer_.consume(buffer_.size());
  }
  do_read();
}

void websocket_session::handle_text(std::string_view text) {
  protocol::limits lim;
  lim.max_content_bytes = cfg_.max_content_bytes;
  auto result = protocol::decode(text, lim);
  if (auto err = std::get_if<protocol::decode_error>(&result)) {
    metrics::global().frames_rejected++;
    enqueue(shared_frame{protocol::encode(err->error)});
    return;
  }
  auto& frame = std::get<protocol::client_frame>(result);
  if (auto ping = std::get_if<protocol::ping_frame>(&frame)) {
    enqueue(shared_frame{protocol::encode_pong(ping->nonce_json)});
    return;
  }
  // Everything else is the session actor's business.
  std::visit(
      [this](auto& f) {
        using type = std::decay_t<decltype(f)>;
        if constexpr (!std::is_same_v<type, protocol::ping_frame>)
          caf::anon_send(session_, std::move(f));
      },
      frame);
}

void websocket_session::send(shared_frame frame) {
  net::post(ws_.get_executor(), [self = shared_from_this(), f = std::move(frame)]() mutable {
    self->enqueue(std::move(f));
  });
}

void websocket_session::close(uint16_t code, std::string reason) {
  net::post(ws_.get_executor(), [self = shared_from_this(), code, r = std::move(reason)]() mutable {
    self->start_close(code, std::move(r));
  });
}

void websocket_session::enqueue(shared_frame frame) {
  if (closing_)
    return;
  queued_bytes_ += frame.text().size();
  if (queued_bytes_ > cfg_.max_pending_bytes) {
    metrics::global().connections_closed_slow++;
    log::warn("connection_too_slow",
              {{"user", user_}, {"queuedBytes", static_cast<int64_t>(queued_bytes_)}});
    // Keep the frame being written (Beast still reads its buffer); drop the
    // rest: the client resumes after reconnecting.
    if (writing_) {
      queue_.erase(queue_.begin() + 1, queue_.end());
      queued_bytes_ = queue_.front().text().size();
    } else {
      queue_.clear();
      queued_bytes_ = 0;
    }
    start_close(websocket::close_code::try_again_later, "client too slow");
    return;
  }
  queue_.push_back(std::move(frame));
  if (!writing_)
    do_write();
}

void websocket_session::do_write() {
  writing_ = true;
  auto text = queue_.front().text();
  ws_.text(true);
  ws_.async_write(net::buffer(text.data(), text.size()),
                  beast::bind_front_handler(&websocket_session::on_write, shared_from_this()));
}

void websocket_session::on_write(beast::error_code ec, size_t) {
  writing_ = false;
  if (ec) {
    queue_.clear();
    queued_bytes_ = 0;
    return; // the pending read sees the failure and shuts down
  }
  queued_bytes_ -= queue_.front().text().size();
  queue_.pop_front();
  if (!queue_.empty())
    do_write();
  else if (closing_ && !close_sent_)
    do_close();
}

void websocket_session::start_close(uint16_t code, std::string reason) {
  if (closing_)
    return;
  closing_ = true;
  close_reason_ = websocket::close_reason{static_cast<websocket::close_code>(code), reason};
  log::info("connection_closing",
            {{"user", user_}, {"code", static_cast<int>(code)}, {"reason", reason}});
  if (!writing_)
    do_close();
}

void websocket_session::do_close() {
  close_sent_ = true;
  ws_.async_close(close_reason_, [self = shared_from_this()](beast::error_code) {
    // A pending read completes with `closed` (or an error) and shuts down;
    // this covers the case where we stopped reading.
    self->shutdown();
  });
}

void websocket_session::arm_idle_timer() {
  auto deadline = last_receive_ + cfg_.idle_timeout;
  idle_timer_.expires_at(deadline);
  idle_timer_.async_wait(
      beast::bind_front_handler(&websocket_session::on_idle_timer, shared_from_this()));
}

void websocket_session::on_idle_timer(beast::error_code ec) {
  if (ec || closing_)
    return;
  if (std::chrono::steady_clock::now() - last_receive_ >= cfg_.idle_timeout) {
    start_close(websocket::close_code::going_away, "idle timeout");
    return;
  }
  arm_idle_timer();
}

void websocket_session::arm_expiry_timer() {
  auto left = token_expires_at_ - unix_now();
  expiry_timer_.expires_after(std::chrono::seconds{std::max<int64_t>(left, 0)});
  expiry_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
    if (!ec)
      self->start_close(websocket::close_code::policy_error, "token expired");
  });
}

void websocket_session::shutdown() {
  idle_timer_.cancel();
  expiry_timer_.cancel();
  if (session_) {
    caf::anon_send_exit(session_, caf::exit_reason::user_shutdown);
    session_ = nullptr;
    log::info("connection_closed", {{"user", user_}});
  }
  std::lock_guard<std::mutex> guard{server_->sessions_mtx};
  server_->sessions.erase(weak_from_this());
}

} // namespace chat::gateway
