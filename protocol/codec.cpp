#include "protocol/codec.hpp"

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <limits>

#include <rapidjson/document.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/encodedstream.h>
#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace chat::protocol {

namespace {

using rapidjson::SizeType;
using rapidjson::Value;
using json_writer = rapidjson::Writer<rapidjson::StringBuffer>;

// -- parsing ------------------------------------------------------------------

// Iterative: a recursive descent parser could overflow the stack on
// `[[[[...` long before the frame size limit is reached.
constexpr unsigned parse_flags
    = rapidjson::kParseValidateEncodingFlag | rapidjson::kParseIterativeFlag;

// Deeper input is refused: walking a value (Writer::Accept, to echo a ping
// nonce) is recursive. No valid frame needs more than 2 levels.
constexpr int max_depth = 32;

// Longest conversationId / model / messageId we read (bytes); server ids are
// UUIDs, model names are short.
constexpr size_t max_id_bytes = 128;

constexpr size_t max_client_msg_id = 64;

/// Forwards SAX events to a Document, refusing nesting beyond `max_depth`.
struct depth_limited {
  rapidjson::Document& doc;
  int depth = 0;
  bool too_deep = false;

  bool enter() {
    if (++depth <= max_depth)
      return true;
    too_deep = true;
    return false;
  }
  bool Null() {
    return doc.Null();
  }
  bool Bool(bool b) {
    return doc.Bool(b);
  }
  bool Int(int i) {
    return doc.Int(i);
  }
  bool Uint(unsigned i) {
    return doc.Uint(i);
  }
  bool Int64(int64_t i) {
    return doc.Int64(i);
  }
  bool Uint64(uint64_t i) {
    return doc.Uint64(i);
  }
  bool Double(double d) {
    return doc.Double(d);
  }
  bool RawNumber(const char* s, SizeType n, bool copy) {
    return doc.RawNumber(s, n, copy);
  }
  bool String(const char* s, SizeType n, bool copy) {
    return no_lone_surrogate(s, n) && doc.String(s, n, copy);
  }
  bool Key(const char* s, SizeType n, bool copy) {
    return no_lone_surrogate(s, n) && doc.Key(s, n, copy);
  }

  // RapidJSON 1.1 encodes a lone low-surrogate escape ("\udc00") as the bytes
  // ED B0 80, which are not UTF-8 and would go back out to clients. Raw input
  // is validated, so ED followed by A0..BF can only come from such an escape.
  static bool no_lone_surrogate(const char* s, SizeType n) {
    const char* end = s + n;
    while (auto p = static_cast<const char*>(std::memchr(s, 0xED, static_cast<size_t>(end - s)))) {
      if (p + 1 < end && static_cast<unsigned char>(p[1]) >= 0xA0)
        return false;
      s = p + 1;
    }
    return true;
  }
  bool StartObject() {
    return enter() && doc.StartObject();
  }
  bool EndObject(SizeType n) {
    --depth;
    return doc.EndObject(n);
  }
  bool StartArray() {
    return enter() && doc.StartArray();
  }
  bool EndArray(SizeType n) {
    --depth;
    return doc.EndArray(n);
  }
};

enum class parse_status { ok, invalid, too_deep };

parse_status parse(std::string_view text, rapidjson::Document& doc) {
  depth_limited handler{doc};
  bool ok = false;
  auto generate = [&](rapidjson::Document&) {
    rapidjson::MemoryStream ms{text.data(), text.size()};
    rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> in{ms};
    rapidjson::Reader reader;
    ok = !reader.Parse<parse_flags>(in, handler).IsError();
    return ok;
  };
  doc.Populate(generate);
  if (handler.too_deep)
    return parse_status::too_deep;
  return ok ? parse_status::ok : parse_status::invalid;
}

std::string_view view(const Value& v) {
  return {v.GetString(), v.GetStringLength()};
}

const Value* member(const Value& obj, std::string_view key) {
  auto it
      = obj.FindMember(Value{rapidjson::StringRef(key.data(), static_cast<SizeType>(key.size()))});
  return it == obj.MemberEnd() ? nullptr : &it->value;
}

/// Whether `v` is a string of 1..max_id_bytes bytes.
bool is_id(const Value* v) {
  return v && v->IsString() && v->GetStringLength() > 0 && v->GetStringLength() <= max_id_bytes;
}

/// Builds the decode_error for one frame, with the context PROTOCOL.md asks
/// for (clientMsgId on a send, conversationId when known).
struct error_builder {
  error_frame context;

  decode_result operator()(std::string message, error_code code = error_code::bad_request) const {
    error_frame e = context;
    e.code = code;
    e.message = std::move(message);
    return decode_error{std::move(e)};
  }
};

/// Reads the required or optional id-like string `key` into `out`. Returns
/// false (with `why` filled) when it is present but not a string of
/// 1..max_id_bytes bytes, or missing while required.
bool read_id(const Value& obj, std::string_view key, bool required, std::string& out,
             std::string& why) {
  const Value* v = member(obj, key);
  if (!v) {
    if (required)
      why = std::string{key} + " is required";
    return !required;
  }
  if (!is_id(v)) {
    why = std::string{key} + " must be a string of 1..128 characters";
    return false;
  }
  out.assign(v->GetString(), v->GetStringLength());
  return true;
}

decode_result decode_send(const Value& obj, const limits& lim, const error_builder& fail) {
  send_frame f;
  const Value* id = member(obj, "clientMsgId");
  if (!id)
    return fail("clientMsgId is required");
  if (!id->IsString() || !valid_client_msg_id(view(*id)))
    return fail("clientMsgId must be 1..64 characters of [A-Za-z0-9_-]");
  f.client_msg_id.assign(id->GetString(), id->GetStringLength());

  const Value* content = member(obj, "content");
  if (!content)
    return fail("content is required");
  if (!content->IsString())
    return fail("content must be a string");
  auto text = view(*content);
  if (text.empty())
    return fail("content must not be empty");
  if (text.size() > lim.max_content_bytes)
    return fail("content exceeds " + std::to_string(lim.max_content_bytes) + " bytes",
                error_code::too_large);
  // PostgreSQL text cannot hold NUL; refuse it here rather than fail later.
  if (text.find('\0') != std::string_view::npos)
    return fail("content must not contain NUL characters");
  f.content.assign(text);

  std::string why;
  if (!read_id(obj, "conversationId", false, f.conversation_id, why)
      || !read_id(obj, "model", false, f.model, why))
    return fail(std::move(why));
  return client_frame{std::move(f)};
}

decode_result decode_subscribe(const Value& obj, const error_builder& fail) {
  subscribe_frame f;
  std::string why;
  if (!read_id(obj, "conversationId", true, f.conversation_id, why))
    return fail(std::move(why));
  if (const Value* after = member(obj, "afterSeq")) {
    // IsInt64 is false for fractions, exponents and numbers beyond int64.
    if (!after->IsInt64() || after->GetInt64() < 0)
      return fail("afterSeq must be a non-negative integer");
    f.after_seq = after->GetInt64();
  }
  return client_frame{std::move(f)};
}

decode_result decode_unsubscribe(const Value& obj, const error_builder& fail) {
  unsubscribe_frame f;
  std::string why;
  if (!read_id(obj, "conversationId", true, f.conversation_id, why))
    return fail(std::move(why));
  return client_frame{std::move(f)};
}

decode_result decode_cancel(const Value& obj, const error_builder& fail) {
  cancel_frame f;
  std::string why;
  if (!read_id(obj, "conversationId", true, f.conversation_id, why)
      || !read_id(obj, "messageId", true, f.message_id, why))
    return fail(std::move(why));
  return client_frame{std::move(f)};
}

decode_result decode_ping(const Value& obj) {
  ping_frame f;
  if (const Value* nonce = member(obj, "nonce")) {
    rapidjson::StringBuffer sb;
    json_writer w{sb};
    nonce->Accept(w); // depth is bounded by the parser
    f.nonce_json.assign(sb.GetString(), sb.GetSize());
  }
  return client_frame{std::move(f)};
}

// -- writing ------------------------------------------------------------------

/// A Writer and its buffer: one per encoded frame. (Measured: a
/// std::string output stream or a thread_local buffer are no faster; an
/// encoded chunk takes ~0.4 us.)
struct out {
  rapidjson::StringBuffer sb;
  json_writer w{sb};

  template<size_t N>
  void key(const char (&k)[N]) {
    w.Key(k, N - 1);
  }
  template<size_t N>
  void str(const char (&k)[N], std::string_view v) {
    key(k);
    w.String(v.data(), static_cast<SizeType>(v.size()));
  }
  template<size_t N>
  void num(const char (&k)[N], int64_t v) {
    key(k);
    w.Int64(v);
  }
  template<size_t N>
  void time(const char (&k)[N], timestamp_ms t) {
    char buf[40];
    auto n = format_timestamp(t, buf);
    key(k);
    w.String(buf, static_cast<SizeType>(n));
  }
  std::string take() const {
    return {sb.GetString(), sb.GetSize()};
  }

  static size_t format_timestamp(timestamp_ms t, char (&buf)[40]);
};

// Days since 1970-01-01 to a civil date (proleptic Gregorian); H. Hinnant's
// algorithm: exact for any int64 day count we can meet, no locale, no tz.
void civil_from_days(int64_t z, int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y = static_cast<int64_t>(yoe) + era * 400 + (m <= 2);
}

size_t out::format_timestamp(timestamp_ms t, char (&buf)[40]) {
  constexpr int64_t ms_per_day = 86'400'000;
  int64_t days = t / ms_per_day;
  int64_t rem = t % ms_per_day;
  if (rem < 0) { // floor, for instants before 1970
    rem += ms_per_day;
    --days;
  }
  int64_t y;
  unsigned mo, d;
  civil_from_days(days, y, mo, d);
  auto ms = static_cast<unsigned>(rem % 1000);
  auto s = static_cast<unsigned>(rem / 1000 % 60);
  auto mi = static_cast<unsigned>(rem / 60'000 % 60);
  auto h = static_cast<unsigned>(rem / 3'600'000);
  int n = std::snprintf(buf, sizeof(buf), "%04" PRId64 "-%02u-%02uT%02u:%02u:%02u.%03uZ", y, mo, d,
                        h, mi, s, ms);
  return n < 0 ? 0 : static_cast<size_t>(n);
}

/// The fields of a message, shared by `message` events and REST lists.
void write_message_fields(out& o, const stored_message& m) {
  o.str("conversationId", m.conversation_id);
  o.str("messageId", m.id);
  o.num("seq", m.seq);
  o.str("role", m.role);
  o.str("content", m.content);
  if (m.role == "assistant") {
    o.str("replyTo", m.reply_to);
    o.str("model", m.model);
    o.str("finishReason", m.finish_reason);
  } else if (!m.client_msg_id.empty()) {
    o.str("clientMsgId", m.client_msg_id);
  }
  o.time("createdAt", m.created_at);
}

} // namespace

// -- decoding -----------------------------------------------------------------

bool valid_client_msg_id(std::string_view id) {
  if (id.empty() || id.size() > max_client_msg_id)
    return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'
              || c == '-';
    if (!ok)
      return false;
  }
  return true;
}

decode_result decode(std::string_view text, const limits& lim) {
  error_builder fail;
  rapidjson::Document doc;
  switch (parse(text, doc)) {
    case parse_status::ok:
      break;
    case parse_status::invalid:
      return fail("frame is not valid JSON");
    case parse_status::too_deep:
      return fail("frame is nested too deeply");
  }
  if (!doc.IsObject())
    return fail("frame must be a JSON object");

  // Context for the error frame: only values short and well-formed enough to
  // echo back.
  const Value* conv = member(doc, "conversationId");
  if (is_id(conv))
    fail.context.conversation_id.assign(conv->GetString(), conv->GetStringLength());

  const Value* type = member(doc, "type");
  if (!type)
    return fail("type is required");
  if (!type->IsString())
    return fail("type must be a string");
  auto t = view(*type);
  if (t == "send") {
    const Value* id = member(doc, "clientMsgId");
    if (id && id->IsString() && valid_client_msg_id(view(*id)))
      fail.context.client_msg_id.assign(id->GetString(), id->GetStringLength());
    return decode_send(doc, lim, fail);
  }
  if (t == "subscribe")
    return decode_subscribe(doc, fail);
  if (t == "unsubscribe")
    return decode_unsubscribe(doc, fail);
  if (t == "cancel")
    return decode_cancel(doc, fail);
  if (t == "ping")
    return decode_ping(doc);
  return fail("unknown type");
}

// -- encoding -----------------------------------------------------------------

std::string encode(const ack_frame& x) {
  out o;
  o.w.StartObject();
  o.str("type", "ack");
  o.str("clientMsgId", x.client_msg_id);
  o.str("conversationId", x.conversation_id);
  o.str("messageId", x.message_id);
  o.num("seq", x.seq);
  o.w.EndObject();
  return o.take();
}

std::string encode(const chunk_frame& x) {
  return encode_chunk(x.conversation_id, x.message_id, x.reply_to, x.seq, x.index, x.delta);
}

namespace {

/// A rapidjson output stream appending to a std::string.
struct string_out {
  using Ch = char;
  std::string& s;
  void Put(char c) {
    s.push_back(c);
  }
  void Flush() {}
};

} // namespace

std::string encode_chunk(std::string_view conversation_id, std::string_view message_id,
                         std::string_view reply_to, int64_t seq, int64_t index,
                         std::string_view delta) {
  // Every token of every reply comes through here: one allocation, the
  // frame itself, sized up front (the StringBuffer of `out`, its copy in
  // take() and the Writer's level stack made three; measured per token
  // with bench/count_token_path.sh).
  std::string frame;
  frame.reserve(96 + conversation_id.size() + message_id.size() + reply_to.size() + delta.size()
                + delta.size() / 8);
  string_out os{frame};
  alignas(16) char stack_buf[256]; // the writer's nesting stack: one level here
  rapidjson::MemoryPoolAllocator<> stack_alloc{stack_buf, sizeof stack_buf};
  rapidjson::Writer<string_out, rapidjson::UTF8<>, rapidjson::UTF8<>,
                    rapidjson::MemoryPoolAllocator<>>
      w{os, &stack_alloc, 4};
  auto str = [&](const char* k, size_t klen, std::string_view v) {
    w.Key(k, static_cast<SizeType>(klen));
    w.String(v.data(), static_cast<SizeType>(v.size()));
  };
  w.StartObject();
  str("type", 4, "chunk");
  str("conversationId", 14, conversation_id);
  str("messageId", 9, message_id);
  str("replyTo", 7, reply_to);
  w.Key("seq", 3);
  w.Int64(seq);
  w.Key("index", 5);
  w.Int64(index);
  str("delta", 5, delta);
  w.EndObject();
  return frame;
}

std::string encode(const done_frame& x) {
  out o;
  o.w.StartObject();
  o.str("type", "done");
  o.str("conversationId", x.conversation_id);
  o.str("messageId", x.message_id);
  o.str("replyTo", x.reply_to);
  o.num("seq", x.seq);
  o.num("chunks", x.chunks);
  o.str("finishReason", x.finish_reason);
  if (x.prompt_tokens >= 0) {
    o.key("usage");
    o.w.StartObject();
    o.num("promptTokens", x.prompt_tokens);
    if (x.completion_tokens >= 0)
      o.num("completionTokens", x.completion_tokens);
    o.w.EndObject();
  }
  o.w.EndObject();
  return o.take();
}

std::string encode(const error_frame& x) {
  out o;
  o.w.StartObject();
  o.str("type", "error");
  o.str("code", to_string(x.code));
  o.str("message", x.message);
  if (!x.client_msg_id.empty())
    o.str("clientMsgId", x.client_msg_id);
  if (!x.conversation_id.empty())
    o.str("conversationId", x.conversation_id);
  o.w.EndObject();
  return o.take();
}

std::string encode_pong(std::string_view nonce_json) {
  // The nonce is already JSON text (re-serialized by the decoder).
  if (nonce_json.empty())
    return R"({"type":"pong"})";
  std::string s;
  s.reserve(nonce_json.size() + 26);
  s += R"({"type":"pong","nonce":)";
  s += nonce_json;
  s += '}';
  return s;
}

std::string encode_message_event(const stored_message& m) {
  out o;
  o.w.StartObject();
  o.str("type", "message");
  write_message_fields(o, m);
  o.w.EndObject();
  return o.take();
}

int64_t completed_seq_of(std::string_view frame) {
  // Our encoder writes "type" first, and "seq" before any free text (only
  // ids, which hold no quotes, come before it).
  constexpr std::string_view kinds[]
      = {R"({"type":"message",)", R"({"type":"done",)", R"({"type":"ack",)"};
  bool completes = false;
  for (auto k : kinds)
    completes = completes || frame.substr(0, k.size()) == k;
  if (!completes)
    return -1;
  constexpr std::string_view key = R"("seq":)";
  auto pos = frame.find(key);
  if (pos == std::string_view::npos)
    return -1;
  int64_t seq = 0;
  bool any = false;
  for (auto i = pos + key.size(); i < frame.size() && frame[i] >= '0' && frame[i] <= '9'; ++i) {
    int digit = frame[i] - '0';
    if (seq > (std::numeric_limits<int64_t>::max() - digit) / 10)
      return -1; // past int64: not a seq we wrote
    seq = seq * 10 + digit;
    any = true;
  }
  return any ? seq : -1;
}

std::string format_timestamp(timestamp_ms t) {
  char buf[40];
  auto n = out::format_timestamp(t, buf);
  return {buf, n};
}

std::string encode_message_list(const message_page& page) {
  out o;
  o.w.StartObject();
  o.key("messages");
  o.w.StartArray();
  for (auto& m : page.messages) {
    o.w.StartObject();
    write_message_fields(o, m);
    o.w.EndObject();
  }
  o.w.EndArray();
  o.w.EndObject();
  return o.take();
}

std::string encode_conversation_list(const conversation_page& page) {
  out o;
  o.w.StartObject();
  o.key("conversations");
  o.w.StartArray();
  for (auto& c : page.conversations) {
    o.w.StartObject();
    o.str("id", c.id);
    o.str("title", c.title);
    o.time("createdAt", c.created_at);
    o.time("updatedAt", c.updated_at);
    o.w.EndObject();
  }
  o.w.EndArray();
  if (!page.next_before.empty())
    o.str("nextBefore", page.next_before);
  o.w.EndObject();
  return o.take();
}

std::string encode_rest_error(std::string_view code, std::string_view message) {
  out o;
  o.w.StartObject();
  o.key("error");
  o.w.StartObject();
  o.str("code", code);
  o.str("message", message);
  o.w.EndObject();
  o.w.EndObject();
  return o.take();
}

} // namespace chat::protocol
