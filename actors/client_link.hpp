#pragma once
/// How a session actor talks to its WebSocket without knowing Beast: the
/// gateway implements `client_link`; actors only call it. Every call must
/// return at once (it only posts work onto the socket's strand).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <caf/message.hpp>

namespace chat {

/// A text frame ready to write. The bytes live inside the CAF message that
/// carried the event, so one encoded event is shared, not copied, by every
/// connection it goes to.
class shared_frame {
public:
  shared_frame() = default;
  shared_frame(caf::message holder, size_t index) : holder_(std::move(holder)), index_(index) {}
  explicit shared_frame(std::string text)
      : holder_(caf::make_message(std::move(text))), index_(0) {}

  std::string_view text() const {
    auto& s = holder_.get_as<std::string>(index_);
    return {s.data(), s.size()};
  }

private:
  caf::message holder_;
  size_t index_ = 0;
};

class client_link {
public:
  virtual ~client_link() = default;
  /// Queue a frame for writing. A connection whose client reads too slowly
  /// is closed instead of buffering without bound (see gateway/README).
  virtual void send(shared_frame frame) = 0;
  /// Close the WebSocket with `code` after the frames already queued.
  virtual void close(uint16_t code, std::string reason) = 0;
};

using client_link_ptr = std::weak_ptr<client_link>;

} // namespace chat
