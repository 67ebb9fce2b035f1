#include "ai/anthropic_request.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace chat::ai {

namespace {

void append_joined(std::string& to, const std::string& text) {
  if (!to.empty())
    to += "\n\n";
  to += text;
}

} // namespace

std::vector<chat_turn> anthropic_turns(const std::vector<chat_turn>& turns, std::string& system) {
  std::vector<chat_turn> out;
  for (auto& t : turns) {
    if (t.content.empty())
      continue;
    if (t.role == "system") {
      append_joined(system, t.content);
      continue;
    }
    std::string role = t.role == "assistant" ? "assistant" : "user";
    if (out.empty() && role == "assistant")
      continue; // the first turn must be the user's
    if (!out.empty() && out.back().role == role)
      append_joined(out.back().content, t.content);
    else
      out.push_back({std::move(role), t.content});
  }
  return out;
}

std::string anthropic_request_body(const generation_request& req, int max_tokens) {
  std::string system;
  auto turns = anthropic_turns(req.messages, system);
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w{sb};
  w.StartObject();
  w.Key("model");
  w.String(req.model.data(), static_cast<rapidjson::SizeType>(req.model.size()));
  w.Key("max_tokens");
  w.Int(max_tokens);
  w.Key("stream");
  w.Bool(true);
  if (!system.empty()) {
    w.Key("system");
    w.String(system.data(), static_cast<rapidjson::SizeType>(system.size()));
  }
  w.Key("messages");
  w.StartArray();
  for (auto& t : turns) {
    w.StartObject();
    w.Key("role");
    w.String(t.role.data(), static_cast<rapidjson::SizeType>(t.role.size()));
    w.Key("content");
    w.String(t.content.data(), static_cast<rapidjson::SizeType>(t.content.size()));
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return {sb.GetString(), sb.GetSize()};
}

} // namespace chat::ai
