#pragma once
/// One WebSocket connection (Beast): reads frames, decodes them with the
/// pure codec and hands them to its session actor; writes what the actor
/// sends through a capped queue, one write in flight. Internal to gateway/.
///
/// Backpressure policy: at most `max_pending_bytes` may wait to be written.
/// A client that lets more pile up is too slow to follow a live stream; its
/// queue is dropped and the connection closed with 1013 (try again later).
/// Nothing is lost: the client reconnects and resumes with `subscribe`. So
/// one slow reader costs at most that many bytes and never slows others.

#include <chrono>
#include <deque>
#include <memory>
#include <string>

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <caf/actor.hpp>

#include "actors/client_link.hpp"
#include "gateway/server_impl.hpp"

namespace chat::gateway {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace websocket = boost::beast::websocket;
namespace net = boost::asio;

class websocket_session : public client_link,
                          public std::enable_shared_from_this<websocket_session> {
public:
  /// `node_slot` and `user_slot` are its places among the node's and the
  /// user's connections, held until it is gone.
  websocket_session(beast::tcp_stream&& stream, std::shared_ptr<server::impl> server,
                    std::string user, int64_t token_expires_at, connection_limits::slot node_slot,
                    connection_limits::slot user_slot);
  ~websocket_session() override;

  /// Completes the upgrade with the request already read.
  void run(http::request<http::string_body> req);

  // client_link: called from actor threads; only post to our strand.
  void send(shared_frame frame) override;
  void close(uint16_t code, std::string reason) override;

private:
  void on_accept(beast::error_code ec);
  void do_read();
  void on_read(beast::error_code ec, size_t bytes);
  void handle_text(std::string_view text);
  void enqueue(shared_frame frame);
  void do_write();
  void on_write(beast::error_code ec, size_t bytes);
  void start_close(uint16_t code, std::string reason);
  void do_close();
  void arm_idle_timer();
  void on_idle_timer(beast::error_code ec);
  void arm_expiry_timer();
  void shutdown();

  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer buffer_;
  std::shared_ptr<server::impl> server_;
  connection_limits::slot node_slot_; // after server_: given back first
  connection_limits::slot user_slot_;
  const gateway_config& cfg_; // server_->cfg
  std::string user_;
  int64_t token_expires_at_;
  session_actor session_;

  std::deque<shared_frame> queue_;
  size_t queued_bytes_ = 0;
  bool writing_ = false;
  bool closing_ = false;    // no more writes are queued
  bool close_sent_ = false; // async_close started
  websocket::close_reason close_reason_;

  net::steady_timer idle_timer_;
  net::steady_timer expiry_timer_;
  std::chrono::steady_clock::time_point last_receive_;
  bool counted_ = false; // in the open-connections gauge
};

} // namespace chat::gateway
