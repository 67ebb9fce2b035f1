#include "actors/models.hpp"

namespace chat {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

} // namespace

bool model_catalog::parse(std::string_view text, model_catalog& out, std::string& error) {
  out.models.clear();
  while (!text.empty()) {
    auto comma = text.find(',');
    auto item = trim(text.substr(0, comma));
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    if (item.empty())
      continue;
    model_info m;
    auto eq = item.find('=');
    m.name = std::string{trim(item.substr(0, eq))};
    m.provider = eq == std::string_view::npos ? "openai" : std::string{trim(item.substr(eq + 1))};
    if (m.name.empty() || (m.provider != "openai" && m.provider != "anthropic")) {
      error = "CHAT_MODELS: bad entry '" + std::string{item}
              + "' (expected name or name=openai|anthropic)";
      return false;
    }
    out.models.push_back(std::move(m));
  }
  if (out.models.empty()) {
    error = "CHAT_MODELS: no model given";
    return false;
  }
  return true;
}

} // namespace chat
