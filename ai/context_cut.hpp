#pragma once
/// How much conversation history goes to a provider (CHAT_CONTEXT_BYTES).
/// Pure.

#include <cstddef>
#include <vector>

#include "actors/messages.hpp"

namespace chat::ai {

/// The newest turns of `turns` (oldest first) whose contents fit in
/// `max_bytes` together, oldest first. The last turn (the user's new
/// message) always goes, whole, even when it alone is larger. History is cut
/// at a turn boundary, never inside a turn, and is contiguous: an older
/// short turn is not taken past a newer one that did not fit.
std::vector<chat_turn> cut_context(std::vector<chat_turn> turns, size_t max_bytes);

} // namespace chat::ai
