// A frame over the size limit closes the connection with 1009, and the
// connection is really gone afterwards even when the client never answers
// the close: the socket is shut after CHAT_CLOSE_TIMEOUT, the session is
// destroyed (the open-connections gauge, decremented by its destructor, goes
// back) and its session actor with it.

#include <thread>

#include <doctest/doctest.h>

#include "common/ids.hpp"
#include "tests/integration/harness.hpp"
#include "tests/integration/raw_ws.hpp"

using namespace chat::test;

namespace {

using clock_type = std::chrono::steady_clock;

/// Waits until the gauge reads `want`; returns the last value read.
int64_t wait_gauge(uint16_t port, const std::string& name, int64_t want,
                   std::chrono::milliseconds timeout) {
  auto deadline = clock_type::now() + timeout;
  for (;;) {
    auto v = gauge(port, name);
    if (v == want || clock_type::now() >= deadline)
      return v;
    std::this_thread::sleep_for(50ms);
  }
}

} // namespace

TEST_CASE("oversized frame: close 1009, then the socket is shut and the session gone even if "
          "the client never answers the close") {
  service::options opts;
  opts.chatd_env["CHAT_CLOSE_TIMEOUT"] = "1";
  service svc{opts};
  auto base = gauge(svc.port, "chat_connections_open");
  // Silent after the header, or still dribbling the announced payload: the
  // close handshake never completes either way.
  for (bool dribble : {false, true}) {
    CAPTURE(dribble);
    raw_ws ws{svc.port, svc.ws_path(unique_user())};
    // A frame that starts the session actor first.
    REQUIRE(ws.send_text(subscribe_frame(chat::new_uuid(), 0)));
    auto answer = ws.read();
    REQUIRE(answer.has_value());
    CHECK(str(parse(answer->payload), "code") == "not_found");
    CHECK(wait_gauge(svc.port, "chat_connections_open", base + 1, 5s) == base + 1);

    // 1 MiB announced (the limit is 64 KiB), a little of it sent.
    REQUIRE(ws.write_all(raw_ws::header(0x1, 1 << 20) + std::string(1000, 'x')));
    std::optional<raw_ws::frame> close;
    while (auto f = ws.read(10s))
      if (f->opcode == 0x8) {
        close = f;
        break;
      }
    REQUIRE(close.has_value());
    CHECK(close->close_code() == 1009);
    auto t0 = clock_type::now();
    // No close frame back, ever.
    bool shut = false;
    while (!shut && clock_type::now() - t0 < 15s) {
      if (dribble)
        ws.write_all(std::string(100, 'y'));
      shut = ws.wait_closed(100ms);
    }
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0).count();
    MESSAGE((dribble ? "dribbling" : "silent")
            << " client: socket shut " << ms << " ms after the 1009 (close timeout 1 s)");
    CHECK(shut);
    CHECK(wait_gauge(svc.port, "chat_connections_open", base, 5s) == base);
  }
  CHECK(http_request(svc.port, "GET", "/healthz").status == 200);
}
