#pragma once
/// The inbound frame budget of one WebSocket connection, a token bucket:
/// every frame a client sends costs one token, whatever it is (a message,
/// valid or not, or a ping or pong); tokens come back at `per_sec` up to
/// `burst`. A client that runs out is flooding: websocket_session answers
/// `rate_limited` and closes with 1008. Pure, so that it is unit-tested
/// without sockets (tests/gateway/frame_budget_test.cpp). Internal to
/// gateway/.
///
/// Why per connection and per frame: a frame costs the server work whatever
/// it says (a subscribe is a database lookup, a bad one an error to encode,
/// a ping a pong to write), and the per-user send limit counts only sends.
/// Fragments of one message are not counted apart: a flood of them costs
/// what its bytes cost, and a message's bytes are capped.
///
/// Memory: idle connections are many, so a budget is two numbers; the rate
/// is the server's, passed to take().

#include <algorithm>
#include <cstdint>

namespace chat::gateway {

/// The budget every connection gets (CHAT_FRAMES_PER_SEC, CHAT_FRAME_BURST).
struct frame_rate {
  double per_sec = 50; ///< sustained; 0: no limit
  double burst = 200;  ///< frames at once, from a full budget
};

class frame_budget {
public:
  /// A full budget at `now_ms` (a steady clock in milliseconds).
  frame_budget(const frame_rate& rate, int64_t now_ms) : tokens_(rate.burst), last_ms_(now_ms) {}

  /// Takes one frame's token at `now_ms`; false when none is left (the
  /// frame is over the budget). Taking nothing never refills past `burst`.
  bool take(const frame_rate& rate, int64_t now_ms) {
    if (rate.per_sec <= 0)
      return true;
    if (now_ms > last_ms_) {
      tokens_ = std::min(rate.burst,
                         tokens_ + static_cast<double>(now_ms - last_ms_) * rate.per_sec / 1000.0);
      last_ms_ = now_ms;
    }
    if (tokens_ < 1)
      return false;
    tokens_ -= 1;
    return true;
  }

private:
  double tokens_;
  int64_t last_ms_;
};

} // namespace chat::gateway
