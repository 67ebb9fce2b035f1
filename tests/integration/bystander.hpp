#pragma once
// Another user chatting, on a thread of its own, while a test does
// something hostile to the service (a flood, slow clients, a client that
// never reads): proves the hostile one does not hurt anybody else.

#include <atomic>
#include <string>
#include <thread>

#include "tests/integration/harness.hpp"

namespace chat::test {

class bystander {
public:
  /// Starts chatting at once: one message after another into one
  /// conversation (`content` should name a short mock reply), each read to
  /// its `done`. Client message ids are `prefix` and a counter.
  bystander(const service& svc, std::string prefix, std::string content);
  /// Stops (see stop()).
  ~bystander();

  /// Finishes the message in progress, at least one in all, and joins.
  void stop();
  /// Messages answered whole with finish reason `stop`, and the others
  /// (incomplete, another reason, or a failed check on the thread).
  int chats() const {
    return chats_;
  }
  int broken() const {
    return broken_;
  }

private:
  void run(uint16_t port, std::string path);

  std::string prefix_;
  std::string content_;
  std::atomic<bool> running_{true};
  std::atomic<int> chats_{0};
  std::atomic<int> broken_{0};
  std::thread thread_; // last: it uses the members above
};

} // namespace chat::test
