#pragma once
/// State shared by the listener and every connection. Internal to gateway/.

#include <atomic>
#include <memory>
#include <mutex>
#include <set>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "gateway/connection_limits.hpp"
#include "gateway/server.hpp"

namespace chat::gateway {

class websocket_session;

struct server::impl : std::enable_shared_from_this<server::impl> {
  impl(boost::asio::io_context& ioc, gateway_config cfg, gateway_services services)
      : ioc(ioc), cfg(std::move(cfg)), services(std::move(services)),
        accept_strand(ioc.get_executor()), acceptor(accept_strand), accept_timer(accept_strand),
        limits(this->services.limits ? this->services.limits
                                     : connection_limits::make(this->cfg.max_connections,
                                                               this->cfg.max_connections_per_user)),
        sweep_timer(ioc) {}

  boost::asio::io_context& ioc;
  const gateway_config cfg;
  const gateway_services services;
  // The accept loop, its back-off timer and the drain that closes them take
  // turns on this strand.
  boost::asio::strand<boost::asio::io_context::executor_type> accept_strand;
  boost::asio::ip::tcp::acceptor acceptor;
  std::atomic<bool> draining{false};

  // Accepting backs off while descriptors (or memory) run out; one episode
  // is logged once when it starts and once when it ends. Only the accept
  // loop touches these (on accept_strand).
  boost::asio::steady_timer accept_timer;
  int64_t accept_failures = 0; // in this episode
  std::chrono::steady_clock::time_point accept_paused_since;

  const std::shared_ptr<connection_limits> limits;

  // Checks every WebSocket's deadlines a few times a second (sweep()).
  boost::asio::steady_timer sweep_timer;

  // Live WebSocket sessions, for closing them all at shutdown.
  std::mutex sessions_mtx;
  std::set<std::weak_ptr<websocket_session>, std::owner_less<std::weak_ptr<websocket_session>>>
      sessions;

  void do_accept();
  void sweep();
  void on_accept_error(const boost::system::error_code& ec);
  void end_accept_pause();
};

} // namespace chat::gateway
