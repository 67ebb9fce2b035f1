#pragma once
/// State shared by the listener and every connection. Internal to gateway/.

#include <atomic>
#include <memory>
#include <mutex>
#include <set>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "gateway/server.hpp"

namespace chat::gateway {

class websocket_session;

struct server::impl : std::enable_shared_from_this<server::impl> {
  impl(boost::asio::io_context& ioc, gateway_config cfg, gateway_services services)
      : ioc(ioc), cfg(std::move(cfg)), services(std::move(services)), acceptor(ioc) {}

  boost::asio::io_context& ioc;
  const gateway_config cfg;
  const gateway_services services;
  boost::asio::ip::tcp::acceptor acceptor;
  std::atomic<bool> draining{false};

  // Live WebSocket sessions, for closing them all at shutdown.
  std::mutex sessions_mtx;
  std::set<std::weak_ptr<websocket_session>, std::owner_less<std::weak_ptr<websocket_session>>>
      sessions;

  void do_accept();
};

} // namespace chat::gateway
