#pragma once
/// The models a `send` may name (CHAT_MODELS).

#include <string>
#include <string_view>
#include <vector>

namespace chat {

struct model_info {
  std::string name;
  std::string provider; // "openai" or "anthropic"
};

struct model_catalog {
  std::vector<model_info> models; ///< the first is the default

  /// Parses "a,b=anthropic,c=openai". False (with `error` set) when empty or
  /// a provider is unknown.
  static bool parse(std::string_view text, model_catalog& out, std::string& error);

  /// The model named `name`, the default when `name` is empty, or nullptr.
  const model_info* find(std::string_view name) const {
    if (name.empty())
      return models.empty() ? nullptr : &models.front();
    for (auto& m : models)
      if (m.name == name)
        return &m;
    return nullptr;
  }
};

} // namespace chat
