#include "ai/mock_llm/mock_reply.hpp"

#include <algorithm>
#include <charconv>
#include <cstdint>

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace chat::mock_llm {

namespace {

using json_writer = rapidjson::Writer<rapidjson::StringBuffer>;

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::optional<int> parse_int(std::string_view str) {
  int result = 0;
  auto [ptr, ec] = std::from_chars(str.data(), str.data() + str.size(), result);
  if (ec != std::errc{} || ptr != str.data() + str.size() || result < 0)
    return std::nullopt;
  return result;
}

void write_string(json_writer& w, std::string_view str) {
  w.String(str.data(), static_cast<rapidjson::SizeType>(str.size()));
}

/// Text of a `content` value: a string, or the text parts of an array (the
/// newer OpenAI form, Anthropic's blocks), joined by newlines.
std::string content_text_of(const rapidjson::Value& content) {
  if (content.IsString())
    return {content.GetString(), content.GetStringLength()};
  std::string result;
  if (content.IsArray())
    for (auto& part : content.GetArray()) {
      if (!part.IsObject())
        continue;
      auto text = part.FindMember("text");
      if (text == part.MemberEnd() || !text->value.IsString())
        continue;
      if (!result.empty())
        result += '\n';
      result.append(text->value.GetString(), text->value.GetStringLength());
    }
  return result;
}

/// Text of a message's `content`.
std::string content_text(const rapidjson::Value& msg) {
  auto i = msg.FindMember("content");
  if (i == msg.MemberEnd())
    return {};
  return content_text_of(i->value);
}

/// The members every chunk and completion object starts with.
void write_head(json_writer& w, const chat_request& req, std::string_view obj, uint64_t id,
                int64_t created) {
  w.Key("id");
  write_string(w, "chatcmpl-mock-" + std::to_string(id));
  w.Key("object");
  write_string(w, obj);
  w.Key("created");
  w.Int64(created);
  w.Key("model");
  write_string(w, req.model);
}

void write_usage(json_writer& w, const chat_request& req, size_t n) {
  w.Key("usage");
  w.StartObject();
  w.Key("prompt_tokens");
  w.Uint64(req.prompt_tokens);
  w.Key("completion_tokens");
  w.Uint64(n);
  w.Key("total_tokens");
  w.Uint64(req.prompt_tokens + n);
  w.EndObject();
}

/// One SSE event `data: {chat.completion.chunk}\n\n`. `token` null means the
/// empty final delta; `finish` null writes `"finish_reason":null`; `usage`
/// writes the usage-only chunk with `"choices":[]`.
std::string chunk_event(const chat_request& req, uint64_t id, int64_t created,
                        const std::string* token, bool first, const char* finish,
                        std::optional<size_t> usage) {
  rapidjson::StringBuffer sb;
  json_writer w{sb};
  w.StartObject();
  write_head(w, req, "chat.completion.chunk", id, created);
  w.Key("choices");
  w.StartArray();
  if (!usage) {
    w.StartObject();
    w.Key("index");
    w.Int(0);
    w.Key("delta");
    w.StartObject();
    if (first) {
      w.Key("role");
      w.String("assistant");
    }
    if (token) {
      w.Key("content");
      write_string(w, *token);
    }
    w.EndObject();
    w.Key("finish_reason");
    if (finish)
      w.String(finish);
    else
      w.Null();
    w.EndObject();
  }
  w.EndArray();
  if (usage)
    write_usage(w, req, *usage);
  w.EndObject();
  std::string event = "data: ";
  event.append(sb.GetString(), sb.GetSize());
  event += "\n\n";
  return event;
}

std::string http_head(int status, bool keep_alive, std::string_view extra) {
  const char* reason = "Error";
  switch (status) {
    case 200:
      reason = "OK";
      break;
    case 400:
      reason = "Bad Request";
      break;
    case 401:
      reason = "Unauthorized";
      break;
    case 404:
      reason = "Not Found";
      break;
    case 405:
      reason = "Method Not Allowed";
      break;
    case 429:
      reason = "Too Many Requests";
      break;
    case 500:
      reason = "Internal Server Error";
      break;
  }
  std::string head
      = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\nServer: mock_llm\r\n";
  head += extra;
  head += keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  return head;
}

std::string http_response(int status, std::string_view content_type, std::string_view body,
                          bool keep_alive, std::string_view extra = {}) {
  auto result = http_head(status, keep_alive, extra);
  result += "Content-Type: ";
  result += content_type;
  result += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  result += body;
  return result;
}

/// What both APIs' replies share: the tokens, when each is due, where a
/// failure mode cuts them and what happens after the last write.
struct reply_shape {
  size_t n = 1;           // tokens in the whole reply
  bool by_length = false; // n was cut to max_tokens
  std::vector<std::string> tokens;
  size_t cut = 0; // tokens actually sent
  after_steps last = after_steps::finish;
  int ttft_ms = 0;
  int delay_ms = 0;

  std::chrono::milliseconds token_at(size_t i) const {
    return std::chrono::milliseconds{ttft_ms + static_cast<int64_t>(i) * delay_ms};
  }
};

reply_shape shape_reply(const chat_request& req, const reply_settings& s) {
  reply_shape r;
  // A reply has at least one token ("Echo:"); max_tokens cuts it shorter.
  r.n = static_cast<size_t>(std::max(s.tokens, 1));
  if (req.max_tokens && static_cast<uint64_t>(*req.max_tokens) < r.n) {
    r.n = static_cast<size_t>(*req.max_tokens);
    r.by_length = true;
  }
  r.tokens = reply_tokens(req.text, r.n);
  if (s.fail == fail_mode::bad_utf8)
    r.tokens = bad_utf8_tokens(std::move(r.tokens));
  r.ttft_ms = s.ttft_ms;
  r.delay_ms = s.delay_ms;
  // The failure modes that break a started reply cut it after this many
  // tokens (before-first: none).
  r.cut = r.n;
  if (s.fail == fail_mode::before_first)
    r.cut = 0;
  else if (s.fail == fail_mode::mid_stream || s.fail == fail_mode::stall)
    r.cut = r.n / 2;
  else if (s.fail == fail_mode::keepalive)
    r.cut = 1;
  r.last = s.fail == fail_mode::stall       ? after_steps::stall
           : s.fail == fail_mode::keepalive ? after_steps::keepalive
           : r.cut < r.n                    ? after_steps::close
                                            : after_steps::finish;
  return r;
}

std::string sse_headers(bool keep_alive) {
  return http_head(200, keep_alive,
                   "Content-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                   "Transfer-Encoding: chunked\r\n")
         + "\r\n";
}

/// One Anthropic SSE event: `event: TYPE\ndata: JSON\n\n`.
std::string named_event(std::string_view type, const rapidjson::StringBuffer& sb) {
  std::string event = "event: ";
  event += type;
  event += "\ndata: ";
  event.append(sb.GetString(), sb.GetSize());
  event += "\n\n";
  return event;
}

void write_anthropic_usage(json_writer& w, const chat_request& req, size_t n) {
  w.Key("usage");
  w.StartObject();
  w.Key("input_tokens");
  w.Uint64(req.prompt_tokens);
  w.Key("output_tokens");
  w.Uint64(n);
  w.EndObject();
}

/// The `message` object (message_start's, or the non-streaming reply).
void write_message(json_writer& w, const chat_request& req, uint64_t id, const std::string* text,
                   const char* stop_reason, size_t output_tokens) {
  w.StartObject();
  w.Key("id");
  write_string(w, "msg_mock_" + std::to_string(id));
  w.Key("type");
  w.String("message");
  w.Key("role");
  w.String("assistant");
  w.Key("model");
  write_string(w, req.model);
  w.Key("content");
  w.StartArray();
  if (text) {
    w.StartObject();
    w.Key("type");
    w.String("text");
    w.Key("text");
    write_string(w, *text);
    w.EndObject();
  }
  w.EndArray();
  w.Key("stop_reason");
  if (stop_reason)
    w.String(stop_reason);
  else
    w.Null();
  w.Key("stop_sequence");
  w.Null();
  write_anthropic_usage(w, req, output_tokens);
  w.EndObject();
}

/// bad-utf8 marks where the lone surrogate goes with U+0001, which the JSON
/// writer escapes as `\u0001`; this turns that into `\udc00` (same length,
/// so HTTP chunk sizes stay right). No other token holds U+0001.
void lone_surrogates(reply_plan& plan) {
  constexpr std::string_view marker = "\\u0001";
  for (auto& step : plan.steps)
    for (auto pos = step.bytes.find(marker); pos != std::string::npos;
         pos = step.bytes.find(marker, pos))
      step.bytes.replace(pos, marker.size(), "\\udc00");
}

/// The Retry-After header line of an http429 reply.
std::string retry_after_header(const reply_settings& s) {
  return "Retry-After: " + std::to_string(s.retry_after) + "\r\n";
}

} // namespace

std::vector<std::string> bad_utf8_tokens(std::vector<std::string> tokens) {
  if (tokens.size() > 1)
    tokens[1] += "\x01"; // becomes \udc00 in the JSON: see lone_surrogates
  if (tokens.size() > 2)
    tokens[2] += "\xFF";
  if (tokens.size() > 4) {
    tokens[3] += "\xC3";
    tokens[4].insert(0, "\xA9");
  }
  return tokens;
}

std::optional<fail_mode> parse_fail_mode(std::string_view str) {
  if (str == "none")
    return fail_mode::none;
  if (str == "http500")
    return fail_mode::http500;
  if (str == "before-first")
    return fail_mode::before_first;
  if (str == "mid-stream")
    return fail_mode::mid_stream;
  if (str == "stall")
    return fail_mode::stall;
  if (str == "http429")
    return fail_mode::http429;
  if (str == "keepalive")
    return fail_mode::keepalive;
  if (str == "bad-utf8")
    return fail_mode::bad_utf8;
  return std::nullopt;
}

std::vector<std::string_view> split_words(std::string_view text) {
  std::vector<std::string_view> words;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && is_space(text[i]))
      ++i;
    auto begin = i;
    while (i < text.size() && !is_space(text[i]))
      ++i;
    if (i > begin)
      words.push_back(text.substr(begin, i - begin));
  }
  return words;
}

void take_directives(std::string& text, chat_request& req) {
  static constexpr std::string_view prefix = "[[mock";
  size_t pos = 0;
  while ((pos = text.find(prefix, pos)) != std::string::npos) {
    auto end = text.find("]]", pos);
    if (end == std::string::npos)
      return;
    auto after = pos + prefix.size();
    // "[[mockery]]" is text, not a directive.
    if (after < end && !is_space(text[after])) {
      pos = after;
      continue;
    }
    auto body = std::string_view{text}.substr(after, end - after);
    for (auto kv : split_words(body)) {
      auto eq = kv.find('=');
      if (eq == std::string_view::npos)
        continue;
      auto key = kv.substr(0, eq);
      auto val = kv.substr(eq + 1);
      if (key == "fail")
        req.fail = parse_fail_mode(val);
      else if (auto num = parse_int(val); !num)
        continue;
      else if (key == "tokens")
        req.tokens = *num;
      else if (key == "ttft_ms")
        req.ttft_ms = *num;
      else if (key == "delay_ms")
        req.delay_ms = *num;
      else if (key == "retry_after")
        req.retry_after = *num;
    }
    text.erase(pos, end + 2 - pos);
  }
}

std::optional<std::string> parse_chat_request(std::string_view body, chat_request& out) {
  rapidjson::Document doc;
  doc.Parse(body.data(), body.size());
  if (doc.HasParseError())
    return std::string{"invalid JSON body: "} + rapidjson::GetParseError_En(doc.GetParseError())
           + " (offset " + std::to_string(doc.GetErrorOffset()) + ")";
  if (!doc.IsObject())
    return "the body must be a JSON object";
  auto msgs = doc.FindMember("messages");
  if (msgs == doc.MemberEnd() || !msgs->value.IsArray())
    return "'messages' is a required array";
  if (auto i = doc.FindMember("model"); i != doc.MemberEnd() && i->value.IsString())
    out.model.assign(i->value.GetString(), i->value.GetStringLength());
  if (auto i = doc.FindMember("stream"); i != doc.MemberEnd() && i->value.IsBool())
    out.stream = i->value.GetBool();
  if (auto i = doc.FindMember("stream_options"); i != doc.MemberEnd() && i->value.IsObject()) {
    auto j = i->value.FindMember("include_usage");
    out.include_usage = j != i->value.MemberEnd() && j->value.IsBool() && j->value.GetBool();
  }
  for (auto key : {"max_tokens", "max_completion_tokens"})
    if (auto i = doc.FindMember(key);
        i != doc.MemberEnd() && i->value.IsInt64() && i->value.GetInt64() > 0)
      out.max_tokens = i->value.GetInt64();
  // Directives come only from the last user message; the prompt size counts
  // every message, that one without its directive.
  std::vector<std::string> texts;
  size_t last_user = SIZE_MAX;
  for (auto& msg : msgs->value.GetArray()) {
    if (!msg.IsObject())
      return "every message must be a JSON object";
    auto role = msg.FindMember("role");
    if (role != msg.MemberEnd() && role->value.IsString()
        && std::string_view{role->value.GetString()} == "user")
      last_user = texts.size();
    texts.push_back(content_text(msg));
  }
  if (last_user != SIZE_MAX) {
    take_directives(texts[last_user], out);
    out.text = texts[last_user];
  }
  out.prompt_tokens = 0;
  for (auto& text : texts)
    out.prompt_tokens += split_words(text).size();
  return std::nullopt;
}

reply_settings effective_settings(const chat_request& req, reply_settings defaults) {
  auto s = defaults;
  if (req.tokens)
    s.tokens = *req.tokens;
  if (req.ttft_ms)
    s.ttft_ms = *req.ttft_ms;
  if (req.delay_ms)
    s.delay_ms = *req.delay_ms;
  if (req.fail)
    s.fail = *req.fail;
  if (req.retry_after)
    s.retry_after = *req.retry_after;
  return s;
}

std::vector<std::string> reply_tokens(std::string_view text, size_t n) {
  std::vector<std::string> tokens;
  tokens.reserve(n);
  if (n > 0)
    tokens.emplace_back("Echo:");
  for (auto word : split_words(text)) {
    if (tokens.size() == n)
      return tokens;
    tokens.emplace_back(" ").append(word);
  }
  while (tokens.size() < n)
    tokens.emplace_back(" w" + std::to_string(tokens.size()));
  return tokens;
}

std::string json_error(std::string_view message, std::string_view type, std::string_view code) {
  rapidjson::StringBuffer sb;
  json_writer w{sb};
  w.StartObject();
  w.Key("error");
  w.StartObject();
  w.Key("message");
  write_string(w, message);
  w.Key("type");
  write_string(w, type);
  w.Key("param");
  w.Null();
  w.Key("code");
  write_string(w, code);
  w.EndObject();
  w.EndObject();
  return {sb.GetString(), sb.GetSize()};
}

std::string http_chunk(std::string_view data) {
  char size[20];
  auto [end, ec] = std::to_chars(size, size + sizeof(size), data.size(), 16);
  std::string result{size, end};
  result += "\r\n";
  result += data;
  result += "\r\n";
  return result;
}

reply_plan make_simple_plan(int status, std::string body, bool keep_alive,
                            std::string_view content_type) {
  reply_plan plan;
  plan.status = status;
  plan.steps.push_back(
      {std::chrono::milliseconds{0}, http_response(status, content_type, body, keep_alive)});
  return plan;
}

namespace {

reply_plan chat_plan(const chat_request& req, const reply_settings& s, uint64_t id, int64_t created,
                     bool keep_alive) {
  using std::chrono::milliseconds;
  if (s.fail == fail_mode::http500)
    return make_simple_plan(500,
                            json_error("The server had an error (mock_llm "
                                       "--fail http500).",
                                       "server_error", "server_error"),
                            keep_alive);
  if (s.fail == fail_mode::http429) {
    reply_plan plan;
    plan.status = 429;
    auto body = json_error("Rate limit reached (mock_llm --fail http429).", "requests",
                           "rate_limit_exceeded");
    plan.steps.push_back({milliseconds{0}, http_response(429, "application/json", body, keep_alive,
                                                         retry_after_header(s))});
    return plan;
  }
  auto shape = shape_reply(req, s);
  auto n = shape.n;
  auto cut = shape.cut;
  auto& tokens = shape.tokens;
  const char* finish = shape.by_length ? "length" : "stop";
  auto token_at = [&](size_t i) { return shape.token_at(i); };
  reply_plan plan;
  plan.last = shape.last;
  if (!req.stream) {
    // Non-streaming: the whole completion once it would be generated; the
    // failure modes cut the body bytes instead of the tokens.
    std::string content;
    for (auto& tok : tokens)
      content += tok;
    rapidjson::StringBuffer sb;
    json_writer w{sb};
    w.StartObject();
    write_head(w, req, "chat.completion", id, created);
    w.Key("choices");
    w.StartArray();
    w.StartObject();
    w.Key("index");
    w.Int(0);
    w.Key("message");
    w.StartObject();
    w.Key("role");
    w.String("assistant");
    w.Key("content");
    write_string(w, content);
    w.EndObject();
    w.Key("finish_reason");
    w.String(finish);
    w.EndObject();
    w.EndArray();
    write_usage(w, req, n);
    w.EndObject();
    std::string body{sb.GetString(), sb.GetSize()};
    auto response = http_response(200, "application/json", body, keep_alive);
    if (cut < n)
      response.resize(response.size() - body.size() + body.size() * cut / n);
    plan.steps.push_back({token_at(n - 1), std::move(response)});
    return plan;
  }
  plan.stream = true;
  plan.steps.push_back({milliseconds{0}, sse_headers(keep_alive)});
  for (size_t i = 0; i < cut; ++i)
    plan.steps.push_back({token_at(i), http_chunk(chunk_event(req, id, created, &tokens[i], i == 0,
                                                              nullptr, std::nullopt))});
  if (cut < n)
    return plan;
  auto end = token_at(n - 1);
  plan.steps.push_back(
      {end, http_chunk(chunk_event(req, id, created, nullptr, false, finish, std::nullopt))});
  if (req.include_usage)
    plan.steps.push_back(
        {end, http_chunk(chunk_event(req, id, created, nullptr, false, nullptr, n))});
  plan.steps.push_back({end, http_chunk("data: [DONE]\n\n") + "0\r\n\r\n"});
  return plan;
}

} // namespace

reply_plan make_chat_plan(const chat_request& req, const reply_settings& s, uint64_t id,
                          int64_t created, bool keep_alive) {
  auto plan = chat_plan(req, s, id, created, keep_alive);
  if (s.fail == fail_mode::bad_utf8)
    lone_surrogates(plan);
  return plan;
}

std::optional<std::string> parse_messages_request(std::string_view body, chat_request& out) {
  if (auto err = parse_chat_request(body, out))
    return err;
  // parse_chat_request succeeded: the body is a JSON object.
  rapidjson::Document doc;
  doc.Parse(body.data(), body.size());
  if (doc.HasMember("system"))
    out.prompt_tokens += split_words(content_text_of(doc["system"])).size();
  return std::nullopt;
}

std::string anthropic_error(std::string_view message, std::string_view type) {
  rapidjson::StringBuffer sb;
  json_writer w{sb};
  w.StartObject();
  w.Key("type");
  w.String("error");
  w.Key("error");
  w.StartObject();
  w.Key("type");
  write_string(w, type);
  w.Key("message");
  write_string(w, message);
  w.EndObject();
  w.EndObject();
  return {sb.GetString(), sb.GetSize()};
}

namespace {

reply_plan messages_plan(const chat_request& req, const reply_settings& s, uint64_t id,
                         bool keep_alive) {
  using std::chrono::milliseconds;
  if (s.fail == fail_mode::http500)
    return make_simple_plan(
        500, anthropic_error("Internal server error (mock_llm --fail http500).", "api_error"),
        keep_alive);
  if (s.fail == fail_mode::http429) {
    reply_plan plan;
    plan.status = 429;
    auto body
        = anthropic_error("Rate limit reached (mock_llm --fail http429).", "rate_limit_error");
    plan.steps.push_back({milliseconds{0}, http_response(429, "application/json", body, keep_alive,
                                                         retry_after_header(s))});
    return plan;
  }
  auto shape = shape_reply(req, s);
  const char* stop_reason = shape.by_length ? "max_tokens" : "end_turn";
  reply_plan plan;
  plan.last = shape.last;
  if (!req.stream) {
    // Non-streaming: the whole message once it would be generated; the
    // failure modes cut the body bytes instead of the tokens.
    std::string text;
    for (auto& tok : shape.tokens)
      text += tok;
    rapidjson::StringBuffer sb;
    json_writer w{sb};
    write_message(w, req, id, &text, stop_reason, shape.n);
    std::string body{sb.GetString(), sb.GetSize()};
    auto response = http_response(200, "application/json", body, keep_alive);
    if (shape.cut < shape.n)
      response.resize(response.size() - body.size() + body.size() * shape.cut / shape.n);
    plan.steps.push_back({shape.token_at(shape.n - 1), std::move(response)});
    return plan;
  }
  plan.stream = true;
  plan.steps.push_back({milliseconds{0}, sse_headers(keep_alive)});
  auto event = [&](milliseconds at, std::string_view type, auto&& fill) {
    rapidjson::StringBuffer sb;
    json_writer w{sb};
    w.StartObject();
    w.Key("type");
    write_string(w, type);
    fill(w);
    w.EndObject();
    plan.steps.push_back({at, http_chunk(named_event(type, sb))});
  };
  // The preamble goes out with the first token, so that a first-token
  // timeout sees the same silence as on the OpenAI endpoint.
  if (shape.cut > 0) {
    auto first = shape.token_at(0);
    event(first, "message_start", [&](json_writer& w) {
      w.Key("message");
      // output_tokens 1, as Anthropic sends it here.
      write_message(w, req, id, nullptr, nullptr, 1);
    });
    event(first, "content_block_start", [&](json_writer& w) {
      w.Key("index");
      w.Int(0);
      w.Key("content_block");
      w.StartObject();
      w.Key("type");
      w.String("text");
      w.Key("text");
      w.String("");
      w.EndObject();
    });
    event(first, "ping", [](json_writer&) {});
  }
  for (size_t i = 0; i < shape.cut; ++i)
    event(shape.token_at(i), "content_block_delta", [&](json_writer& w) {
      w.Key("index");
      w.Int(0);
      w.Key("delta");
      w.StartObject();
      w.Key("type");
      w.String("text_delta");
      w.Key("text");
      write_string(w, shape.tokens[i]);
      w.EndObject();
    });
  if (shape.cut < shape.n)
    return plan;
  auto end = shape.token_at(shape.n - 1);
  event(end, "content_block_stop", [](json_writer& w) {
    w.Key("index");
    w.Int(0);
  });
  event(end, "message_delta", [&](json_writer& w) {
    w.Key("delta");
    w.StartObject();
    w.Key("stop_reason");
    w.String(stop_reason);
    w.Key("stop_sequence");
    w.Null();
    w.EndObject();
    w.Key("usage");
    w.StartObject();
    w.Key("output_tokens");
    w.Uint64(shape.n);
    w.EndObject();
  });
  event(end, "message_stop", [](json_writer&) {});
  plan.steps.back().bytes += "0\r\n\r\n";
  return plan;
}

} // namespace

reply_plan make_messages_plan(const chat_request& req, const reply_settings& s, uint64_t id,
                              bool keep_alive) {
  auto plan = messages_plan(req, s, id, keep_alive);
  if (s.fail == fail_mode::bad_utf8)
    lone_surrogates(plan);
  return plan;
}

} // namespace chat::mock_llm
