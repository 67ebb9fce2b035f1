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

// -- store errors -------------------------------------------------------------

inline caf::atom_value store_error_category() {
  return caf::atom("chat_db");
}

/// How a store request failed, as far as its caller can know. The rule of
/// the service is that the database decides: only `transient` and
/// `permanent` are outcomes seen; anything else is `unknown`.
enum class store_failure : uint8_t {
  /// Not done (rolled back, or the database not reached); may be retried.
  transient = 1,
  /// Can never succeed as asked: a constraint or invalid data. Retrying
  /// the same write is pointless.
  permanent = 2,
  /// May or may not have been done: a commit whose answer was lost, and any
  /// failure that is not the store's own (a request timeout, the store
  /// actor gone).
  unknown = 3,
  /// Not done, and never will be by this writer: the conversation was
  /// claimed by another owner under a newer epoch (fencing). The writer
  /// hands the conversation over.
  fenced = 4,
};

/// The exit reason of a conversation actor that handed its conversation
/// over to another owner (fencing, or a new membership view): its sessions
/// follow the conversation through the directory.
inline caf::error conversation_moved() {
  return caf::error{1, caf::atom("chat_move")};
}

inline bool is_conversation_moved(const caf::error& err) {
  return err && err.category() == caf::atom("chat_move");
}

inline caf::error make_store_error(store_failure kind, std::string what) {
  return caf::error{static_cast<uint8_t>(kind), store_error_category(),
                    caf::make_message(std::move(what))};
}

inline store_failure classify_store_error(const caf::error& err) {
  if (err && err.category() == store_error_category() && err.code() >= 1 && err.code() <= 4)
    return static_cast<store_failure>(err.code());
  return store_failure::unknown;
}

} // namespace chat
