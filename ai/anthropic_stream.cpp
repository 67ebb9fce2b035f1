#include "ai/anthropic_stream.hpp"

#include <rapidjson/document.h>

namespace chat::ai {

namespace {

std::string_view str(const rapidjson::Value& v) {
  return {v.GetString(), v.GetStringLength()};
}

/// The string member `key` of `obj`, or empty.
std::string_view string_member(const rapidjson::Value& obj, const char* key) {
  if (!obj.IsObject())
    return {};
  auto i = obj.FindMember(key);
  if (i == obj.MemberEnd() || !i->value.IsString())
    return {};
  return str(i->value);
}

/// `error.message` of an error object (or a plain string error).
std::string error_text(const rapidjson::Value& doc, size_t max_len) {
  if (!doc.IsObject())
    return {};
  auto err = doc.FindMember("error");
  if (err == doc.MemberEnd())
    return {};
  if (err->value.IsString())
    return shorten_utf8(str(err->value), max_len);
  return shorten_utf8(string_member(err->value, "message"), max_len);
}

void read_usage(const rapidjson::Value& obj, int64_t& input, int64_t& output) {
  if (!obj.IsObject())
    return;
  auto usage = obj.FindMember("usage");
  if (usage == obj.MemberEnd() || !usage->value.IsObject())
    return;
  auto& u = usage->value;
  if (auto i = u.FindMember("input_tokens"); i != u.MemberEnd() && i->value.IsInt64())
    input = i->value.GetInt64();
  if (auto o = u.FindMember("output_tokens"); o != u.MemberEnd() && o->value.IsInt64())
    output = o->value.GetInt64();
}

} // namespace

void anthropic_stream::on_event(const sse_event_view& ev, std::string& delta) {
  if (done_ || failed())
    return;
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
  // The data's "type" is authoritative; the event name is a copy of it.
  auto type = string_member(doc, "type");
  if (type.empty())
    type = ev.event;
  if (type == "content_block_delta") {
    auto d = doc.FindMember("delta");
    if (d != doc.MemberEnd() && string_member(d->value, "type") == "text_delta")
      delta += string_member(d->value, "text");
  } else if (type == "message_start") {
    auto msg = doc.FindMember("message");
    // output_tokens here is a placeholder (1): only message_delta's counts.
    int64_t ignored = -1;
    if (msg != doc.MemberEnd())
      read_usage(msg->value, prompt_tokens_, ignored);
  } else if (type == "message_delta") {
    auto d = doc.FindMember("delta");
    if (d != doc.MemberEnd()) {
      auto reason = string_member(d->value, "stop_reason");
      if (!reason.empty()) {
        stop_reason_ = reason;
        finish_reason_ = anthropic_finish_reason(reason);
      }
    }
    read_usage(doc, prompt_tokens_, completion_tokens_);
  } else if (type == "message_stop") {
    done_ = true;
  } else if (type == "error") {
    error_ = "provider reported an error";
    provider_detail_ = error_text(doc, 160);
  }
  // ping, content_block_start, content_block_stop and unknown types: nothing.
}

std::string anthropic_finish_reason(std::string_view stop_reason) {
  if (stop_reason == "end_turn" || stop_reason == "stop_sequence")
    return "stop";
  if (stop_reason == "max_tokens")
    return "length";
  return std::string{stop_reason};
}

std::string anthropic_error_message(std::string_view body, size_t max_len) {
  rapidjson::Document doc;
  parse_json(doc, body);
  if (doc.HasParseError())
    return {};
  return error_text(doc, max_len);
}

} // namespace chat::ai
