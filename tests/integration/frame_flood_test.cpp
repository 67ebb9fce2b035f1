// Hostile clients flooding one connection with frames of every type: each
// flood gets one `rate_limited` error and a close with 1008, while another
// user chats on the same chatd undisturbed, and what the flooder had acked
// before is stored. A client within its budget (a burst, then a steady
// rate) is never cut off. The budget is small here (burst 50, 20/s) so the
// floods are short; the defaults are in the README.

#include <atomic>
#include <thread>

#include <doctest/doctest.h>

#include "common/ids.hpp"
#include "tests/integration/bystander.hpp"
#include "tests/integration/harness.hpp"
#include "tests/integration/raw_ws.hpp"

using namespace chat::test;

namespace {

constexpr int burst = 50;
constexpr int per_sec = 20;
/// Frames per flood, written at once without reading: far past the burst.
constexpr int flood_frames = 400;

service::options flood_options() {
  service::options opts;
  opts.chatd_env = {{"CHAT_FRAMES_PER_SEC", std::to_string(per_sec)},
                    {"CHAT_FRAME_BURST", std::to_string(burst)},
                    {"CHAT_USER_SENDS_PER_MIN", "0"}};
  return opts;
}

struct flood_kind {
  const char* name;
  int opcode;
  /// The i-th frame's payload.
  std::string (*payload)(int i);
};

const flood_kind kinds[] = {
    {"ping", 0x1, [](int i) { return R"({"type":"ping","nonce":)" + std::to_string(i) + "}"; }},
    {"subscribe", 0x1, [](int) { return subscribe_frame(chat::new_uuid(), 0); }},
    {"unsubscribe", 0x1,
     [](int) { return R"({"type":"unsubscribe","conversationId":")" + chat::new_uuid() + "\"}"; }},
    {"cancel", 0x1, [](int) { return cancel_frame(chat::new_uuid(), chat::new_uuid()); }},
    {"send", 0x1,
     [](int i) { return send_frame("flood-" + std::to_string(i), "flood [[mock tokens=2]]"); }},
    {"unknown type", 0x1, [](int) { return std::string{R"({"type":"dance"})"}; }},
    {"bad JSON", 0x1, [](int) { return std::string{"{not json"}; }},
    {"WebSocket ping", 0x9, [](int) { return std::string{"p"}; }},
    {"WebSocket pong", 0xA, [](int) { return std::string{"p"}; }},
};

/// What a flooder saw after its flood.
struct flood_result {
  int frames = 0;       // text frames before the close
  int rate_limited = 0; // of them, rate_limited errors
  bool last_is_rate_limited = false;
  int close_code = 0;
  bool closed = false; // the server ended the TCP connection
  std::vector<std::string> acks;
};

/// Reads until the server's close frame, answers it, waits for the end.
flood_result read_to_close(raw_ws& ws) {
  flood_result r;
  for (;;) {
    auto f = ws.read(20s);
    if (!f)
      break;
    if (f->opcode == 0x8) {
      r.close_code = f->close_code();
      ws.send(0x8, f->payload.substr(0, 2)); // a polite client echoes it
      break;
    }
    if (f->opcode != 0x1)
      continue; // pongs
    ++r.frames;
    auto d = parse(f->payload);
    bool limited = str(d, "type") == "error" && str(d, "code") == "rate_limited";
    r.rate_limited += limited;
    r.last_is_rate_limited = limited;
    if (str(d, "type") == "ack")
      r.acks.push_back(str(d, "messageId"));
  }
  r.closed = ws.wait_closed(20s);
  return r;
}

} // namespace

TEST_CASE("frame flood: floods of every frame type get rate_limited and a close with 1008, "
          "another user's chat is unaffected, acked messages are kept") {
  service svc{flood_options()};

  // Another user chats the whole time.
  bystander calm{svc, "calm-", "calm [[mock tokens=4]]"};

  auto flooder = unique_user();
  std::vector<std::string> acked_before; // message ids acked before a flood
  int limited_closes = 0;
  for (auto& kind : kinds) {
    std::string name = kind.name;
    CAPTURE(name);
    raw_ws ws{svc.port, svc.ws_path(flooder)};
    if (name == "send") {
      // A few sends within the budget first, answered as usual.
      for (int i = 0; i < 3; ++i) {
        REQUIRE(
            ws.send_text(send_frame("calm-before-" + std::to_string(i), "x [[mock tokens=2]]")));
        for (;;) {
          auto f = ws.read();
          REQUIRE(f.has_value());
          auto d = parse(f->payload);
          if (str(d, "type") == "ack")
            acked_before.push_back(str(d, "messageId"));
          if (str(d, "type") == "done")
            break;
        }
      }
    }
    std::string bytes;
    for (int i = 0; i < flood_frames; ++i)
      bytes += raw_ws::encode(kind.opcode, kind.payload(i));
    ws.write_all(bytes); // the server may close before it takes it all
    auto r = read_to_close(ws);
    MESSAGE(name << " flood: " << r.frames << " text frames answered before the close "
                 << r.close_code);
    CHECK(r.rate_limited == 1);
    CHECK(r.last_is_rate_limited);
    CHECK(r.close_code == 1008);
    CHECK(r.closed);
    limited_closes += r.close_code == 1008;
    for (auto& id : r.acks)
      acked_before.push_back(id);
  }

  // A binary frame is refused on its own (PROTOCOL.md: 1003), before any
  // budget matters.
  {
    raw_ws ws{svc.port, svc.ws_path(flooder)};
    std::string bytes;
    for (int i = 0; i < flood_frames; ++i)
      bytes += raw_ws::encode(0x2, "\x01\x02");
    ws.write_all(bytes);
    auto r = read_to_close(ws);
    CHECK(r.rate_limited == 0);
    CHECK(r.close_code == 1003);
    CHECK(r.closed);
  }

  calm.stop();
  MESSAGE("the other user chatted " << calm.chats() << " times meanwhile, " << calm.broken()
                                    << " broken");
  CHECK(calm.chats() > 0);
  CHECK(calm.broken() == 0);
  CHECK(gauge(svc.port, "chat_connections_closed_flood_total") == limited_closes);

  // What was acked is stored.
  REQUIRE(acked_before.size() >= 3);
  for (auto& id : acked_before)
    CHECK(db_query1("SELECT count(*) FROM messages WHERE id = $1 AND user_id = $2", id, flooder)[0]
              .as<int>()
          == 1);
}

TEST_CASE("frame flood: a client within its budget (a burst, then a steady rate) is never "
          "cut off") {
  service svc{flood_options()};
  ws_client ws;
  REQUIRE(ws.connect(svc.port, svc.ws_path(unique_user())) == 101);
  // A burst just under the budget, as a reconnecting page resubscribing.
  for (int i = 0; i < burst - 5; ++i)
    ws.send_text(R"({"type":"ping","nonce":)" + std::to_string(i) + "}");
  for (int i = 0; i < burst - 5; ++i)
    CHECK(str(ws.read_json(), "type") == "pong");
  // Then half the sustained rate for a while: the budget refills faster.
  auto interval = std::chrono::milliseconds{2000 / per_sec};
  for (int i = 0; i < 3 * per_sec / 2; ++i) {
    std::this_thread::sleep_for(interval);
    CHECK(frames_before_pong(ws, 1000 + i).empty());
  }
  CHECK(ws.is_open());
  CHECK(gauge(svc.port, "chat_connections_closed_flood_total") == 0);
}
