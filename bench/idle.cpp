// chat_idle: opens N authenticated WebSocket connections to chatd and holds
// them idle (a read pending, so Beast answers the server's pings), for
// measuring what an idle connection costs the server (bench/run_idle.sh).
//
//   chat_idle --url ws://127.0.0.1:PORT/api/v1/chat/ws --secret SECRET
//             --connections N [--hold S] [--parallel P]
//
// Each connection is a different user (idle-<i>), so per-user limits do not
// interfere. Prints "open N" once all are up (or "open K of N, F failed"),
// then holds them for S seconds (default: until stdin closes) and exits 0 if
// none failed or dropped.

#include <atomic>
#include <chrono>
#include <functional>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include "gateway/jwt.hpp"

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;

struct options {
  std::string url;
  std::string secret;
  int connections = 1000;
  int hold_s = -1;
  int parallel = 200;
};

// Touched by the I/O thread; the main thread only reads them at the end.
struct totals {
  std::atomic<int> open{0};
  std::atomic<int> failed{0};
  std::atomic<int> dropped{0};
  int pending = 0; // connects in flight (I/O thread only)
  int next = 0;    // next connection to start (I/O thread only)
};

class idle_connection : public std::enable_shared_from_this<idle_connection> {
public:
  idle_connection(net::io_context& ioc, totals& t, std::function<void()> on_settled)
      : ws_(ioc), t_(t), on_settled_(std::move(on_settled)) {}

  void start(uint16_t port, std::string target) {
    target_ = std::move(target);
    port_ = port;
    beast::get_lowest_layer(ws_).expires_after(std::chrono::seconds{30});
    beast::get_lowest_layer(ws_).async_connect(
        tcp::endpoint{net::ip::make_address("127.0.0.1"), port},
        [self = shared_from_this()](beast::error_code ec) {
          if (ec)
            return self->settle(false);
          self->ws_.async_handshake("127.0.0.1:" + std::to_string(self->port_), self->target_,
                                    [self](beast::error_code ec) {
                                      if (ec)
                                        return self->settle(false);
                                      beast::get_lowest_layer(self->ws_).expires_never();
                                      self->settle(true);
                                      self->read();
                                    });
        });
  }

private:
  void settle(bool ok) {
    --t_.pending;
    ok ? ++t_.open : ++t_.failed;
    on_settled_();
  }

  void read() {
    ws_.async_read(buf_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) {
        --self->t_.open;
        ++self->t_.dropped;
        return;
      }
      self->buf_.consume(self->buf_.size());
      self->read();
    });
  }

  websocket::stream<beast::tcp_stream> ws_;
  totals& t_;
  std::function<void()> on_settled_;
  beast::flat_buffer buf_;
  std::string target_;
  uint16_t port_ = 0;
};

int usage() {
  std::cerr << "usage: chat_idle --url ws://127.0.0.1:PORT/PATH --secret SECRET --connections N\n"
               "                 [--hold S] [--parallel P]\n";
  return 2;
}

} // namespace

int main(int argc, char** argv) {
  options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    std::string v = argv[i + 1];
    if (a == "--url")
      o.url = v;
    else if (a == "--secret")
      o.secret = v;
    else if (a == "--connections")
      o.connections = std::stoi(v);
    else if (a == "--hold")
      o.hold_s = std::stoi(v);
    else if (a == "--parallel")
      o.parallel = std::max(1, std::stoi(v));
    else
      return usage();
  }
  const std::string prefix = "ws://127.0.0.1:";
  if (o.secret.empty() || o.url.rfind(prefix, 0) != 0)
    return usage();
  auto rest = o.url.substr(prefix.size());
  auto slash = rest.find('/');
  if (slash == std::string::npos)
    return usage();
  auto port = static_cast<uint16_t>(std::stoul(rest.substr(0, slash)));
  auto path = rest.substr(slash);

  net::io_context ioc{1};
  totals t;
  std::vector<std::shared_ptr<idle_connection>> conns;
  conns.reserve(static_cast<size_t>(o.connections));
  auto now_s = static_cast<int64_t>(std::time(nullptr));
  std::function<void()> pump;
  std::atomic<bool> reported{false};
  pump = [&] {
    while (t.pending < o.parallel && t.next < o.connections) {
      auto token
          = chat::auth::make_token("idle-" + std::to_string(t.next), o.secret, now_s, 24 * 3600);
      auto c = std::make_shared<idle_connection>(ioc, t, [&] { pump(); });
      conns.push_back(c);
      ++t.pending;
      ++t.next;
      c->start(port, path + "?token=" + token);
    }
    if (!reported && t.pending == 0 && t.next == o.connections) {
      reported = true;
      if (t.failed == 0)
        std::printf("open %d\n", t.open.load());
      else
        std::printf("open %d of %d, %d failed\n", t.open.load(), o.connections, t.failed.load());
      std::fflush(stdout);
    }
  };
  auto guard = net::make_work_guard(ioc);
  net::post(ioc, [&] { pump(); });
  // Holding: the io_context runs on its own thread; this one waits.
  std::thread io{[&] { ioc.run(); }};
  while (!reported)
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
  if (o.hold_s >= 0) {
    std::this_thread::sleep_for(std::chrono::seconds{o.hold_s});
  } else {
    std::string line;
    while (std::getline(std::cin, line)) {
    }
  }
  int failed = t.failed;
  int dropped = t.dropped;
  std::printf("held; failed %d, dropped %d\n", failed, dropped);
  std::fflush(stdout);
  std::_Exit(failed == 0 && dropped == 0 ? 0 : 1);
}
