// One connection floods chatd with subscribes of random conversation ids
// (each answered not_found, each a database lookup) while another user
// chats: the other user's messages are still acked quickly and answered
// whole. Ack latencies are printed, never asserted (shared machines).

#include <algorithm>
#include <atomic>
#include <thread>

#include <doctest/doctest.h>

#include "common/ids.hpp"
#include "tests/integration/harness.hpp"

using namespace chat::test;

TEST_CASE("integration: 20,000 subscribes of random ids do not hold up another user's chat") {
  constexpr int subscribes = 20000;
  constexpr int window = 500; // subscribes in flight before reading answers
  service::options opts;
  opts.chatd_env["CHAT_USER_SENDS_PER_MIN"] = "0";
  // What this shows is that the node stays fair without the per-connection
  // frame budget, which would cut this flood off at once
  // (frame_flood_test.cpp).
  opts.chatd_env["CHAT_FRAMES_PER_SEC"] = "0";
  service svc{opts};

  ws_client flooder;
  REQUIRE(flooder.connect(svc.port, svc.ws_path(unique_user())) == 101);
  ws_client chatter;
  REQUIRE(chatter.connect(svc.port, svc.ws_path(unique_user())) == 101);

  std::atomic<bool> flooding{true};
  int not_found = 0;
  int other = 0; // frames that are not not_found errors, or missing answers
  auto t0 = std::chrono::steady_clock::now();
  std::thread flood{[&] {
    try {
      for (int sent = 0; sent < subscribes; sent += window) {
        for (int i = 0; i < window; ++i)
          flooder.send_text(subscribe_frame(chat::new_uuid(), 0));
        for (int i = 0; i < window; ++i) {
          auto f = flooder.read(30s);
          (f && str(parse(*f), "code") == "not_found" ? not_found : other)++;
        }
      }
    } catch (...) { // a failed REQUIRE must not escape the thread
      ++other;
    }
    flooding = false;
  }};

  // The other user chats in one conversation for as long as the flood lasts.
  std::vector<double> ack_ms;
  std::string conv;
  int incomplete = 0;
  while (flooding || ack_ms.empty()) {
    auto id = "fl-" + std::to_string(ack_ms.size());
    auto sent_at = std::chrono::steady_clock::now();
    chatter.send_text(send_frame(id, "during the flood [[mock tokens=5]]", conv));
    auto ack = chatter.read_until("ack");
    ack_ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - sent_at)
            .count());
    REQUIRE(str(ack, "clientMsgId") == id);
    conv = str(ack, "conversationId");
    auto reply = read_reply_of(chatter, str(ack, "messageId"));
    incomplete += !reply.complete() || reply.finish_reason != "stop";
  }
  flood.join();
  std::chrono::duration<double> took = std::chrono::steady_clock::now() - t0;

  CHECK(not_found == subscribes);
  CHECK(other == 0);
  CHECK(incomplete == 0);
  CHECK(check_history_whole(conv) == 2 * static_cast<int64_t>(ack_ms.size()));
  std::sort(ack_ms.begin(), ack_ms.end());
  auto at = [&](double q) { return ack_ms[static_cast<size_t>(q * (ack_ms.size() - 1))]; };
  MESSAGE(subscribes << " subscribes answered in " << took.count() << " s; the other user's "
                     << ack_ms.size() << " acks: p50 " << at(0.5) << " ms, p99 " << at(0.99)
                     << " ms, max " << ack_ms.back() << " ms");
}
