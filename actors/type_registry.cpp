#include "actors/type_registry.hpp"

#include <caf/actor_system_config.hpp>

#include "actors/ai_actor.hpp"
#include "actors/conversation_actor.hpp"
#include "actors/errors.hpp"
#include "actors/messages.hpp"
#include "actors/session_actor.hpp"

namespace chat {

void register_message_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<chat_turn>("chat_turn")
      .add_message_type<std::vector<chat_turn>>("std::vector<chat_turn>")
      .add_message_type<generation_request>("generation_request")
      .add_message_type<generation_outcome>("generation_outcome")
      .add_message_type<stored_message>("stored_message")
      .add_message_type<std::vector<stored_message>>("std::vector<stored_message>")
      .add_message_type<user_message_write>("user_message_write")
      .add_message_type<append_result>("append_result")
      .add_message_type<write_check>("write_check")
      .add_message_type<cluster_member>("cluster_member")
      .add_message_type<cluster_members>("cluster_members")
      .add_message_type<conversation_snapshot>("conversation_snapshot")
      .add_message_type<conversation_summary>("conversation_summary")
      .add_message_type<std::vector<conversation_summary>>("std::vector<conversation_summary>")
      .add_message_type<conversation_page>("conversation_page")
      .add_message_type<message_page>("message_page")
      .add_message_type<protocol::send_frame>("send_frame")
      .add_message_type<protocol::subscribe_frame>("subscribe_frame")
      .add_message_type<protocol::unsubscribe_frame>("unsubscribe_frame")
      .add_message_type<protocol::cancel_frame>("cancel_frame")
      // Typed handles travel in messages too (a session's own handle in a
      // send, the conversation a directory answers from another node): CAF
      // serializes each by its registered name, and cannot send a message
      // holding a type it cannot name. (caf::actor is built in.)
      .add_message_type<conversation_actor>("conversation_actor")
      .add_message_type<session_events>("session_events")
      .add_message_type<reply_sink>("reply_sink");
  cfg.add_error_category(chat_error_category(),
                         [](uint8_t code, caf::atom_value, const caf::message& ctx) {
                           std::string s = "chat_error(";
                           s += protocol::to_string(static_cast<protocol::error_code>(code - 1));
                           if (ctx.match_elements<std::string>()) {
                             s += ", ";
                             s += ctx.get_as<std::string>(0);
                           }
                           s += ')';
                           return s;
                         });
  // The exit reason of a conversation that handed over (actors/errors.hpp):
  // it reaches sessions on other nodes, whose logs render it.
  cfg.add_error_category(caf::atom("chat_move"), [](uint8_t, caf::atom_value, const caf::message&) {
    return std::string{"conversation_moved"};
  });
}

} // namespace chat
