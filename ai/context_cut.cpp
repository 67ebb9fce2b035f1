#include "ai/context_cut.hpp"

#include <iterator>

namespace chat::ai {

std::vector<chat_turn> cut_context(std::vector<chat_turn> turns, size_t max_bytes) {
  if (turns.empty())
    return turns;
  size_t used = turns.back().content.size();
  size_t first = turns.size() - 1; // index of the oldest turn kept
  while (first > 0 && used + turns[first - 1].content.size() <= max_bytes) {
    --first;
    used += turns[first].content.size();
  }
  turns.erase(turns.begin(), turns.begin() + static_cast<std::ptrdiff_t>(first));
  return turns;
}

} // namespace chat::ai
