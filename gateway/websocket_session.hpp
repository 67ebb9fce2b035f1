#pragma once
/// One WebSocket connection: our own RFC 6455 over the TCP socket (frames
/// by the pure codec in ws_codec.hpp; Beast only parsed the upgrade
/// request). Decodes text frames with the protocol codec and hands them to
/// its session actor; writes what the actor sends through a capped queue,
/// one gathered write in flight. Internal to gateway/.
///
/// Memory: idle connections are the common case (an open browser tab), so
/// an idle one keeps little: no read buffer (it waits for readability, then
/// reads into a per-thread buffer), no timers (the server's sweep checks
/// idle and expiry deadlines, see check()), no write queue, and no session
/// actor until its first frame that needs one.
///
/// Backpressure policy: at most `max_pending_bytes` may wait to be written.
/// A client that lets more pile up is too slow to follow a live stream; its
/// queue is dropped and the connection closed with 1013 (try again later).
/// Nothing is lost: the client reconnects and resumes with `subscribe`. So
/// one slow reader costs at most that many bytes and never slows others.
///
/// Flood policy: every frame the client sends (a message, valid or not, a
/// ping or a pong) costs from its frame_budget (CHAT_FRAMES_PER_SEC,
/// CHAT_FRAME_BURST). Past it the client gets one `rate_limited` error and
/// a close with 1008; what it sent before is handled as usual.

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/http.hpp>
#include <caf/actor.hpp>

#include "actors/client_link.hpp"
#include "gateway/frame_budget.hpp"
#include "gateway/server_impl.hpp"
#include "gateway/ws_codec.hpp"

namespace chat::gateway {

namespace http = boost::beast::http;
namespace net = boost::asio;

class websocket_session : public client_link,
                          public std::enable_shared_from_this<websocket_session> {
public:
  using strand_type = net::strand<net::io_context::executor_type>;
  /// A socket bound to the connection's strand by type: through an
  /// any_io_executor every copy of the strand would be one more allocation.
  using socket_type = net::basic_stream_socket<net::ip::tcp, strand_type>;

  /// `node_slot` and `user_slot` are its places among the node's and the
  /// user's connections, held until it is gone. `early` holds bytes the
  /// client sent after the upgrade request, read with it.
  websocket_session(socket_type socket, std::shared_ptr<server::impl> server, std::string user,
                    int64_t token_expires_at, connection_limits::slot node_slot,
                    connection_limits::slot user_slot, std::string early);
  ~websocket_session() override;

  /// Answers the upgrade request (already checked with check_upgrade).
  void run(const http::request<http::string_body>& req);

  // client_link: called from actor threads; only post to our strand.
  void send(shared_frame frame) override;
  void close(uint16_t code, std::string reason) override;

  /// From the server's sweep (any thread, a few times a second): posts
  /// what is due onto the strand: a keep-alive ping, the idle (1001) or
  /// token expiry (1008) close, or the end of a close handshake that takes
  /// too long.
  void check(std::chrono::steady_clock::time_point now, int64_t unix_now);

private:
  enum class phase : uint8_t {
    open,
    closing,  // our close frame is queued or written: awaiting the client's
    teardown, // close frames exchanged: our FIN sent, awaiting the client's
    done,
  };

  void on_accepted(boost::system::error_code ec);
  void wait_readable();
  void on_readable(boost::system::error_code ec);
  void on_bytes(char* data, size_t size);
  void handle_text(std::string_view text);
  /// Charges one frame to the budget; past it, closes. False: drop it.
  bool charge_frame();
  void on_client_close(uint16_t code);
  void enqueue(shared_frame frame, ws::opcode op = ws::opcode::text);
  void do_write();
  void on_write(boost::system::error_code ec);
  void start_close(uint16_t code, std::string_view reason);
  void begin_teardown();
  void finish();
  int64_t now_ms() const;

  socket_type socket_;
  std::shared_ptr<server::impl> server_;
  connection_limits::slot node_slot_; // after server_: given back first
  connection_limits::slot user_slot_;
  const gateway_config& cfg_; // server_->cfg
  std::string user_;
  const int64_t token_expires_at_;
  session_actor session_; // spawned with the first frame that needs it
  ws::frame_reader reader_;
  frame_budget budget_;
  std::string early_; // bytes read with the upgrade request, not yet parsed

  struct out_frame {
    shared_frame data;
    ws::opcode op;
  };
  std::vector<out_frame> queue_;   // waiting for the write in flight
  std::vector<out_frame> sending_; // the write in flight
  std::vector<net::const_buffer> buffers_;
  std::string headers_;     // the frame headers of the write in flight
  size_t queued_bytes_ = 0; // of queue_ and sending_
  bool writing_ = false;
  bool closing_ = false;       // the close frame is queued: nothing after it
  bool client_closed_ = false; // the client's close frame arrived
  bool counted_ = false;       // in the open-connections gauge

  // Read by the sweep on other threads; written on the strand.
  std::atomic<phase> phase_{phase::open};
  std::atomic<int64_t> last_receive_ms_{0};
  std::atomic<bool> pinged_{false}; // a keep-alive ping since the last receive
  std::atomic<int64_t> close_deadline_ms_{0};
};

} // namespace chat::gateway
