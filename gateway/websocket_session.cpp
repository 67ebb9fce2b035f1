#include "gateway/websocket_session.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/websocket/detail/hybi13.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <caf/actor_system.hpp>
#include <caf/send.hpp>

#include "common/log.hpp"
#include "common/metrics.hpp"
#include "protocol/codec.hpp"

namespace chat::gateway {

namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
using boost::system::error_code;

namespace {

/// Bytes read per read_some. The buffer is per I/O thread, not per
/// connection: a whole frame that arrives in one read is handled where it
/// lies (see ws::frame_reader), so idle connections keep no buffer at all.
constexpr size_t read_chunk = 64 * 1024;

char* read_buffer() {
  thread_local std::unique_ptr<char[]> buffer{new char[read_chunk]};
  return buffer.get();
}

/// A client that reads nothing while our close frame waits behind a stuck
/// write gets this long beyond the idle limit (as Beast's idle timeout did).
constexpr std::chrono::seconds stuck_write_grace{5};

int64_t to_ms(std::chrono::steady_clock::time_point t) {
  using namespace std::chrono;
  return duration_cast<milliseconds>(t.time_since_epoch()).count();
}

int64_t ms_of(std::chrono::milliseconds d) {
  return d.count();
}

// Errors that only mean "the connection is over".
bool quiet_error(error_code ec) {
  return ec == net::error::operation_aborted || ec == net::error::eof
         || ec == net::error::connection_reset || ec == net::error::broken_pipe;
}

} // namespace

websocket_session::websocket_session(socket_type socket, std::shared_ptr<server::impl> server,
                                     std::string user, int64_t token_expires_at,
                                     connection_limits::slot node_slot,
                                     connection_limits::slot user_slot, std::string early)
    : socket_(std::move(socket)), server_(std::move(server)), node_slot_(std::move(node_slot)),
      user_slot_(std::move(user_slot)), cfg_(server_->cfg), user_(std::move(user)),
      token_expires_at_(token_expires_at), reader_(cfg_.max_frame_bytes),
      budget_(cfg_.frames, now_ms()), early_(std::move(early)) {}

websocket_session::~websocket_session() {
  if (counted_)
    metrics::global().connections_open--;
}

int64_t websocket_session::now_ms() const {
  return to_ms(std::chrono::steady_clock::now());
}

void websocket_session::run(const http::request<http::string_body>& req) {
  // Reads never block: we read only what is there after a readiness wait.
  error_code ec;
  socket_.non_blocking(true, ec);
  // Beast's 101 response, byte for byte, with our Server header.
  auto key = req[http::field::sec_websocket_key];
  websocket::detail::sec_ws_accept_type accept;
  websocket::detail::make_sec_ws_accept(accept, key);
  auto res = std::make_unique<std::string>();
  res->append("HTTP/1.1 101 Switching Protocols\r\n"
              "Upgrade: websocket\r\n"
              "Connection: upgrade\r\n"
              "Sec-WebSocket-Accept: ");
  res->append(accept.data(), accept.size());
  res->append("\r\nServer: chatd\r\n\r\n");
  auto buffer = net::buffer(*res);
  net::async_write(socket_, buffer,
                   [self = shared_from_this(), res = std::move(res)](error_code ec, size_t) {
                     self->on_accepted(ec);
                   });
}

void websocket_session::on_accepted(error_code ec) {
  if (ec) {
    log::debug("websocket_accept_failed", {{"error", ec.message()}});
    phase_ = phase::done;
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
  log::info("connection_opened", {{"user", user_}});
  last_receive_ms_ = now_ms();
  if (server_->draining)
    start_close(ws::close_code::going_away, "server shutting down");
  if (!early_.empty()) {
    auto early = std::move(early_);
    on_bytes(early.data(), early.size());
  }
  if (phase_ != phase::done)
    wait_readable();
}

void websocket_session::wait_readable() {
  socket_.async_wait(socket_type::wait_read,
                     [self = shared_from_this()](error_code ec) { self->on_readable(ec); });
}

void websocket_session::on_readable(error_code ec) {
  if (phase_ == phase::done)
    return;
  if (ec) {
    finish();
    return;
  }
  char* buffer = read_buffer();
  // A few reads at most, then the others on this thread get their turn.
  for (int i = 0; i < 4; ++i) {
    auto n = socket_.read_some(net::buffer(buffer, read_chunk), ec);
    if (ec == net::error::would_block || ec == net::error::try_again)
      break;
    if (ec) {
      // In teardown the client's FIN is what we wait for.
      if (phase_ != phase::teardown && !quiet_error(ec))
        log::info("connection_error", {{"user", user_}, {"error", ec.message()}});
      finish();
      return;
    }
    last_receive_ms_.store(now_ms(), std::memory_order_relaxed);
    pinged_.store(false, std::memory_order_relaxed);
    on_bytes(buffer, n);
    if (phase_ == phase::done)
      return;
    if (n < read_chunk)
      break; // most likely all there was
  }
  wait_readable();
}

void websocket_session::on_bytes(char* data, size_t size) {
  size_t off = 0;
  while (off < size && phase_ != phase::done) {
    size_t used = 0;
    auto ev = reader_.next(data + off, size - off, used);
    off += used;
    switch (ev.kind) {
      case ws::read_event::need_more:
        break;
      case ws::read_event::pong: // counts as received, like any byte
        charge_frame();
        break;
      case ws::read_event::message:
        metrics::global().frames_received++;
        if (charge_frame())
          handle_text(ev.payload);
        break;
      case ws::read_event::ping:
        if (charge_frame())
          enqueue(shared_frame{std::string{ev.payload}}, ws::opcode::pong);
        break;
      case ws::read_event::close:
        on_client_close(ev.code);
        break;
      case ws::read_event::fail:
        start_close(ev.code, ev.reason);
        break;
    }
  }
}

bool websocket_session::charge_frame() {
  if (closing_)
    return false; // closing: only the client's close frame matters now
  // The time of the read these bytes came with: no clock call per frame.
  if (budget_.take(cfg_.frames, last_receive_ms_.load(std::memory_order_relaxed)))
    return true;
  metrics::global().connections_closed_flood++;
  log::warn("connection_flooding", {{"user", user_}});
  // One error saying why, then the close. Frames handed on before still
  // take effect (a send is stored); an answer that comes after the close
  // frame is not written: the client's retry with the same clientMsgId
  // gets it.
  protocol::error_frame e{protocol::error_code::rate_limited, "too many frames, slow down", {}, {}};
  enqueue(shared_frame{protocol::encode(e)});
  start_close(ws::close_code::policy_violation, "rate limited");
  return false;
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
  // Everything else is the session actor's business. It is spawned here,
  // not at the upgrade: most connections sit idle, and an actor is the
  // largest part of what one would keep.
  if (!session_)
    session_
        = spawn_session(*server_->services.system, user_,
                        std::weak_ptr<client_link>{shared_from_this()}, server_->services.session);
  std::visit(
      [this](auto& f) {
        using type = std::decay_t<decltype(f)>;
        if constexpr (!std::is_same_v<type, protocol::ping_frame>)
          caf::anon_send(session_, std::move(f));
      },
      frame);
}

void websocket_session::send(shared_frame frame) {
  net::post(socket_.get_executor(), [self = shared_from_this(), f = std::move(frame)]() mutable {
    self->enqueue(std::move(f));
  });
}

void websocket_session::close(uint16_t code, std::string reason) {
  net::post(socket_.get_executor(), [self = shared_from_this(), code, r = std::move(reason)] {
    self->start_close(code, r);
  });
}

void websocket_session::check(std::chrono::steady_clock::time_point now, int64_t unix_now) {
  auto t = to_ms(now);
  auto ph = phase_.load(std::memory_order_relaxed);
  if (ph == phase::done)
    return;
  auto post = [this](auto fn) { net::post(socket_.get_executor(), std::move(fn)); };
  if (ph != phase::open) {
    auto deadline = close_deadline_ms_.load(std::memory_order_relaxed);
    if (deadline != 0 && t >= deadline)
      post([self = shared_from_this()] { self->finish(); });
    return;
  }
  if (unix_now >= token_expires_at_) {
    post([self = shared_from_this()] {
      self->start_close(ws::close_code::policy_violation, "token expired");
    });
    return;
  }
  auto idle = ms_of(cfg_.idle_timeout);
  auto quiet = t - last_receive_ms_.load(std::memory_order_relaxed);
  if (quiet >= idle) {
    post([self = shared_from_this()] {
      // A frame may have come meanwhile.
      auto quiet = self->now_ms() - self->last_receive_ms_.load(std::memory_order_relaxed);
      if (quiet >= ms_of(self->cfg_.idle_timeout))
        self->start_close(ws::close_code::going_away, "idle timeout");
    });
    return;
  }
  // Keep-alive pings when Beast sent them: half its idle limit, which sat
  // 5 s beyond ours. Live clients answer with pongs, which count as
  // received.
  auto ping_after = (idle + ms_of(stuck_write_grace)) / 2;
  if (quiet >= ping_after && !pinged_.exchange(true, std::memory_order_relaxed))
    post([self = shared_from_this()] {
      if (!self->closing_)
        self->enqueue(shared_frame{std::string{}}, ws::opcode::ping);
    });
}

void websocket_session::enqueue(shared_frame frame, ws::opcode op) {
  if (closing_ || phase_ == phase::done)
    return;
  queued_bytes_ += frame.text().size();
  if (queued_bytes_ > cfg_.max_pending_bytes) {
    metrics::global().connections_closed_slow++;
    log::warn("connection_too_slow",
              {{"user", user_}, {"queuedBytes", static_cast<int64_t>(queued_bytes_)}});
    // Keep the frames being written (the socket still reads their bytes);
    // drop the rest: the client resumes after reconnecting.
    queue_.clear();
    queued_bytes_ = 0;
    for (auto& f : sending_)
      queued_bytes_ += f.data.text().size();
    start_close(ws::close_code::try_again_later, "client too slow");
    return;
  }
  queue_.push_back({std::move(frame), op});
  if (!writing_)
    do_write();
}

void websocket_session::do_write() {
  // Everything queued goes in one gathered write (writev): a burst of
  // chunks costs one system call, not one each.
  writing_ = true;
  sending_.swap(queue_);
  headers_.resize(sending_.size() * ws::max_server_header);
  buffers_.clear();
  buffers_.reserve(sending_.size() * 2);
  char* h = headers_.data();
  for (auto& f : sending_) {
    auto text = f.data.text();
    auto n = ws::encode_header(h, f.op, text.size());
    buffers_.emplace_back(h, n);
    if (!text.empty())
      buffers_.emplace_back(text.data(), text.size());
    h += n;
  }
  net::async_write(socket_, buffers_,
                   [self = shared_from_this()](error_code ec, size_t) { self->on_write(ec); });
}

void websocket_session::on_write(error_code ec) {
  writing_ = false;
  bool close_sent = !sending_.empty() && sending_.back().op == ws::opcode::close;
  for (auto& f : sending_)
    queued_bytes_ -= f.data.text().size();
  sending_.clear();
  if (ec) {
    queue_.clear();
    queued_bytes_ = 0;
    if (!quiet_error(ec) && phase_ != phase::done)
      log::info("connection_error", {{"user", user_}, {"error", ec.message()}});
    finish();
    return;
  }
  if (close_sent) {
    // The client has this long to answer it (and then to close its end of
    // the TCP connection) before the socket is closed under it.
    close_deadline_ms_ = now_ms() + ms_of(cfg_.close_timeout);
    // After a protocol error the client's close cannot be found any more.
    if (client_closed_ || reader_.stopped())
      begin_teardown();
  } else if (!queue_.empty()) {
    do_write();
    return;
  }
  // Nothing more to write for now: give the buffers back (an idle
  // connection keeps none).
  decltype(queue_){}.swap(queue_);
  decltype(sending_){}.swap(sending_);
  decltype(buffers_){}.swap(buffers_);
  std::string{}.swap(headers_);
}

void websocket_session::on_client_close(uint16_t code) {
  client_closed_ = true;
  if (closing_) {
    // The answer to our close frame, once that is out.
    if (!writing_ && queue_.empty())
      begin_teardown();
    return;
  }
  // The client closes: echo its code after what is already queued.
  closing_ = true;
  phase_ = phase::closing;
  close_deadline_ms_ = now_ms() + ms_of(cfg_.idle_timeout + stuck_write_grace);
  queue_.push_back({shared_frame{ws::close_payload(code, {})}, ws::opcode::close});
  if (!writing_)
    do_write();
}

void websocket_session::start_close(uint16_t code, std::string_view reason) {
  if (closing_ || phase_ == phase::done)
    return;
  closing_ = true;
  phase_ = phase::closing;
  // The close frame may wait behind a write the client does not read.
  close_deadline_ms_ = now_ms() + ms_of(cfg_.idle_timeout + stuck_write_grace);
  // From now on only the client's close frame matters.
  reader_.discard_data();
  log::info("connection_closing",
            {{"user", user_}, {"code", static_cast<int>(code)}, {"reason", std::string{reason}}});
  queue_.push_back({shared_frame{ws::close_payload(code, reason)}, ws::opcode::close});
  if (!writing_)
    do_write();
}

void websocket_session::begin_teardown() {
  if (phase_ == phase::teardown || phase_ == phase::done)
    return;
  // As Beast's server side did: our FIN first, then wait for the client's
  // (the reads see EOF), so that the client, not us, keeps TIME_WAIT and
  // no unread byte makes our close a reset.
  phase_ = phase::teardown;
  error_code ec;
  socket_.shutdown(net::ip::tcp::socket::shutdown_send, ec);
  if (ec)
    finish();
}

void websocket_session::finish() {
  if (phase_ == phase::done)
    return;
  phase_ = phase::done;
  // Cancels the readiness wait and any write in flight; their handlers
  // still run (and hold this object until then).
  error_code ec;
  socket_.close(ec);
  if (session_) {
    caf::anon_send_exit(session_, caf::exit_reason::user_shutdown);
    session_ = nullptr;
  }
  if (counted_)
    log::info("connection_closed", {{"user", user_}});
  std::lock_guard<std::mutex> guard{server_->sessions_mtx};
  server_->sessions.erase(weak_from_this());
}

} // namespace chat::gateway
