#include "tests/integration/bystander.hpp"

#include <doctest/doctest.h>

namespace chat::test {

bystander::bystander(const service& svc, std::string prefix, std::string content)
    : prefix_(std::move(prefix)), content_(std::move(content)),
      thread_([this, port = svc.port, path = svc.ws_path(unique_user())] { run(port, path); }) {}

bystander::~bystander() {
  stop();
}

void bystander::stop() {
  running_ = false;
  if (thread_.joinable())
    thread_.join();
}

void bystander::run(uint16_t port, std::string path) {
  try {
    ws_client ws;
    REQUIRE(ws.connect(port, path) == 101);
    std::string conv;
    while (running_ || chats_ + broken_ == 0) {
      ws.send_text(send_frame(prefix_ + std::to_string(chats_ + broken_), content_, conv));
      auto ack = ws.read_until("ack");
      conv = str(ack, "conversationId");
      auto r = read_reply_of(ws, str(ack, "messageId"));
      if (r.complete() && r.finish_reason == "stop")
        ++chats_;
      else
        ++broken_;
    }
  } catch (...) { // a failed REQUIRE must not escape the thread
    ++broken_;
  }
}

} // namespace chat::test
