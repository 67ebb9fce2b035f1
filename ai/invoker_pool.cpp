#include "ai/invoker_pool.hpp"

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <unordered_map>
#include <utility>

#include <caf/actor_pool.hpp>
#include <caf/all.hpp>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "ai/anthropic_request.hpp"
#include "ai/anthropic_stream.hpp"
#include "ai/context_cut.hpp"
#include "ai/curl_driver.hpp"
#include "ai/model_limits.hpp"
#include "ai/openai_stream.hpp"
#include "ai/retry_policy.hpp"
#include "ai/utf8_repair.hpp"
#include "common/log.hpp"
#include "common/metrics.hpp"

namespace chat::ai {

namespace {

using clock_type = std::chrono::steady_clock;

/// Driver thread -> invoker: an attempt of a stream has ended. With `final`
/// the handler has sent the stream's done; without, the attempt failed
/// before any token in a way worth a retry, and `outcome` is what to tell
/// the sink if there is none.
using attempt_end_atom = caf::atom_constant<caf::atom("ai_attempt")>;
/// Invoker -> invoker: a queued stream of yours now holds a slot.
using slot_atom = caf::atom_constant<caf::atom("ai_slot")>;

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
  // Unknown models go without: the provider's own default applies.
  if (auto max_tokens = max_output_tokens(req.model)) {
    w.Key("max_tokens");
    w.Int(*max_tokens);
  }
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

// -- streams in flight per provider -------------------------------------------

/// Slots for streams in flight to one provider, shared by all invokers of a
/// pool, and a bounded FIFO of streams waiting for one. A slot given back
/// goes straight to the oldest waiter, whose invoker is then told.
class stream_limiter {
public:
  struct waiter {
    caf::actor invoker;
    std::string stream_id;
    uint64_t token;
  };

  enum class admission { started, queued, full };

  stream_limiter(size_t max_streams, size_t max_queued)
      : max_streams_(std::max<size_t>(max_streams, 1)),
        max_queued_(max_queued == 0 ? max_streams_ : max_queued) {}

  /// `started`: the caller holds a slot now.
  admission admit(waiter w) {
    std::lock_guard<std::mutex> guard{mtx_};
    if (in_flight_ < max_streams_) {
      ++in_flight_;
      return admission::started;
    }
    if (queue_.size() >= max_queued_)
      return admission::full;
    queue_.push_back(std::move(w));
    metrics::global().provider_requests_queued++;
    return admission::queued;
  }

  /// Gives a slot back; returns the waiter that holds it now, if any.
  std::optional<waiter> release() {
    std::lock_guard<std::mutex> guard{mtx_};
    if (queue_.empty()) {
      --in_flight_;
      return std::nullopt;
    }
    auto w = std::move(queue_.front());
    queue_.pop_front();
    metrics::global().provider_requests_queued--;
    return w;
  }

  /// A waiter gives up. False: it was no longer queued, i.e. a slot is on
  /// its way to its invoker (which must give it back).
  bool withdraw(const std::string& stream_id, uint64_t token) {
    std::lock_guard<std::mutex> guard{mtx_};
    for (auto i = queue_.begin(); i != queue_.end(); ++i)
      if (i->token == token && i->stream_id == stream_id) {
        queue_.erase(i);
        metrics::global().provider_requests_queued--;
        return true;
      }
    return false;
  }

private:
  std::mutex mtx_;
  size_t max_streams_;
  size_t max_queued_;
  size_t in_flight_ = 0;
  std::deque<waiter> queue_;
};

enum class provider_kind { openai, anthropic };

/// One limiter per provider, shared by the invokers of a pool.
struct provider_limiters {
  stream_limiter openai;
  stream_limiter anthropic;

  explicit provider_limiters(const pool_config& cfg)
      : openai(cfg.max_streams, cfg.max_queued), anthropic(cfg.max_streams, cfg.max_queued) {}

  stream_limiter& of(provider_kind p) {
    return p == provider_kind::openai ? openai : anthropic;
  }
};

generation_outcome error_outcome(std::string message, std::string code = "provider_error") {
  generation_outcome out;
  out.finish_reason = "error";
  out.error_message = std::move(message);
  out.error_code = std::move(code);
  return out;
}

// -- one attempt of a stream, on the driver's thread ------------------------------

/// What a provider's stream handler needs: its decoder (openai_stream or
/// anthropic_stream, both a stream_decoder) and how its HTTP error bodies
/// read (for logs only).
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

/// Decodes one attempt of a provider stream and sends its chunks and its
/// done to the sink. Everything reaching the sink for this stream is sent
/// from the driver's thread, in order, so no chunk can follow the done;
/// only an attempt that sent nothing may leave the done to the invoker
/// (`attempt_end_atom` without `final`).
template<class Protocol>
class stream_handler : public transfer_handler {
public:
  stream_handler(std::string stream_id, uint64_t token, reply_sink sink, caf::actor invoker,
                 std::string api_key)
      : stream_id_(std::move(stream_id)), token_(token), sink_(std::move(sink)),
        invoker_(std::move(invoker)), api_key_(std::move(api_key)) {}

  body_action on_body(std::string_view bytes) override {
    if (done_)
      return body_action::more; // e.g. bytes after the end: let the response end normally
    // All content of one read goes out as one chunk, as valid UTF-8.
    auto content = decoder_.feed(bytes);
    bool token = !content.empty();
    if (token && !got_token_)
      first_token_ = std::chrono::steady_clock::now();
    got_token_ = got_token_ || token;
    if (auto text = utf8_.feed_string(std::move(content)); !text.empty())
      caf::anon_send(sink_, ai_chunk_atom::value, stream_id_, std::move(text));
    if (decoder_.failed()) {
      fail(decoder_.error(), 200, decoder_.provider_detail());
      return body_action::abort; // drop the connection: nothing useful can follow
    }
    if (decoder_.done()) {
      succeed(); // answer at once; the response ends on its own
      if (decoder_.reply_capped())
        return body_action::abort; // stop paying for tokens we drop
    }
    return token ? body_action::token : body_action::more;
  }

  void on_done(const transfer_result& r) override {
    if (done_) {
      report(true, r);
      return;
    }
    if (retryable(r)) {
      // Nothing went to the sink: the invoker retries or answers.
      log_failure(first_reason(r), r);
      report(false, r);
      return;
    }
    conclude(r);
    report(true, r);
  }

private:
  /// Failed before its first token in a way another try may fix.
  bool retryable(const transfer_result& r) const {
    using k = transfer_result;
    if (got_token_ || decoder_.failed() || decoder_.finished())
      return false;
    if (r.http_status >= 400)
      return retryable_status(r.http_status);
    return r.kind == k::connect_failed || r.kind == k::cut || r.kind == k::completed;
  }

  /// Our words for a failure, never the provider's.
  std::string first_reason(const transfer_result& r) const {
    using k = transfer_result;
    if (r.http_status >= 400)
      return "provider returned HTTP " + std::to_string(r.http_status);
    if (r.kind == k::timed_out)
      return "provider timed out";
    if (r.kind == k::connect_failed)
      return "provider unreachable";
    if (r.kind == k::stopped)
      return "AI invoker stopped";
    return "provider stream ended early";
  }

  void conclude(const transfer_result& r) {
    if (r.kind == transfer_result::cancelled) {
      send_done("cancelled", "");
      return;
    }
    // A finish reason is the real end; a transport error after it (or a
    // missing [DONE] / message_stop) loses nothing but possibly the usage.
    if (r.http_status < 400 && decoder_.failed())
      fail(decoder_.error(), r.http_status, decoder_.provider_detail());
    else if (r.http_status < 400 && decoder_.finished())
      succeed();
    else
      fail(first_reason(r), r.http_status, detail_of(r));
  }

  /// For logs: what the provider said about an HTTP error, or curl's words.
  static std::string detail_of(const transfer_result& r) {
    return r.http_status >= 400 ? Protocol::error_message(r.error_body) : r.detail;
  }

  void report(bool final, const transfer_result& r) {
    auto out = final ? generation_outcome{} : error_outcome(first_reason(r));
    out.prompt_tokens = decoder_.prompt_tokens();
    out.completion_tokens = decoder_.completion_tokens();
    // The handles go with the message: if one is the last reference to the
    // invoker (its pool handle dropped, streams outliving it) or to the
    // sink, the invoker's own thread drops it once it read the message,
    // never this driver thread, which would run the actor's clean-up here,
    // racing the actor system's shutdown at exit.
    auto invoker = std::move(invoker_);
    auto sink = std::move(sink_);
    caf::anon_send(invoker, attempt_end_atom::value, stream_id_, token_, final, r.retry_after,
                   std::move(out), invoker, caf::actor_cast<caf::actor>(std::move(sink)));
  }

  void succeed() {
    send_done(decoder_.finish_reason() == "length" ? "length" : "stop", "");
  }

  void log_failure(const std::string& reason, const transfer_result& r) {
    log::warn("provider_attempt_failed",
              {{"streamId", stream_id_},
               {"status", static_cast<int64_t>(r.http_status)},
               {"reason", reason},
               {"detail", redact(shorten_utf8(detail_of(r), 160), api_key_)}});
  }

  void fail(const std::string& reason, long status, const std::string& detail) {
    // `detail` may be provider text: logs get a redacted, shortened copy,
    // people only `reason`.
    log::warn("provider_request_failed", {{"streamId", stream_id_},
                                          {"status", static_cast<int64_t>(status)},
                                          {"reason", reason},
                                          {"detail", redact(shorten_utf8(detail, 160), api_key_)}});
    send_done("error", reason);
  }

  void send_done(std::string reason, std::string message) {
    done_ = true;
    // A character cut off by the end of the stream still shows, as U+FFFD.
    if (auto tail = utf8_.finish(); !tail.empty())
      caf::anon_send(sink_, ai_chunk_atom::value, stream_id_, std::move(tail));
    generation_outcome out;
    out.finish_reason = std::move(reason);
    out.prompt_tokens = decoder_.prompt_tokens();
    out.completion_tokens = decoder_.completion_tokens();
    out.error_message = std::move(message);
    if (out.finish_reason == "error")
      out.error_code = "provider_error";
    if (got_token_)
      out.ttft_us
          = std::chrono::duration_cast<std::chrono::microseconds>(first_token_ - created_).count();
    caf::anon_send(sink_, ai_done_atom::value, stream_id_, std::move(out));
  }

  std::string stream_id_;
  uint64_t token_; // tells this stream from a later one with the same id
  // Made as its attempt's request starts: the provider's time to first
  // token is from here.
  std::chrono::steady_clock::time_point created_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point first_token_;
  reply_sink sink_;
  caf::actor invoker_;
  std::string api_key_;
  typename Protocol::decoder decoder_;
  utf8_repair utf8_;
  bool got_token_ = false; // the provider sent content (retries end here)
  bool done_ = false;
};

// -- the invoker actor ----------------------------------------------------------

struct invoker_state {
  /// Running includes a retry's backoff: the driver holds the next attempt
  /// until its start_at, and a cancel ends that wait at once.
  enum class phase { queued, running };

  struct stream {
    uint64_t token;
    reply_sink sink;
    provider_kind provider;
    http_request http;   // every attempt sends this
    std::string api_key; // to redact from logs
    phase at = phase::queued;
    bool holds_slot = false;
    curl_driver::transfer_id tid = 0; // while running (or waiting to retry)
    int retries = 0;                  // retries started so far
    clock_type::time_point deadline;  // of the whole reply; set when it leaves the queue
    bool cancel_requested = false;
  };

  pool_config cfg;
  retry_policy retries;
  std::shared_ptr<provider_limiters> limiters;
  std::unique_ptr<curl_driver> driver;
  std::unordered_map<std::string, stream> streams;
  uint64_t next_token = 1;
  /// Monitored sinks and how many of our streams each has.
  std::unordered_map<caf::actor_addr, size_t> sinks;
  std::minstd_rand jitter{std::random_device{}()};

  static inline const char* name = "ai_invoker";
};

using invoker_actor = caf::stateful_actor<invoker_state>;

void answer(const std::string& stream_id, const reply_sink& sink, generation_outcome out) {
  if (out.finish_reason == "error")
    log::warn("provider_request_failed", {{"streamId", stream_id}, {"reason", out.error_message}});
  caf::anon_send(sink, ai_done_atom::value, stream_id, std::move(out));
}

generation_outcome cancelled_outcome() {
  generation_outcome out;
  out.finish_reason = "cancelled";
  return out;
}

/// Starts an attempt of `s`, which holds a slot, at `start_at` (a retry's
/// backoff: the driver waits, never blocking, and a cancel ends the wait).
void start_attempt(invoker_actor* self, const std::string& id, invoker_state::stream& s,
                   clock_type::time_point start_at = clock_type::time_point::min()) {
  auto& st = self->state;
  auto sink = s.sink;
  auto me = caf::actor_cast<caf::actor>(self);
  std::unique_ptr<transfer_handler> handler;
  if (s.provider == provider_kind::openai)
    handler = std::make_unique<stream_handler<openai_protocol>>(id, s.token, sink, me, s.api_key);
  else
    handler
        = std::make_unique<stream_handler<anthropic_protocol>>(id, s.token, sink, me, s.api_key);
  auto http = s.http;
  http.deadline = s.deadline;
  http.start_at = start_at;
  s.tid = st.driver->start(std::move(http), std::move(handler));
  s.at = invoker_state::phase::running;
  log::debug("provider_request_started", {{"streamId", id}, {"attempt", s.retries + 1}});
}

/// The stream leaves the queue (or skips it): its reply deadline starts.
void start_stream(invoker_actor* self, const std::string& id, invoker_state::stream& s) {
  s.holds_slot = true;
  s.deadline = clock_type::now() + self->state.cfg.reply_timeout;
  start_attempt(self, id, s);
}

/// A slot given back goes to the oldest waiter of its provider.
void release_slot(invoker_actor* self, provider_kind provider) {
  if (auto next = self->state.limiters->of(provider).release())
    self->send(next->invoker, slot_atom::value, next->stream_id, next->token,
               static_cast<int32_t>(provider));
}

/// Forgets a stream whose done has been sent.
void forget_stream(invoker_actor* self, const std::string& id) {
  auto& st = self->state;
  auto i = st.streams.find(id);
  if (i == st.streams.end())
    return;
  auto sink = i->second.sink.address();
  auto provider = i->second.provider;
  bool held = i->second.holds_slot;
  st.streams.erase(i);
  if (held)
    release_slot(self, provider);
  auto j = st.sinks.find(sink);
  if (j != st.sinks.end() && --j->second == 0) {
    self->demonitor(sink);
    st.sinks.erase(j);
  }
}

/// Ends a stream at once: a running one (or one waiting to retry) through
/// its transfer, whose handler sends the done; a queued one here.
void cancel_stream(invoker_actor* self, const std::string& id) {
  auto& st = self->state;
  auto i = st.streams.find(id);
  if (i == st.streams.end())
    return;
  auto& s = i->second;
  s.cancel_requested = true;
  switch (s.at) {
    case invoker_state::phase::running:
      st.driver->cancel(s.tid);
      return;
    case invoker_state::phase::queued:
      // Not queued any more: a slot is on its way here, and the slot
      // handler gives it back (the stream is gone by then).
      st.limiters->of(s.provider).withdraw(id, s.token);
      break;
  }
  answer(id, s.sink, cancelled_outcome());
  forget_stream(self, id);
}

/// An attempt failed before its first token: retry after a backoff, or
/// answer with its outcome.
void on_retryable_failure(invoker_actor* self, const std::string& id, invoker_state::stream& s,
                          const std::string& retry_after, generation_outcome outcome) {
  auto& st = self->state;
  if (s.cancel_requested) {
    answer(id, s.sink, cancelled_outcome());
    forget_stream(self, id);
    return;
  }
  auto retry = s.retries + 1;
  if (retry <= st.retries.max_retries) {
    std::uniform_real_distribution<double> uniform{0.0, 1.0};
    auto wait = retry_wait(st.retries, retry, parse_retry_after(retry_after, st.retries),
                           uniform(st.jitter));
    // Never past the reply deadline: then the failure is the answer.
    auto start_at = clock_type::now() + wait;
    if (start_at < s.deadline) {
      s.retries = retry;
      log::info("provider_retry", {{"streamId", id},
                                   {"retry", retry},
                                   {"waitMs", static_cast<int64_t>(wait.count())},
                                   {"reason", outcome.error_message}});
      start_attempt(self, id, s, start_at);
      return;
    }
  }
  answer(id, s.sink, std::move(outcome));
  forget_stream(self, id);
}

/// The request to send for `req`, or an error outcome.
std::optional<generation_outcome> prepare(invoker_actor* self, generation_request& req,
                                          invoker_state::stream& s) {
  auto& cfg = self->state.cfg;
  req.messages = cut_context(std::move(req.messages), cfg.context_bytes);
  auto& http = s.http;
  http.connect_timeout = cfg.connect_timeout;
  http.first_token_timeout = cfg.first_token_timeout;
  http.idle_timeout = cfg.idle_timeout;
  if (req.provider.empty() || req.provider == "openai") {
    auto& ep = cfg.openai;
    s.provider = provider_kind::openai;
    http.url = trim_slash(ep.base_url) + "/chat/completions";
    http.headers = {"Content-Type: application/json", "Accept: text/event-stream",
                    // No "Expect: 100-continue" round trip for larger bodies.
                    "Expect:"};
    if (!ep.api_key.empty())
      http.headers.push_back("Authorization: Bearer " + ep.api_key);
    http.body = openai_body(req);
    s.api_key = ep.api_key;
    return std::nullopt;
  }
  if (req.provider == "anthropic") {
    // The API version our request and the events we decode are written for.
    constexpr const char* anthropic_version = "2023-06-01";
    auto& ep = cfg.anthropic;
    s.provider = provider_kind::anthropic;
    http.url = trim_slash(ep.base_url.empty() ? "https://api.anthropic.com" : ep.base_url)
               + "/v1/messages";
    http.headers = {"content-type: application/json", "accept: text/event-stream",
                    std::string{"anthropic-version: "} + anthropic_version, "Expect:"};
    if (!ep.api_key.empty())
      http.headers.push_back("x-api-key: " + ep.api_key);
    http.body
        = anthropic_request_body(req, max_output_tokens(req.model).value_or(anthropic_max_tokens));
    s.api_key = ep.api_key;
    return std::nullopt;
  }
  return error_outcome("unknown provider");
}

caf::behavior invoker(invoker_actor* self, pool_config cfg,
                      std::shared_ptr<provider_limiters> limiters) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.retries.max_retries = std::max(st.cfg.retries, 0);
  st.retries.base = st.cfg.retry_base;
  st.limiters = std::move(limiters);
  st.driver = std::make_unique<curl_driver>();
  // A sink that went away reads nothing more: stop paying for its streams.
  self->set_down_handler([=](caf::down_msg& dm) {
    std::vector<std::string> ids;
    for (auto& [id, s] : self->state.streams)
      if (s.sink.address() == dm.source)
        ids.push_back(id);
    for (auto& id : ids)
      cancel_stream(self, id);
  });
  return {
      [=](generate_atom, generation_request& req, reply_sink& sink) -> caf::actor {
        auto& st = self->state;
        auto me = caf::actor_cast<caf::actor>(self);
        if (!sink)
          return me;
        if (st.streams.count(req.stream_id) > 0) {
          answer(req.stream_id, sink, error_outcome("duplicate stream id"));
          return me;
        }
        invoker_state::stream s;
        s.token = st.next_token++;
        s.sink = sink;
        if (auto err = prepare(self, req, s)) {
          answer(req.stream_id, sink, std::move(*err));
          return me;
        }
        auto admitted = st.limiters->of(s.provider).admit({me, req.stream_id, s.token});
        if (admitted == stream_limiter::admission::full) {
          answer(req.stream_id, sink,
                 error_outcome("too many replies in progress, try again later", "unavailable"));
          return me;
        }
        if (st.sinks[sink.address()]++ == 0)
          self->monitor(sink);
        auto& entry = st.streams.emplace(req.stream_id, std::move(s)).first->second;
        if (admitted == stream_limiter::admission::started)
          start_stream(self, req.stream_id, entry);
        else
          log::debug("provider_request_queued", {{"streamId", req.stream_id}});
        return me;
      },
      [=](ai_cancel_atom, const std::string& id) { cancel_stream(self, id); },
      [=](slot_atom, const std::string& id, uint64_t token, int32_t provider) {
        auto& st = self->state;
        auto i = st.streams.find(id);
        if (i == st.streams.end() || i->second.token != token
            || i->second.at != invoker_state::phase::queued) {
          // Cancelled while the slot was on its way: pass it on.
          release_slot(self, static_cast<provider_kind>(provider));
          return;
        }
        start_stream(self, id, i->second);
      },
      [=](attempt_end_atom, const std::string& id, uint64_t token, bool final,
          const std::string& retry_after, generation_outcome& outcome, const caf::actor&,
          const caf::actor&) {
        auto& st = self->state;
        auto i = st.streams.find(id);
        if (i == st.streams.end() || i->second.token != token)
          return;
        if (final)
          forget_stream(self, id);
        else
          on_retryable_failure(self, id, i->second, retry_after, std::move(outcome));
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
  auto limiters = std::make_shared<provider_limiters>(cfg);
  auto pool = caf::actor_pool::make(
      sys.dummy_execution_unit(), n, [&] { return sys.spawn(invoker, cfg, limiters); }, dispatch{});
  return caf::actor_cast<chat::ai_actor>(pool);
}

} // namespace chat::ai
