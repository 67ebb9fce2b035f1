// A client that never reads while a thousand replies stream to it: chatd's
// memory stays bounded (its write queue is capped, CHAT_MAX_PENDING_BYTES),
// the connection is closed with 1013, other users are unaffected, and
// nothing is lost: every reply is in the database whole, and the client,
// reconnecting, resumes each conversation with `subscribe` from the last
// seq it had.

#include <atomic>
#include <fstream>
#include <map>
#include <thread>

#include <doctest/doctest.h>

#include "tests/integration/bystander.hpp"
#include "tests/integration/harness.hpp"
#include "tests/integration/raw_ws.hpp"

using namespace chat::test;

namespace {

using clock_type = std::chrono::steady_clock;

constexpr int conversations = 10;
constexpr int replies_each = 100; // 1,000 in all, each round
constexpr int tokens = 50;

/// The content of a user message: `tokens - 1` long words, which the mock
/// echoes one per token (about 5 KB a reply).
std::string long_content(int conv, int i) {
  std::string out;
  for (int w = 1; w < tokens; ++w)
    out += std::string(100, static_cast<char>('a' + (conv + i + w) % 26)) + " ";
  return out + "[[mock tokens=" + std::to_string(tokens) + " delay_ms=0 ttft_ms=0]]";
}

int64_t rss_bytes(int pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/status"};
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmRSS:", 0) == 0)
      return std::stoll(line.substr(6)) * 1024;
  return -1;
}

/// One writer: `replies_each` messages into its conversation, each sent
/// once the previous one is acked (so replies queue behind each other and
/// stream back to back), then every reply read whole.
struct writer_result {
  int whole = 0;
  int64_t bytes = 0; // what this connection received
  std::string problem;
};

void write_conversation(const service& svc, const std::string& user, const std::string& conv,
                        int index, int round, writer_result& out) {
  try {
    ws_client ws;
    REQUIRE(ws.connect(svc.port, svc.ws_path(user)) == 101);
    std::map<std::string, assembled> replies; // by user message id
    std::map<std::string, std::string> expected;
    auto feed = [&](const std::string& text) {
      out.bytes += static_cast<int64_t>(text.size());
      auto d = parse(text);
      auto reply_to = str(d, "replyTo");
      if (!reply_to.empty() && (str(d, "type") == "chunk" || str(d, "type") == "done"))
        replies[reply_to].feed(text);
    };
    for (int i = 0; i < replies_each; ++i) {
      auto content = long_content(index, i);
      auto id
          = "nr-" + std::to_string(round) + "-" + std::to_string(index) + "-" + std::to_string(i);
      ws.send_text(send_frame(id, content, conv));
      std::vector<std::string> before;
      auto ack = ws.read_until("ack", &before, 30s);
      for (auto& f : before)
        feed(f);
      expected[str(ack, "messageId")] = mock_reply(content, tokens);
    }
    auto deadline = clock_type::now() + 60s;
    auto done = [&] {
      int n = 0;
      for (auto& [id, r] : replies)
        n += r.dones;
      return n;
    };
    while (done() < replies_each) {
      auto text = ws.read(left_until(deadline));
      if (!text) {
        out.problem = "the writer's stream ended early";
        return;
      }
      feed(*text);
    }
    for (auto& [id, content] : expected) {
      auto& r = replies[id];
      out.whole += r.complete() && r.finish_reason == "stop" && r.content() == content;
    }
  } catch (...) { // a failed REQUIRE must not escape the thread
    out.problem = "a failed check in the writer's thread";
  }
}

} // namespace

TEST_CASE("never-reading client: 1,000 replies stream to a client that never reads: memory "
          "stays bounded, it is closed with 1013, others are unaffected, nothing is lost") {
  service::options opts;
  opts.chatd_env["CHAT_USER_SENDS_PER_MIN"] = "0";
  service svc{opts};
  auto user = unique_user();

  // The conversations, each with one exchange.
  std::vector<std::string> convs;
  {
    ws_client ws;
    REQUIRE(ws.connect(svc.port, svc.ws_path(user)) == 101);
    for (int c = 0; c < conversations; ++c) {
      ws.send_text(send_frame("nr-setup-" + std::to_string(c), "hello [[mock tokens=2]]"));
      auto ack = ws.read_until("ack");
      convs.push_back(str(ack, "conversationId"));
      ws.read_until("done");
    }
  }

  // Round 0 without the stalled client measures what streaming 1,000
  // replies costs the heap by itself (the conversations' recent context, the
  // writers' streams, the database's batches); round 1 streams as much
  // again with it subscribed to every conversation.
  std::unique_ptr<raw_ws> stalled;
  int64_t growth[2] = {0, 0};
  int64_t streamed = 0;
  auto mib = [](int64_t b) { return static_cast<double>(b) / (1 << 20); };
  for (int round = 0; round < 2; ++round) {
    if (round == 1) {
      // The client that never reads: a small receive window, subscribed to
      // every conversation from where it is now, and then nothing.
      stalled = std::make_unique<raw_ws>(svc.port, svc.ws_path(user), 4096);
      for (auto& conv : convs)
        REQUIRE(stalled->send_text(subscribe_frame(conv, 2 + 2 * replies_each)));
    }
    auto heap0 = gauge(svc.port, "chat_heap_in_use_bytes");
    auto rss0 = rss_bytes(svc.chatd->pid());
    std::atomic<bool> streaming{true};
    int64_t heap_peak = heap0, rss_peak = rss0;
    std::thread sampler{[&] {
      while (streaming) {
        heap_peak = std::max(heap_peak, gauge(svc.port, "chat_heap_in_use_bytes"));
        rss_peak = std::max(rss_peak, rss_bytes(svc.chatd->pid()));
        std::this_thread::sleep_for(50ms);
      }
    }};

    // Another user chats meanwhile.
    bystander other{svc, "other-", "hi [[mock tokens=4]]"};

    auto t0 = clock_type::now();
    std::vector<writer_result> results(conversations);
    std::vector<std::thread> writers;
    for (int c = 0; c < conversations; ++c)
      writers.emplace_back(write_conversation, std::cref(svc), user, convs[c], c, round,
                           std::ref(results[c]));
    for (auto& w : writers)
      w.join();
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - t0).count();
    streaming = false;
    sampler.join();
    other.stop();

    int whole = 0;
    streamed = 0;
    for (auto& r : results) {
      CHECK_MESSAGE(r.problem.empty(), r.problem);
      whole += r.whole;
      streamed += r.bytes;
    }
    growth[round] = heap_peak - heap0;
    MESSAGE("round " << round
                     << std::string{round == 0 ? " (nobody stalled)" : " (a client never reads)"}
                     << ": " << whole << " replies whole in " << ms << " ms, " << mib(streamed)
                     << " MiB to the writers; chatd heap in use " << mib(heap0)
                     << " MiB before, peak " << mib(heap_peak) << " MiB; RSS " << mib(rss0)
                     << " MiB before, peak " << mib(rss_peak) << " MiB; another user chatted "
                     << other.chats() << " times, " << other.broken() << " broken");
    CHECK(whole == conversations * replies_each);
    CHECK(other.chats() > 0);
    CHECK(other.broken() == 0);
  }
  CHECK(gauge(svc.port, "chat_connections_closed_slow_total") == 1);
  // The stalled client was sent at least what the writers got (the user
  // messages too), yet it cost at most its write queue's cap (4 MiB) and
  // some slack: its queue was dropped at the cap, not kept.
  MESSAGE("the client that never reads cost the heap "
          << mib(growth[1] - growth[0]) << " MiB more at its peak, of about " << mib(streamed)
          << " MiB sent to it");
  CHECK(growth[1] - growth[0] < 8 * (1 << 20));

  // The client reads at last: what was in flight, then the close 1013. It
  // remembers the last seq it had whole in each conversation.
  std::map<std::string, int64_t> had;
  int close_code = 0;
  while (auto f = stalled->read(10s)) {
    if (f->opcode == 0x8) {
      close_code = f->close_code();
      break;
    }
    if (f->opcode != 0x1)
      continue;
    auto d = parse(f->payload);
    auto type = str(d, "type");
    if (type == "message" || type == "done")
      had[str(d, "conversationId")] = std::max(had[str(d, "conversationId")], num(d, "seq"));
  }
  CHECK(close_code == 1013);

  // Nothing lost: all of it is stored, and a new connection resumes every
  // conversation from where the old one stopped.
  constexpr int64_t last_seq = 2 + 2 * 2 * replies_each;
  ws_client again;
  REQUIRE(again.connect(svc.port, svc.ws_path(user)) == 101);
  int64_t resumed = 0;
  for (auto& conv : convs) {
    CHECK(check_history_whole(conv) == last_seq);
    auto from = had.count(conv) > 0 ? had[conv] : 2 + 2 * replies_each;
    again.send_text(subscribe_frame(conv, from));
    for (auto seq = from + 1; seq <= last_seq; ++seq) {
      auto m = again.read_json();
      REQUIRE(str(m, "type") == "message");
      CHECK(str(m, "conversationId") == conv);
      CHECK(num(m, "seq") == seq);
      ++resumed;
    }
  }
  MESSAGE("reconnected: " << resumed << " messages resumed after what the client had");
  CHECK(frames_before_pong(again, 1).empty()); // nothing more, nothing twice
}
