#include "ai/model_limits.hpp"

namespace chat::ai {

namespace {

struct model_limit {
  std::string_view name;
  int max_output_tokens;
};

// From the providers' model pages (platform.openai.com/docs/models and
// docs.anthropic.com/en/docs/about-claude/models, "max output"), as of
// mid-2025. OpenAI's o-series is left out on purpose: it rejects
// `max_tokens` (it wants `max_completion_tokens`), so it is sent without.
constexpr model_limit known_models[] = {
    {"gpt-4o", 16384},
    {"gpt-4o-mini", 16384},
    {"gpt-4.1", 32768},
    {"gpt-4.1-mini", 32768},
    {"gpt-4.1-nano", 32768},
    {"gpt-4-turbo", 4096},
    {"gpt-4", 8192},
    {"gpt-3.5-turbo", 4096},
    {"claude-3-haiku", 4096},
    {"claude-3-sonnet", 4096},
    {"claude-3-opus", 4096},
    {"claude-3-5-haiku", 8192},
    {"claude-3-5-sonnet", 8192},
    {"claude-3-7-sonnet", 64000},
    {"claude-sonnet-4", 64000},
    {"claude-opus-4", 32000},
};

} // namespace

std::optional<int> max_output_tokens(std::string_view model) {
  const model_limit* best = nullptr;
  for (auto& m : known_models) {
    if (model.substr(0, m.name.size()) != m.name)
      continue;
    if (model.size() > m.name.size() && model[m.name.size()] != '-')
      continue; // "gpt-4" is not "gpt-4o"
    if (best == nullptr || m.name.size() > best->name.size())
      best = &m;
  }
  if (best == nullptr)
    return std::nullopt;
  return best->max_output_tokens;
}

} // namespace chat::ai
