#pragma once
/// Encodes a chat context as the body of an Anthropic Messages request
/// (`POST /v1/messages`). Pure: text in, text out.
///
/// Anthropic wants the turns to alternate, starting with "user", each with
/// non-empty content, and any system prompt in the top-level "system"
/// field. So: "system" turns are joined (with "\n\n") into `system`; turns
/// with empty content are dropped (e.g. a reply that failed before its
/// first token); leading "assistant" turns are dropped; consecutive turns of
/// the same role are merged, their contents joined with "\n\n". Any role
/// other than "assistant" and "system" counts as "user".
///
///   {"model":M,"max_tokens":4096,"stream":true,"system":"...",
///    "messages":[{"role":"user","content":"..."},...]}

#include <string>
#include <vector>

#include "actors/messages.hpp"

namespace chat::ai {

/// Anthropic requires max_tokens; 4096 fits every current model.
constexpr int anthropic_max_tokens = 4096;

/// The turns as Anthropic accepts them (see above); system text in `system`.
std::vector<chat_turn> anthropic_turns(const std::vector<chat_turn>& turns, std::string& system);

/// The JSON body for `req` (`stream: true`).
std::string anthropic_request_body(const generation_request& req,
                                   int max_tokens = anthropic_max_tokens);

} // namespace chat::ai
