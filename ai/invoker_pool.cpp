#include "ai/invoker_pool.hpp"

#include <atomic>
#include <memory>
#include <unordered_map>
#include <utility>

#include <caf/actor_pool.hpp>
#include <caf/all.hpp>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "ai/anthropic_request.hpp"
#include "ai/anthropic_stream.hpp"
#include "ai/curl_driver.hpp"
#include "ai/openai_stream.hpp"
#include "common/log.hpp"

namespace chat::ai {

namespace {

/// Driver thread -> invoker: a stream's transfer has ended.
using stream_end_atom = caf::atom_constant<caf::atom("ai_end")>;

// -- request encoding ---------------------------------------------------------

std::string openai_body(const generation_request& req) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w{sb};
  w.StartObject();
  w.Key("model");
  w.String(req.model);
  w.Key("messages");
  w.StartArray();
  for (auto& m : req.messages) {
    w.StartObject();
    w.Key("role");
    w.String(m.role);
    w.Key("content");
    w.String(m.content);
    w.EndObject();
  }
  w.EndArray();
  w.Key("stream");
  w.Bool(true);
  w.Key("stream_options");
  w.StartObject();
  w.Key("include_usage");
  w.Bool(true);
  w.EndObject();
  w.EndObject();
  return {sb.GetString(), sb.GetSize()};
}

std::string trim_slash(std::string url) {
  while (!url.empty() && url.back() == '/')
    url.pop_back();
  return url;
}

/// Replaces every occurrence of `secret` in `text`: provider messages may
/// quote what they were sent.
std::string redact(std::string text, const std::string& secret) {
  if (secret.empty())
    return text;
  for (auto pos = text.find(secret); pos != std::string::npos; pos = text.find(secret, pos + 3))
    text.replace(pos, secret.size(), "***");
  return text;
}

// -- one stream, on the driver's thread -----------------------------------------

/// What a provider's stream handler needs: its decoder (openai_stream or
/// anthropic_stream, both a stream_decoder) and how its HTTP error bodies
/// read.
struct openai_protocol {
  using decoder = openai_stream;
  static std::string error_message(std::string_view body) {
    return openai_error_message(body);
  }
};

struct anthropic_protocol {
  using decoder = anthropic_stream;
  static std::string error_message(std::string_view body) {
    return anthropic_error_message(body);
  }
};

/// Decodes one provider stream and sends its chunks and its done to the
/// sink. Everything reaching the sink for this stream is sent from the
/// driver's thread, in order, so no chunk can follow the done.
template<class Protocol>
class stream_handler : public transfer_handler {
public:
  stream_handler(std::string stream_id, uint64_t token, caf::actor sink, caf::actor invoker,
                 std::string api_key)
      : stream_id_(std::move(stream_id)), token_(token), sink_(std::move(sink)),
        invoker_(std::move(invoker)), api_key_(std::move(api_key)) {}

  bool on_body(std::string_view bytes) override {
    if (done_)
      return true; // e.g. bytes after the end: let the response end normally
    // All content of one read goes out as one chunk.
    auto delta = decoder_.feed(bytes);
    if (!delta.empty())
      caf::anon_send(sink_, ai_chunk_atom::value, stream_id_, std::move(delta));
    if (decoder_.failed()) {
      fail(decoder_.error(), 200, "provider error event");
      return false; // drop the connection: nothing useful can follow
    }
    if (decoder_.done())
      succeed(); // answer at once; the response ends on its own
    return true;
  }

  void on_done(const transfer_result& r) override {
    if (!done_)
      conclude(r);
    caf::anon_send(invoker_, stream_end_atom::value, stream_id_, token_);
  }

private:
  void conclude(const transfer_result& r) {
    using k = transfer_result;
    if (r.kind == k::cancelled) {
      send_done("cancelled", "");
      return;
    }
    if (r.http_status >= 400) {
      auto text = "provider returned HTTP " + std::to_string(r.http_status);
      if (auto msg = Protocol::error_message(r.error_body); !msg.empty())
        text += ": " + msg;
      fail(text, r.http_status, "http status");
      return;
    }
    // A finish reason is the real end; a transport error after it (or a
    // missing [DONE] / message_stop) loses nothing but possibly the usage.
    if (decoder_.failed())
      fail(decoder_.error(), r.http_status, "provider error event");
    else if (decoder_.finished())
      succeed();
    else if (r.kind == k::timed_out)
      fail("provider timed out", r.http_status, r.detail);
    else if (r.kind == k::connect_failed)
      fail("provider unreachable", r.http_status, r.detail);
    else if (r.kind == k::stopped)
      fail("AI invoker stopped", r.http_status, "invoker stopped");
    else
      fail("provider stream ended early", r.http_status,
           r.detail.empty() ? "no finish reason" : r.detail);
  }

  void succeed() {
    send_done(decoder_.finish_reason() == "length" ? "length" : "stop", "");
  }

  void fail(const std::string& message, long status, const std::string& why) {
    auto text = redact(message, api_key_);
    log::warn("provider_request_failed", {{"streamId", stream_id_},
                                          {"status", static_cast<int64_t>(status)},
                                          {"reason", text},
                                          {"detail", redact(why, api_key_)}});
    send_done("error", std::move(text));
  }

  void send_done(std::string reason, std::string message) {
    done_ = true;
    generation_outcome out;
    out.finish_reason = std::move(reason);
    out.prompt_tokens = decoder_.prompt_tokens();
    out.completion_tokens = decoder_.completion_tokens();
    out.error_message = std::move(message);
    caf::anon_send(sink_, ai_done_atom::value, stream_id_, std::move(out));
  }

  std::string stream_id_;
  uint64_t token_; // tells this stream from a later one with the same id
  caf::actor sink_;
  caf::actor invoker_;
  std::string api_key_;
  typename Protocol::decoder decoder_;
  bool done_ = false;
};

// -- the invoker actor ----------------------------------------------------------

struct invoker_state {
  struct stream {
    curl_driver::transfer_id tid;
    uint64_t token;
    caf::actor_addr sink;
  };

  pool_config cfg;
  std::unique_ptr<curl_driver> driver;
  std::unordered_map<std::string, stream> streams;
  uint64_t next_token = 1;
  /// Monitored sinks and how many of our streams each has.
  std::unordered_map<caf::actor_addr, size_t> sinks;

  static inline const char* name = "ai_invoker";
};

using invoker_actor = caf::stateful_actor<invoker_state>;

void answer_error(const std::string& stream_id, const caf::actor& sink, std::string message) {
  log::warn("provider_request_failed",
            {{"streamId", stream_id}, {"status", 0}, {"reason", message}});
  generation_outcome out;
  out.finish_reason = "error";
  out.error_message = std::move(message);
  caf::anon_send(sink, ai_done_atom::value, stream_id, std::move(out));
}

/// Starts `http` with a handler of `Protocol` and registers the stream.
template<class Protocol>
void start_stream(invoker_actor* self, http_request http, const std::string& api_key,
                  const generation_request& req, const caf::actor& sink, const char* provider) {
  auto& st = self->state;
  http.connect_timeout = st.cfg.connect_timeout;
  http.first_byte_timeout = st.cfg.first_token_timeout;
  http.stall_timeout = st.cfg.stall_timeout;
  auto token = st.next_token++;
  auto tid = st.driver->start(
      std::move(http), std::make_unique<stream_handler<Protocol>>(
                           req.stream_id, token, sink, caf::actor_cast<caf::actor>(self), api_key));
  log::debug("provider_request_started",
             {{"streamId", req.stream_id}, {"provider", provider}, {"model", req.model}});
  if (st.sinks[sink.address()]++ == 0)
    self->monitor(sink);
  st.streams.emplace(req.stream_id, invoker_state::stream{tid, token, sink.address()});
}

void start_openai(invoker_actor* self, generation_request& req, const caf::actor& sink) {
  auto& ep = self->state.cfg.openai;
  http_request http;
  http.url = trim_slash(ep.base_url) + "/chat/completions";
  http.headers = {"Content-Type: application/json", "Accept: text/event-stream",
                  // No "Expect: 100-continue" round trip for larger bodies.
                  "Expect:"};
  if (!ep.api_key.empty())
    http.headers.push_back("Authorization: Bearer " + ep.api_key);
  http.body = openai_body(req);
  start_stream<openai_protocol>(self, std::move(http), ep.api_key, req, sink, "openai");
}

/// The API version our request and the events we decode are written for.
constexpr const char* anthropic_version = "2023-06-01";

void start_anthropic(invoker_actor* self, generation_request& req, const caf::actor& sink) {
  auto& ep = self->state.cfg.anthropic;
  http_request http;
  http.url = trim_slash(ep.base_url.empty() ? "https://api.anthropic.com" : ep.base_url)
             + "/v1/messages";
  http.headers = {"content-type: application/json", "accept: text/event-stream",
                  std::string{"anthropic-version: "} + anthropic_version, "Expect:"};
  if (!ep.api_key.empty())
    http.headers.push_back("x-api-key: " + ep.api_key);
  http.body = anthropic_request_body(req);
  start_stream<anthropic_protocol>(self, std::move(http), ep.api_key, req, sink, "anthropic");
}

void forget_stream(invoker_actor* self, const std::string& id, uint64_t token) {
  auto& st = self->state;
  auto i = st.streams.find(id);
  if (i == st.streams.end() || i->second.token != token)
    return;
  auto sink = i->second.sink;
  st.streams.erase(i);
  auto j = st.sinks.find(sink);
  if (j != st.sinks.end() && --j->second == 0) {
    self->demonitor(sink);
    st.sinks.erase(j);
  }
}

caf::behavior invoker(invoker_actor* self, pool_config cfg) {
  self->state.cfg = std::move(cfg);
  self->state.driver = std::make_unique<curl_driver>();
  // A sink that went away reads nothing more: stop paying for its streams.
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& st = self->state;
    for (auto& [id, s] : st.streams)
      if (s.sink == dm.source)
        st.driver->cancel(s.tid);
    st.sinks.erase(dm.source);
  });
  return {
      [=](generate_atom, generation_request& req, caf::actor& sink) -> caf::actor {
        auto me = caf::actor_cast<caf::actor>(self);
        if (!sink)
          return me;
        if (self->state.streams.count(req.stream_id) > 0)
          answer_error(req.stream_id, sink, "duplicate stream id");
        else if (req.provider.empty() || req.provider == "openai")
          start_openai(self, req, sink);
        else if (req.provider == "anthropic")
          start_anthropic(self, req, sink);
        else
          answer_error(req.stream_id, sink, "unknown provider");
        return me;
      },
      [=](ai_cancel_atom, const std::string& id) {
        auto& st = self->state;
        if (auto i = st.streams.find(id); i != st.streams.end())
          st.driver->cancel(i->second.tid);
      },
      [=](stream_end_atom, const std::string& id, uint64_t token) {
        forget_stream(self, id, token);
      },
  };
}

// -- the pool ---------------------------------------------------------------------

/// Dispatch: `generate` round robin; `ai_cancel` to every invoker, since only
/// the one owning the stream knows it (the others ignore unknown ids).
struct dispatch {
  std::shared_ptr<std::atomic<size_t>> next = std::make_shared<std::atomic<size_t>>(0);

  void operator()(caf::actor_system&, caf::actor_pool::uplock& guard,
                  const caf::actor_pool::actor_vec& workers, caf::mailbox_element_ptr& ptr,
                  caf::execution_unit* host) {
    if (ptr->content().match_element<ai_cancel_atom>(0)) {
      auto msg = ptr->move_content_to_message();
      for (auto& w : workers)
        w->enqueue(ptr->sender, ptr->mid, msg, host);
      return;
    }
    auto worker = workers[next->fetch_add(1) % workers.size()];
    guard.unlock();
    worker->enqueue(std::move(ptr), host);
  }
};

} // namespace

chat::ai_actor spawn_invoker_pool(caf::actor_system& sys, const pool_config& cfg) {
  auto n = std::max<size_t>(cfg.invokers, 1);
  auto pool = caf::actor_pool::make(
      sys.dummy_execution_unit(), n, [&] { return sys.spawn(invoker, cfg); }, dispatch{});
  return caf::actor_cast<chat::ai_actor>(pool);
}

} // namespace chat::ai
