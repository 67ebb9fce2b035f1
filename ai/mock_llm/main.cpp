// mock_llm: the bundled LLM server (OpenAI-compatible chat completions and
// Anthropic Messages) that tests, deploy/run.sh and the benchmarks use
// instead of a real provider. The same text is printed
// by `mock_llm --help` (kUsage below); tests are written against it.
//
// mock_llm [--listen HOST:PORT] [--ttft-ms N] [--token-delay-ms N] [--tokens N]
//          [--fail MODE] [--fail-every N] [--retry-after S]
//          [--fail-rate-429 P] [--fail-rate-500 P] [--seed N] [--api-key KEY]
//
//   --listen          address, default 127.0.0.1:8090; port 0 picks a free one
//   --ttft-ms         delay before the first token, default 20
//   --token-delay-ms  delay between tokens, default 10
//   --tokens          reply length in tokens, default 24
//   --fail            none (default), http500, before-first (200 headers, then
//                     close before any token), mid-stream (close abruptly after
//                     half the tokens), stall (half the tokens, then silence on
//                     an open connection), http429 (with Retry-After),
//                     keepalive (the first token, then only `: keep-alive`
//                     comment lines every 200 ms, forever), bad-utf8 (token 1
//                     with a lone `\udc00` escape, token 2 with a raw 0xFF
//                     byte, "é" split between tokens 3 and 4)
//   --fail-every      with --fail, the Nth, 2Nth, ... chat request fails,
//                     counted since start or the last POST /stats/reset;
//                     default 1
//   --retry-after     the Retry-After seconds of http429, default 1
//   --fail-rate-429, --fail-rate-500
//                     each chat request draws one seeded random number: with
//                     these probabilities it fails with http429 or http500
//                     (the draws are reproducible: --seed, reset by POST
//                     /stats/reset); default 0
//   --seed            the seed of those draws, default 1
//   --api-key         require `Authorization: Bearer KEY` on /v1/* (else 401
//                     with an OpenAI-style JSON error), `x-api-key: KEY` on
//                     /v1/messages (else 401 with an Anthropic-style error);
//                     default: accept any
//
// On start it prints one line `mock_llm listening on HOST:PORT` (the real
// port) to stdout. SIGTERM/SIGINT exit 0.
//
// POST /v1/chat/completions  {model, messages:[{role, content}], stream,
//   stream_options:{include_usage}, max_tokens}. Bad JSON: 400.
//   T = the last user message's content without its `[[mock key=value ...]]`
//   directive (keys tokens, ttft_ms, delay_ms, fail=MODE, retry_after=S
//   override the flags).
//   Reply of N tokens (N = tokens, or max_tokens if smaller: finish_reason
//   "length", else "stop"): "Echo:", " w" per whitespace-separated word w of
//   T (byte-exact, cut at N), then " w<i>" fillers where i is the token index.
//   T="hi there", N=5: "Echo:", " hi", " there", " w3", " w4".
//   stream:true: 200 text/event-stream, chunked; token i at ttft + i*delay as
//   `data: {"id":"chatcmpl-mock-<n>","object":"chat.completion.chunk",
//   "created":<unix>,"model":"<model>","choices":[{"index":0,"delta":{"role":
//   "assistant","content":"Echo:"},"finish_reason":null}]}\n\n`, then deltas
//   {"content":"<tok>"}, then "delta":{} with "finish_reason", then with
//   include_usage a chunk "choices":[],"usage":{prompt_tokens P,
//   completion_tokens N, total_tokens}, then `data: [DONE]\n\n`. One write per
//   event. P = words across all messages' content.
//   stream:false: a chat.completion with choices[0].message.content, sent at
//   ttft + (N-1)*delay; the failure modes cut the body bytes instead.
// POST /v1/messages  Anthropic Messages: {model, max_tokens, messages:[{role,
//   content}], system, stream}; needs an `anthropic-version` header (else
//   400). Errors are {"type":"error","error":{"type","message"}}: bad JSON or
//   no messages 400 invalid_request_error, http500 500 api_error, http429 429
//   rate_limit_error (Retry-After: 1). The same T, N, tokens, timing, [[mock]]
//   directives and failure modes as above; P also counts the words of
//   `system`; stop_reason "max_tokens" when max_tokens cut the reply, else
//   "end_turn". stream:true: 200 text/event-stream, chunked, one write per
//   event `event: <type>\ndata: {"type":"<type>",...}\n\n`: at ttft
//   message_start {"message":{"id":"msg_mock_<n>","type":"message","role":
//   "assistant","model","content":[],"stop_reason":null,"stop_sequence":null,
//   "usage":{"input_tokens":P,"output_tokens":1}}}, content_block_start
//   {"index":0,"content_block":{"type":"text","text":""}}, ping; token i at
//   ttft + i*delay as content_block_delta {"index":0,"delta":{"type":
//   "text_delta","text":"<tok>"}}; then content_block_stop {"index":0},
//   message_delta {"delta":{"stop_reason","stop_sequence":null},"usage":
//   {"output_tokens":N}}, message_stop. before-first sends the 200 headers
//   only (no message_start). stream:false: a `message` object with
//   content:[{"type":"text","text":...}], stop_reason, usage {input_tokens P,
//   output_tokens N}, at ttft + (N-1)*delay.
// GET /v1/models        {"object":"list","data":[{"id":"mock-1","object":"model"}]}
// GET /stats            {"requests":R,"streams_started":S,"completed":C,
//                        "aborted":A,"active":X}: R chat requests (both
//   endpoints), S streams that got 200 headers, C streams finished with
//   [DONE] or message_stop, A streams whose client
//   closed the connection first (seen at once, even between tokens), X streams
//   running now (streams the mock itself breaks count in none of C, A).
// POST /stats/reset     zeroes R, S, C, A (X stays the live count).
// Anything else: 404. Keep-alive and pipelining are supported.

#include <utility> // before asio: Boost 1.74 asio misses it under C++20

#include <boost/asio.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include "ai/mock_llm/mock_reply.hpp"

namespace {

namespace net = boost::asio;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;
using boost::system::error_code;
using namespace chat::mock_llm;

constexpr const char* kUsage
    = R"(usage: mock_llm [--listen HOST:PORT] [--ttft-ms N] [--token-delay-ms N]
                [--tokens N] [--fail MODE] [--fail-every N] [--retry-after S]
                [--fail-rate-429 P] [--fail-rate-500 P] [--seed N]
                [--api-key KEY]

An LLM server with deterministic replies: OpenAI-compatible chat completions
and Anthropic Messages.

  --listen HOST:PORT   default 127.0.0.1:8090; port 0 picks a free port
  --ttft-ms N          delay before the first token (default 20)
  --token-delay-ms N   delay between tokens (default 10)
  --tokens N           reply length in tokens (default 24)
  --fail MODE          none (default), http500, http429 (with Retry-After),
                       before-first (200 headers, then close before any token),
                       mid-stream (close abruptly after half the tokens),
                       stall (half the tokens, then silence, connection open),
                       keepalive (the first token, then only ": keep-alive"
                       comment lines every 200 ms, forever),
                       bad-utf8 (token 1 with a lone \udc00 escape, token 2
                       with a raw 0xFF byte, "é" split between tokens 3 and 4)
  --fail-every N       with --fail, the Nth, 2Nth, ... chat request fails,
                       counted since start or POST /stats/reset (default 1)
  --retry-after S      the Retry-After seconds of http429 (default 1)
  --fail-rate-429 P    each chat request fails with http429 with probability P
  --fail-rate-500 P    ... or with http500 with probability P (default 0 both;
                       one seeded draw per request: reproducible, and
                       restarted by POST /stats/reset)
  --seed N             the seed of those draws (default 1)
  --api-key KEY        require "Authorization: Bearer KEY" on /v1/* (else 401),
                       "x-api-key: KEY" on /v1/messages (else 401);
                       default: any or no key is accepted

Prints "mock_llm listening on HOST:PORT" (the real port) once listening.
SIGTERM/SIGINT exit 0.

POST /v1/chat/completions  {model, messages, stream, stream_options, max_tokens}
  Reply to T, the last user message without its [[mock key=value ...]]
  directive (keys: tokens, ttft_ms, delay_ms, fail=MODE, retry_after=S):
  N tokens, N = tokens or max_tokens if smaller (finish_reason "length",
  else "stop"): "Echo:", " w" per whitespace-separated word w of T, then
  fillers " w<index>".
  T="hi there", N=5 -> "Echo:", " hi", " there", " w3", " w4".
  stream:true: SSE chunks like OpenAI (first delta has role "assistant"),
  token i at ttft + i*delay, final delta {} with finish_reason, a usage chunk
  if stream_options.include_usage (P = words in all messages), data: [DONE].
  stream:false: one chat.completion at ttft + (N-1)*delay. Bad JSON: 400.
POST /v1/messages    Anthropic Messages {model, max_tokens, messages, system,
  stream}; needs an anthropic-version header. The same reply, timing,
  directives and failure modes; stop_reason "end_turn" or "max_tokens";
  errors {"type":"error","error":{"type","message"}}. stream:true: events
  message_start (usage.input_tokens), content_block_start, ping (with the
  first token), content_block_delta (text_delta) per token,
  content_block_stop, message_delta (stop_reason, usage.output_tokens),
  message_stop. stream:false: a message with content [{"type":"text",...}].
GET /v1/models       {"object":"list","data":[{"id":"mock-1","object":"model"}]}
GET /stats           {"requests","streams_started","completed","aborted","active"}
                     requests: both chat endpoints; completed: [DONE] or
                     message_stop; aborted: streams whose client closed first
POST /stats/reset    zeroes the counters (active stays the live count)
Anything else: 404.
)";

/// Command line settings.
struct config {
  std::string host = "127.0.0.1";
  std::string port = "8090";
  reply_settings defaults;
  fail_mode fail = fail_mode::none;
  uint64_t fail_every = 1;
  double fail_rate_429 = 0;
  double fail_rate_500 = 0;
  uint64_t seed = 1;
  std::string api_key;
};

/// State shared by all sessions; single-threaded, so no locks.
struct shared_state {
  config cfg;
  uint64_t requests = 0;
  uint64_t streams_started = 0;
  uint64_t completed = 0;
  uint64_t aborted = 0;
  uint64_t active = 0;
  uint64_t fail_counter = 0; // chat requests since start or reset
  uint64_t next_id = 0;      // chatcmpl-mock-<n> / msg_mock_<n>, never reset
  std::mt19937_64 draws;     // --fail-rate-*: seeded with --seed at start and reset

  /// A uniform number in [0, 1) from `draws`, the same on every platform
  /// (std::uniform_real_distribution is not).
  double draw() {
    return static_cast<double>(draws() >> 11) * 0x1.0p-53;
  }

  std::string stats_json() const {
    return "{\"requests\":" + std::to_string(requests) + ",\"streams_started\":"
           + std::to_string(streams_started) + ",\"completed\":" + std::to_string(completed)
           + ",\"aborted\":" + std::to_string(aborted) + ",\"active\":" + std::to_string(active)
           + "}";
  }
};

/// Requests a client may pipeline ahead of the reply being sent.
constexpr size_t kMaxQueuedRequests = 16;
constexpr uint64_t kBodyLimit = 8 * 1024 * 1024;

/// One HTTP connection. A read is always pending, also while a reply is
/// being written: it parses pipelined requests and, more to the point, sees
/// the client close the connection at once, mid-delay (the `aborted` stat).
/// Replies are `reply_plan`s replayed with one timer; one write in flight.
class session : public std::enable_shared_from_this<session> {
public:
  session(tcp::socket sock, shared_state& st)
      : socket_(std::move(sock)), timer_(socket_.get_executor()), state_(st) {}

  void start() {
    error_code ec;
    socket_.set_option(tcp::no_delay{true}, ec); // tokens leave at once
    do_read();
  }

private:
  using request = http::request<http::string_body>;

  // -- reading ---------------------------------------------------------------

  void do_read() {
    parser_.emplace();
    parser_->body_limit(kBodyLimit);
    http::async_read(socket_, buffer_, *parser_,
                     [self = shared_from_this()](error_code ec, size_t) { self->on_read(ec); });
  }

  void on_read(error_code ec) {
    if (closed_)
      return;
    if (ec) {
      // EOF, reset or garbage: the client is gone or hopeless.
      client_gone();
      return;
    }
    if (queue_.size() >= kMaxQueuedRequests) {
      close();
      return;
    }
    queue_.push_back(parser_->release());
    if (!reply_)
      next_request();
    do_read();
  }

  // -- replies ---------------------------------------------------------------

  void next_request() {
    if (queue_.empty())
      return;
    auto req = std::move(queue_.front());
    queue_.pop_front();
    keep_alive_ = req.keep_alive();
    reply_ = handle(req);
    if (reply_->stream) {
      ++state_.streams_started;
      ++state_.active;
    }
    start_ = std::chrono::steady_clock::now();
    step_ = 0;
    run_steps();
  }

  reply_plan handle(const request& req) {
    auto target = std::string_view{req.target().data(), req.target().size()};
    target = target.substr(0, target.find('?'));
    auto method = req.method();
    auto& cfg = state_.cfg;
    if (target == "/v1/messages") {
      // Anthropic's endpoint speaks Anthropic's errors and key header.
      if (!cfg.api_key.empty() && req["x-api-key"] != cfg.api_key)
        return make_simple_plan(401, anthropic_error("invalid x-api-key", "authentication_error"),
                                keep_alive_);
      if (method != http::verb::post)
        return make_simple_plan(
            405, anthropic_error("Method not allowed.", "invalid_request_error"), keep_alive_);
      return messages(req);
    }
    if (target.substr(0, 4) == "/v1/" && !cfg.api_key.empty()
        && req[http::field::authorization] != "Bearer " + cfg.api_key)
      return make_simple_plan(
          401,
          json_error("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
          keep_alive_);
    if (target == "/v1/chat/completions" && method == http::verb::post)
      return chat(req);
    if (target == "/v1/models" && method == http::verb::get)
      return make_simple_plan(200, R"({"object":"list","data":[{"id":"mock-1","object":"model"}]})",
                              keep_alive_);
    if (target == "/stats" && method == http::verb::get)
      return make_simple_plan(200, state_.stats_json(), keep_alive_);
    if (target == "/stats/reset" && method == http::verb::post) {
      state_.requests = state_.streams_started = state_.completed = 0;
      state_.aborted = state_.fail_counter = 0;
      state_.draws.seed(state_.cfg.seed);
      return make_simple_plan(200, state_.stats_json(), keep_alive_);
    }
    bool known = target == "/v1/chat/completions" || target == "/v1/models" || target == "/stats"
                 || target == "/stats/reset";
    if (known)
      return make_simple_plan(
          405, json_error("Method not allowed.", "invalid_request_error", "method_not_allowed"),
          keep_alive_);
    return make_simple_plan(
        404, json_error("Unknown path.", "invalid_request_error", "unknown_url"), keep_alive_);
  }

  reply_plan chat(const request& req) {
    ++state_.requests;
    chat_request creq;
    if (auto err = parse_chat_request(req.body(), creq))
      return make_simple_plan(400, json_error(*err, "invalid_request_error", "invalid_json"),
                              keep_alive_);
    return make_chat_plan(creq, effective_settings(creq, next_defaults()), ++state_.next_id,
                          std::time(nullptr), keep_alive_);
  }

  /// POST /v1/messages (Anthropic).
  reply_plan messages(const request& req) {
    ++state_.requests;
    if (req["anthropic-version"].empty())
      return make_simple_plan(
          400, anthropic_error("anthropic-version: header is required", "invalid_request_error"),
          keep_alive_);
    chat_request creq;
    if (auto err = parse_messages_request(req.body(), creq))
      return make_simple_plan(400, anthropic_error(*err, "invalid_request_error"), keep_alive_);
    return make_messages_plan(creq, effective_settings(creq, next_defaults()), ++state_.next_id,
                              keep_alive_);
  }

  /// The command line settings, with --fail applied when this request's
  /// turn has come (--fail-every).
  reply_settings next_defaults() {
    auto defaults = state_.cfg.defaults;
    if (state_.cfg.fail != fail_mode::none && ++state_.fail_counter % state_.cfg.fail_every == 0)
      defaults.fail = state_.cfg.fail;
    if (state_.cfg.fail_rate_429 > 0 || state_.cfg.fail_rate_500 > 0) {
      auto x = state_.draw();
      if (x < state_.cfg.fail_rate_429)
        defaults.fail = fail_mode::http429;
      else if (x < state_.cfg.fail_rate_429 + state_.cfg.fail_rate_500)
        defaults.fail = fail_mode::http500;
    }
    return defaults;
  }

  /// Queues every step that is due; waits on the timer for the next one.
  void run_steps() {
    auto& steps = reply_->steps;
    for (; step_ < steps.size(); ++step_) {
      auto due = start_ + steps[step_].at;
      if (due > std::chrono::steady_clock::now()) {
        timer_.expires_at(due);
        timer_.async_wait([self = shared_from_this()](error_code ec) {
          if (!ec && !self->closed_)
            self->run_steps();
        });
        return;
      }
      send(std::move(steps[step_].bytes));
    }
    if (out_.empty())
      steps_done();
    // else: on_write calls steps_done once the last write completed.
  }

  /// Called once the plan's writes are all on the wire.
  void steps_done() {
    switch (reply_->last) {
      case after_steps::finish:
        if (reply_->stream) {
          ++state_.completed;
          --state_.active;
        }
        reply_.reset();
        if (!keep_alive_)
          close();
        else
          next_request();
        break;
      case after_steps::close:
        if (reply_->stream)
          --state_.active;
        reply_.reset();
        close();
        break;
      case after_steps::stall:
        break; // until the client gives up: counts as aborted then
      case after_steps::keepalive:
        // Called after every write: one timer chain only.
        if (!keeping_alive_) {
          keeping_alive_ = true;
          keep_alive();
        }
        break; // until the client gives up: counts as aborted then
    }
  }

  /// An SSE comment every keepalive_interval, until the connection closes.
  void keep_alive() {
    timer_.expires_after(keepalive_interval);
    timer_.async_wait([self = shared_from_this()](error_code ec) {
      if (ec || self->closed_)
        return;
      self->send(http_chunk(": keep-alive\n\n"));
      self->keep_alive();
    });
  }

  // -- writing ---------------------------------------------------------------

  void send(std::string bytes) {
    out_.push_back(std::move(bytes));
    if (out_.size() == 1)
      do_write();
  }

  void do_write() {
    net::async_write(socket_, net::buffer(out_.front()),
                     [self = shared_from_this()](error_code ec, size_t) { self->on_write(ec); });
  }

  void on_write(error_code ec) {
    if (closed_)
      return;
    if (ec) {
      client_gone();
      return;
    }
    out_.pop_front();
    if (!out_.empty())
      do_write();
    else if (reply_ && step_ == reply_->steps.size())
      steps_done();
  }

  // -- closing ---------------------------------------------------------------

  /// The client closed the connection (or it broke) before we did.
  void client_gone() {
    if (reply_ && reply_->stream) {
      ++state_.aborted;
      --state_.active;
    }
    reply_.reset();
    close();
  }

  void close() {
    closed_ = true;
    timer_.cancel();
    error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

  tcp::socket socket_;
  net::steady_timer timer_;
  shared_state& state_;
  boost::beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::deque<request> queue_;
  std::deque<std::string> out_;
  std::optional<reply_plan> reply_; // the reply being sent, if any
  std::chrono::steady_clock::time_point start_;
  size_t step_ = 0;
  bool keep_alive_ = true;
  bool keeping_alive_ = false; // the keepalive timer chain runs
  bool closed_ = false;
};

/// Accepts connections forever; each becomes a session on the one thread.
class listener {
public:
  listener(net::io_context& ioc, const tcp::endpoint& ep, shared_state& st)
      : ioc_(ioc), acceptor_(ioc), retry_(ioc), state_(st) {
    acceptor_.open(ep.protocol());
    acceptor_.set_option(net::socket_base::reuse_address{true});
    acceptor_.bind(ep);
    acceptor_.listen(net::socket_base::max_listen_connections);
  }

  tcp::endpoint local_endpoint() const {
    return acceptor_.local_endpoint();
  }

  void do_accept() {
    acceptor_.async_accept(ioc_, [this](error_code ec, tcp::socket sock) {
      if (!ec) {
        std::make_shared<session>(std::move(sock), state_)->start();
        do_accept();
        return;
      }
      // Out of file descriptors: back off instead of spinning.
      retry_.expires_after(std::chrono::milliseconds{50});
      retry_.async_wait([this](error_code) { do_accept(); });
    });
  }

private:
  net::io_context& ioc_;
  tcp::acceptor acceptor_;
  net::steady_timer retry_;
  shared_state& state_;
};

[[noreturn]] void usage_error(const std::string& what) {
  std::cerr << "mock_llm: " << what << " (see --help)\n";
  std::exit(2);
}

int to_int(const std::string& flag, const std::string& str, int min) {
  try {
    size_t used = 0;
    auto val = std::stoi(str, &used);
    if (used == str.size() && val >= min)
      return val;
  } catch (const std::exception&) {
  }
  usage_error(flag + " needs an integer >= " + std::to_string(min));
}

double to_probability(const std::string& flag, const std::string& str) {
  try {
    size_t used = 0;
    auto val = std::stod(str, &used);
    if (used == str.size() && val >= 0 && val <= 1)
      return val;
  } catch (const std::exception&) {
  }
  usage_error(flag + " needs a number in 0..1");
}

config parse_args(int argc, char** argv) {
  config cfg;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::cout << kUsage;
      std::exit(0);
    }
    if (i + 1 >= argc)
      usage_error("unknown option or missing value: " + flag);
    std::string val = argv[++i];
    if (flag == "--listen") {
      auto colon = val.rfind(':');
      if (colon == std::string::npos)
        usage_error("--listen needs HOST:PORT");
      cfg.host = val.substr(0, colon);
      cfg.port = val.substr(colon + 1);
      // [::1]:8090
      if (cfg.host.size() >= 2 && cfg.host.front() == '[' && cfg.host.back() == ']')
        cfg.host = cfg.host.substr(1, cfg.host.size() - 2);
      to_int("--listen port", cfg.port, 0);
    } else if (flag == "--ttft-ms") {
      cfg.defaults.ttft_ms = to_int(flag, val, 0);
    } else if (flag == "--token-delay-ms") {
      cfg.defaults.delay_ms = to_int(flag, val, 0);
    } else if (flag == "--tokens") {
      cfg.defaults.tokens = to_int(flag, val, 1);
    } else if (flag == "--fail") {
      auto mode = parse_fail_mode(val);
      if (!mode)
        usage_error("unknown --fail mode: " + val);
      cfg.fail = *mode;
    } else if (flag == "--fail-every") {
      cfg.fail_every = static_cast<uint64_t>(to_int(flag, val, 1));
    } else if (flag == "--retry-after") {
      cfg.defaults.retry_after = to_int(flag, val, 0);
    } else if (flag == "--fail-rate-429") {
      cfg.fail_rate_429 = to_probability(flag, val);
    } else if (flag == "--fail-rate-500") {
      cfg.fail_rate_500 = to_probability(flag, val);
    } else if (flag == "--seed") {
      cfg.seed = static_cast<uint64_t>(to_int(flag, val, 0));
    } else if (flag == "--api-key") {
      cfg.api_key = val;
    } else {
      usage_error("unknown option: " + flag);
    }
  }
  return cfg;
}

/// Thousands of concurrent streams need more than the usual 1024 fds.
void raise_fd_limit() {
  rlimit lim;
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

} // namespace

int main(int argc, char** argv) {
  shared_state state;
  state.cfg = parse_args(argc, argv);
  if (state.cfg.fail_rate_429 + state.cfg.fail_rate_500 > 1)
    usage_error("--fail-rate-429 + --fail-rate-500 must be at most 1");
  state.draws.seed(state.cfg.seed);
  raise_fd_limit();
  net::io_context ioc{1};
  try {
    tcp::resolver resolver{ioc};
    auto results = resolver.resolve(state.cfg.host, state.cfg.port, tcp::resolver::passive);
    listener lst{ioc, *results.begin(), state};
    auto ep = lst.local_endpoint();
    auto addr = ep.address().to_string();
    if (ep.address().is_v6())
      addr = "[" + addr + "]";
    std::printf("mock_llm listening on %s:%u\n", addr.c_str(), static_cast<unsigned>(ep.port()));
    std::fflush(stdout);
    lst.do_accept();
    net::signal_set signals{ioc, SIGINT, SIGTERM};
    signals.async_wait([&](error_code, int) { ioc.stop(); });
    ioc.run();
  } catch (const std::exception& e) {
    std::cerr << "mock_llm: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
