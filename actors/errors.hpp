#pragma once
/// Protocol errors as `caf::error`s, so that actor replies can carry them
/// (and they survive the trip between nodes). Category atom "chat"; the code
/// is the protocol's `error_code` plus one, because CAF 0.17 treats an error
/// with code 0 as "no error" (and `bad_request` is 0).

#include <string>

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/make_message.hpp>

#include "protocol/frames.hpp"

namespace chat {

inline caf::atom_value chat_error_category() {
  return caf::atom("chat");
}

/// An error answered to a client, with a message fit for people.
inline caf::error make_chat_error(protocol::error_code code, std::string message) {
  return caf::error{static_cast<uint8_t>(static_cast<uint8_t>(code) + 1), chat_error_category(),
                    caf::make_message(std::move(message))};
}

/// Turns any error from an actor reply into what the client is told:
/// our own errors keep their code and text; anything else (an actor gone,
/// a timeout, a database failure) is `unavailable`.
inline protocol::error_frame to_error_frame(const caf::error& err) {
  protocol::error_frame f;
  if (err && err.category() == chat_error_category()) {
    f.code = static_cast<protocol::error_code>(err.code() - 1);
    auto& ctx = err.context();
    if (ctx.match_elements<std::string>())
      f.message = ctx.get_as<std::string>(0);
  } else {
    f.code = protocol::error_code::unavailable;
    f.message = "service temporarily unavailable, please retry";
  }
  return f;
}

} // namespace chat
