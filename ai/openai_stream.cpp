#include "ai/openai_stream.hpp"

#include <rapidjson/document.h>

namespace chat::ai {

namespace {

std::string error_text(const rapidjson::Value& err, size_t max_len) {
  if (err.IsString())
    return shorten_utf8({err.GetString(), err.GetStringLength()}, max_len);
  if (err.IsObject()) {
    auto msg = err.FindMember("message");
    if (msg != err.MemberEnd() && msg->value.IsString())
      return shorten_utf8({msg->value.GetString(), msg->value.GetStringLength()}, max_len);
  }
  return {};
}

} // namespace

void openai_stream::on_event(const sse_event_view& ev, std::string& delta) {
  if (done_ || failed())
    return;
  if (ev.data == "[DONE]") {
    done_ = true;
    return;
  }
  auto& doc = parse_event_json(ev.data);
  if (doc.HasParseError() || !doc.IsObject()) {
    if (ev.event == "error") {
      error_ = "provider reported an error";
      provider_detail_ = shorten_utf8(ev.data, 160);
    } else {
      error_ = "provider sent invalid data";
    }
    return;
  }
  if (auto err = doc.FindMember("error"); err != doc.MemberEnd() && !err->value.IsNull()) {
    error_ = "provider reported an error";
    provider_detail_ = error_text(err->value, 160);
    return;
  }
  if (auto choices = doc.FindMember("choices");
      choices != doc.MemberEnd() && choices->value.IsArray()) {
    for (auto& choice : choices->value.GetArray()) {
      if (!choice.IsObject())
        continue;
      // We ask for one choice (n = 1); ignore any other index.
      auto index = choice.FindMember("index");
      if (index != choice.MemberEnd() && index->value.IsInt() && index->value.GetInt() != 0)
        continue;
      auto d = choice.FindMember("delta");
      if (d != choice.MemberEnd() && d->value.IsObject()) {
        auto content = d->value.FindMember("content");
        if (content != d->value.MemberEnd() && content->value.IsString())
          delta.append(content->value.GetString(), content->value.GetStringLength());
      }
      auto fr = choice.FindMember("finish_reason");
      if (fr != choice.MemberEnd() && fr->value.IsString())
        finish_reason_.assign(fr->value.GetString(), fr->value.GetStringLength());
    }
  }
  if (auto usage = doc.FindMember("usage"); usage != doc.MemberEnd() && usage->value.IsObject()) {
    auto& u = usage->value;
    if (auto p = u.FindMember("prompt_tokens"); p != u.MemberEnd() && p->value.IsInt64())
      prompt_tokens_ = p->value.GetInt64();
    if (auto c = u.FindMember("completion_tokens"); c != u.MemberEnd() && c->value.IsInt64())
      completion_tokens_ = c->value.GetInt64();
  }
}

std::string openai_error_message(std::string_view body, size_t max_len) {
  rapidjson::Document doc;
  parse_json(doc, body);
  if (doc.HasParseError() || !doc.IsObject())
    return {};
  auto err = doc.FindMember("error");
  if (err == doc.MemberEnd())
    return {};
  return error_text(err->value, max_len);
}

} // namespace chat::ai
