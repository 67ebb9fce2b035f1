// chat_load: a bounded WebSocket load generator for chatd (PROTOCOL.md v1).
//
// N connections on one io_context thread (async Beast, no thread per
// connection). Each connection sends M `send` frames one after another: the
// next one after the previous reply's `done`; the first opens a new
// conversation, the rest go to that conversation. Measures, per message,
// send->ack, send->first chunk, chunk inter-arrival and send->done; checks that
// every reply is complete and well-formed. Exits non-zero if any reply was
// wrong or missing. Connects only to 127.0.0.1.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "common/json_fields.hpp"
#include "gateway/jwt.hpp"

namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using clock_type = std::chrono::steady_clock;

namespace {

struct options {
  std::string url = "ws://127.0.0.1:8080/api/v1/chat/ws";
  std::string secret;
  int connections = 10;
  int messages = 5;
  int users = 0; // 0: one user per connection
  int duration_limit_s = 120;
  int timeout_ms = 30000;         // per message, send -> done
  int connect_timeout_ms = 10000; // TCP connect + upgrade
  std::string content = "hello from chat_load";
  std::string model;
  bool verbose = false;
};

void usage(const char* argv0) {
  std::cerr << "usage: " << argv0
            << " --secret SECRET [--url ws://127.0.0.1:PORT/api/v1/chat/ws]\n"
               "         [--connections N] [--messages M] [--users U] [--duration-limit S]\n"
               "         [--timeout-ms T] [--connect-timeout-ms T] [--content TEXT] [--model ID]\n"
               "         [--verbose]\n\n"
               "Opens N WebSocket connections (token for user load-<i % U>, U defaults to N);\n"
               "each sends M messages in one conversation, each after the previous reply's\n"
               "done. Prints latency percentiles; exits 1 if any reply was wrong or missing,\n"
               "2 on bad arguments. Only ws://127.0.0.1 is accepted. SECRET may also come\n"
               "from CHAT_JWT_SECRET.\n";
}

// -- statistics ------------------------------------------------------------------

struct series {
  std::vector<double> ms;
  void add(clock_type::duration d) {
    ms.push_back(std::chrono::duration<double, std::milli>(d).count());
  }
  double pct(double p) const { // nearest-rank on the sorted copy
    if (ms.empty())
      return 0;
    auto idx = static_cast<size_t>(p / 100.0 * static_cast<double>(ms.size()));
    if (idx >= ms.size())
      idx = ms.size() - 1;
    return ms[idx];
  }
};

struct stats {
  series connect, ack, first_chunk, inter_chunk, done;
  int64_t sent = 0, completed = 0, chunks = 0;
  int64_t connect_failures = 0, conn_errors = 0, timeouts = 0;
  int64_t error_frames = 0, wrong = 0, missing = 0;
  std::map<std::string, int64_t> finish_reasons;
  std::map<std::string, int64_t> error_codes;
  std::vector<std::string> samples; // first few problem descriptions
  void problem(const std::string& s) {
    if (samples.size() < 20)
      samples.push_back(s);
  }
};

std::string random_hex(int n) {
  std::random_device rd;
  std::mt19937_64 g{(static_cast<uint64_t>(rd()) << 32) ^ rd()
                    ^ static_cast<uint64_t>(clock_type::now().time_since_epoch().count())};
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < n; ++i)
    s += hex[g() % 16];
  return s;
}

using chat::json::num;
using chat::json::str;

// -- one connection ----------------------------------------------------------------

struct shared_state {
  options opt;
  stats st;
  std::string run_id;
  std::string host;
  uint16_t port = 0;
  std::string target; // path
  int finished = 0;   // connections that ended (well or not)
  bool stopping = false;
  std::vector<std::function<void()>> stoppers;
};

class connection : public std::enable_shared_from_this<connection> {
public:
  connection(net::io_context& ioc, shared_state& s, int id)
      : s_(s), id_(id), ws_(ioc), timer_(ioc) {}

  void start(const std::string& token) {
    token_ = token;
    t_connect_ = clock_type::now();
    beast::get_lowest_layer(ws_).expires_after(
        std::chrono::milliseconds{s_.opt.connect_timeout_ms});
    tcp::endpoint ep{net::ip::make_address("127.0.0.1"), s_.port};
    beast::get_lowest_layer(ws_).async_connect(
        ep, [self = shared_from_this()](beast::error_code ec) { self->on_connect(ec); });
  }

  // Called at the duration limit: abandon whatever is outstanding.
  void stop() {
    if (ended_)
      return;
    fail_remaining("duration limit reached", false);
  }

private:
  void on_connect(beast::error_code ec) {
    if (ec)
      return connect_failed("connect: " + ec.message());
    ws_.set_option(websocket::stream_base::decorator([](websocket::request_type& req) {
      req.set(beast::http::field::user_agent, "chat_load");
    }));
    ws_.read_message_max(16 << 20);
    ws_.async_handshake(
        res_, s_.host + ":" + std::to_string(s_.port), s_.target + "?token=" + token_,
        [self = shared_from_this()](beast::error_code ec) { self->on_handshake(ec); });
  }

  void on_handshake(beast::error_code ec) {
    if (ec)
      return connect_failed("upgrade: " + ec.message() + " (HTTP "
                            + std::to_string(res_.result_int()) + ")");
    beast::get_lowest_layer(ws_).expires_never();
    // Beast answers the server's pings while a read is pending.
    websocket::stream_base::timeout t{};
    t.handshake_timeout = std::chrono::seconds{10};
    t.idle_timeout = websocket::stream_base::none();
    t.keep_alive_pings = false;
    ws_.set_option(t);
    ws_.text(true);
    s_.st.connect.add(clock_type::now() - t_connect_);
    open_ = true;
    read();
    send_next();
  }

  void connect_failed(const std::string& why) {
    if (ended_)
      return;
    ++s_.st.connect_failures;
    s_.st.problem("conn " + std::to_string(id_) + ": " + why);
    s_.st.missing += s_.opt.messages;
    close_hard();
    end();
  }

  void send_next() {
    if (s_.stopping)
      return;
    ++msg_;
    cur_ = reply{};
    cur_.client_msg_id = s_.run_id + "-" + std::to_string(id_) + "-" + std::to_string(msg_);
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w{sb};
    w.StartObject();
    w.Key("type");
    w.String("send");
    w.Key("clientMsgId");
    w.String(cur_.client_msg_id.c_str());
    if (!conversation_.empty()) {
      w.Key("conversationId");
      w.String(conversation_.c_str());
    }
    if (!s_.opt.model.empty()) {
      w.Key("model");
      w.String(s_.opt.model.c_str());
    }
    std::string content = s_.opt.content + " " + std::to_string(id_) + " " + std::to_string(msg_);
    w.Key("content");
    w.String(content.c_str(), static_cast<rapidjson::SizeType>(content.size()));
    w.EndObject();
    out_ = sb.GetString();
    cur_.t_send = clock_type::now();
    ++s_.st.sent;
    timer_.expires_after(std::chrono::milliseconds{s_.opt.timeout_ms});
    timer_.async_wait([self = shared_from_this(), n = msg_](beast::error_code ec) {
      if (!ec && self->msg_ == n && !self->ended_) {
        ++self->s_.st.timeouts;
        self->fail_remaining("timeout waiting for the reply", false);
      }
    });
    ws_.async_write(net::buffer(out_), [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec && !self->ended_) {
        ++self->s_.st.conn_errors;
        self->fail_remaining("write: " + ec.message(), false);
      }
    });
  }

  void read() {
    ws_.async_read(
        buf_, [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec) {
      if (!ended_) {
        ++s_.st.conn_errors;
        std::string why = "read: " + ec.message();
        if (ec == websocket::error::closed)
          why += " (close code " + std::to_string(ws_.reason().code) + " '"
                 + std::string(ws_.reason().reason.c_str()) + "')";
        fail_remaining(why, false);
      }
      return;
    }
    auto now = clock_type::now();
    std::string text = beast::buffers_to_string(buf_.data());
    buf_.consume(buf_.size());
    handle(text, now);
    if (!ended_)
      read();
  }

  void wrong(const std::string& why, const std::string& frame) {
    ++s_.st.wrong;
    s_.st.problem("conn " + std::to_string(id_) + " msg " + std::to_string(msg_) + ": " + why + ": "
                  + frame.substr(0, 300));
  }

  void handle(const std::string& text, clock_type::time_point now) {
    if (s_.opt.verbose)
      std::cerr << "conn " << id_ << " <- " << text << "\n";
    rapidjson::Document d;
    d.Parse(text.c_str(), text.size());
    if (d.HasParseError() || !d.IsObject())
      return wrong("not a JSON object", text);
    auto type = str(d, "type");
    if (type == "ack") {
      if (str(d, "clientMsgId") != cur_.client_msg_id || cur_.acked)
        return wrong("unexpected ack", text);
      cur_.acked = true;
      cur_.message_id = str(d, "messageId");
      cur_.seq = num(d, "seq");
      s_.st.ack.add(now - cur_.t_send);
      auto conv = str(d, "conversationId");
      if (conversation_.empty())
        conversation_ = conv;
      else if (conv != conversation_)
        wrong("ack for another conversation", text);
      // Each earlier message of this conversation used two seqs.
      int64_t want = 2 * (msg_ - 1) + 1;
      if (cur_.seq != want)
        wrong("ack seq " + std::to_string(cur_.seq) + ", expected " + std::to_string(want), text);
    } else if (type == "chunk") {
      if (!cur_.acked)
        wrong("chunk before ack", text);
      auto index = num(d, "index");
      auto mid = str(d, "messageId");
      if (str(d, "replyTo") != cur_.message_id)
        return wrong("chunk for another message", text);
      if (cur_.chunks == 0) {
        cur_.reply_id = mid;
        s_.st.first_chunk.add(now - cur_.t_send);
      } else {
        s_.st.inter_chunk.add(now - cur_.t_last_chunk);
        if (mid != cur_.reply_id)
          wrong("chunk messageId changed", text);
      }
      if (index != cur_.chunks)
        wrong("chunk index " + std::to_string(index) + ", expected " + std::to_string(cur_.chunks),
              text);
      if (str(d, "delta").empty())
        wrong("empty delta", text);
      if (num(d, "seq") != cur_.seq + 1)
        wrong("chunk seq is not ack seq + 1", text);
      cur_.content += str(d, "delta");
      cur_.t_last_chunk = now;
      ++cur_.chunks;
      ++s_.st.chunks;
    } else if (type == "done") {
      if (str(d, "replyTo") != cur_.message_id || !cur_.acked)
        return wrong("unexpected done", text);
      auto reason = str(d, "finishReason");
      ++s_.st.finish_reasons[reason];
      s_.st.done.add(now - cur_.t_send);
      bool ok = true;
      if (num(d, "chunks") != cur_.chunks) {
        wrong("done.chunks " + std::to_string(num(d, "chunks")) + " but received "
                  + std::to_string(cur_.chunks),
              text);
        ok = false;
      }
      if (cur_.chunks > 0 && str(d, "messageId") != cur_.reply_id) {
        wrong("done messageId differs from the chunks'", text);
        ok = false;
      }
      if (num(d, "seq") != cur_.seq + 1) {
        wrong("done seq is not ack seq + 1", text);
        ok = false;
      }
      if (reason != "stop" && reason != "length") {
        wrong("finishReason " + reason, text);
        ok = false;
      }
      if (cur_.chunks == 0) {
        wrong("reply without chunks", text);
        ok = false;
      }
      ++dones_;
      if (ok)
        ++s_.st.completed;
      timer_.cancel();
      if (msg_ >= s_.opt.messages)
        return finish();
      send_next();
    } else if (type == "error") {
      ++s_.st.error_frames;
      ++s_.st.error_codes[str(d, "code")];
      wrong("error frame", text);
      // An error answering our send means no reply will come.
      if (!str(d, "clientMsgId").empty() && !cur_.acked)
        fail_remaining("send refused", true);
    } else if (type == "pong" || type == "message") {
      // not expected, harmless
    } else {
      wrong("unknown frame type", text);
    }
  }

  // Counts the current (if unfinished) and the not yet sent messages missing.
  void fail_remaining(const std::string& why, bool already_counted) {
    if (ended_)
      return;
    (void)already_counted;
    s_.st.missing += s_.opt.messages - dones_; // the current one too
    s_.st.problem("conn " + std::to_string(id_) + " msg " + std::to_string(msg_) + ": " + why);
    close_hard();
    end();
  }

  void finish() {
    end();
    ws_.async_close(websocket::close_code::normal,
                    [self = shared_from_this()](beast::error_code) { self->close_hard(); });
  }

  void close_hard() {
    beast::error_code ec;
    beast::get_lowest_layer(ws_).socket().close(ec);
  }

  void end() {
    if (ended_)
      return;
    ended_ = true;
    timer_.cancel();
    ++s_.finished;
    if (s_.finished == s_.opt.connections)
      for (auto& f : s_.stoppers)
        f();
  }

  struct reply {
    std::string client_msg_id, message_id, reply_id, content;
    int64_t seq = -1;
    int64_t chunks = 0;
    bool acked = false;
    clock_type::time_point t_send, t_last_chunk;
  };

  shared_state& s_;
  int id_;
  websocket::stream<beast::tcp_stream> ws_;
  net::steady_timer timer_;
  websocket::response_type res_;
  beast::flat_buffer buf_;
  std::string token_, out_, conversation_;
  clock_type::time_point t_connect_;
  int msg_ = 0;
  int dones_ = 0;
  reply cur_;
  bool open_ = false;
  bool ended_ = false;
};

bool parse_url(const std::string& url, shared_state& s) {
  const std::string scheme = "ws://";
  if (url.rfind(scheme, 0) != 0)
    return false;
  auto rest = url.substr(scheme.size());
  auto slash = rest.find('/');
  auto hostport = rest.substr(0, slash);
  s.target = slash == std::string::npos ? "/" : rest.substr(slash);
  auto colon = hostport.rfind(':');
  s.host = hostport.substr(0, colon);
  if (s.host != "127.0.0.1")
    return false;
  int port = colon == std::string::npos ? 80 : std::atoi(hostport.substr(colon + 1).c_str());
  if (port <= 0 || port > 65535)
    return false;
  s.port = static_cast<uint16_t>(port);
  return s.target.find('?') == std::string::npos;
}

void print_row(const char* name, series& s) {
  std::sort(s.ms.begin(), s.ms.end());
  std::printf("  %-14s n=%-7zu p50=%8.1f  p90=%8.1f  p99=%8.1f  max=%8.1f ms\n", name, s.ms.size(),
              s.pct(50), s.pct(90), s.pct(99), s.ms.empty() ? 0.0 : s.ms.back());
}

} // namespace

int main(int argc, char** argv) {
  shared_state s;
  auto& o = s.opt;
  if (auto e = std::getenv("CHAT_JWT_SECRET"))
    o.secret = e;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    auto ival = [&](int lo, int hi) {
      auto v = val();
      char* end = nullptr;
      long n = std::strtol(v.c_str(), &end, 10);
      if (end == v.c_str() || *end != '\0' || n < lo || n > hi) {
        std::cerr << a << " must be an integer in " << lo << ".." << hi << "\n";
        std::exit(2);
      }
      return static_cast<int>(n);
    };
    if (a == "--url")
      o.url = val();
    else if (a == "--secret")
      o.secret = val();
    else if (a == "--connections")
      o.connections = ival(1, 5000);
    else if (a == "--messages")
      o.messages = ival(1, 100000);
    else if (a == "--users")
      o.users = ival(1, 1000000);
    else if (a == "--duration-limit")
      o.duration_limit_s = ival(1, 3600);
    else if (a == "--timeout-ms")
      o.timeout_ms = ival(1, 3600 * 1000);
    else if (a == "--connect-timeout-ms")
      o.connect_timeout_ms = ival(1, 600 * 1000);
    else if (a == "--content")
      o.content = val();
    else if (a == "--model")
      o.model = val();
    else if (a == "--verbose")
      o.verbose = true;
    else if (a == "--help" || a == "-h") {
      usage(argv[0]);
      return 0;
    } else {
      std::cerr << "unknown argument " << a << "\n";
      usage(argv[0]);
      return 2;
    }
  }
  if (o.users == 0)
    o.users = o.connections;
  if (o.secret.empty()) {
    std::cerr << "--secret (or CHAT_JWT_SECRET) is required\n";
    return 2;
  }
  if (!parse_url(o.url, s)) {
    std::cerr << "--url must be ws://127.0.0.1:PORT/PATH (only 127.0.0.1 is allowed)\n";
    return 2;
  }
  s.run_id = "L" + random_hex(10);

  net::io_context ioc{1};
  auto now_s = std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
  std::vector<std::shared_ptr<connection>> conns;
  conns.reserve(static_cast<size_t>(o.connections));
  for (int i = 0; i < o.connections; ++i)
    conns.push_back(std::make_shared<connection>(ioc, s, i));

  net::steady_timer limit{ioc};
  bool limit_hit = false;
  s.stoppers.push_back([&] { limit.cancel(); });
  limit.expires_after(std::chrono::seconds{o.duration_limit_s});
  limit.async_wait([&](beast::error_code ec) {
    if (ec)
      return;
    limit_hit = true;
    s.stopping = true;
    for (auto& c : conns)
      c->stop();
  });

  std::printf("chat_load: %d connections x %d messages, %d users, %s, run %s\n", o.connections,
              o.messages, o.users, o.url.c_str(), s.run_id.c_str());
  std::fflush(stdout);
  auto t0 = clock_type::now();
  for (int i = 0; i < o.connections; ++i) {
    auto token = chat::auth::make_token("load-" + std::to_string(i % o.users), o.secret, now_s,
                                        o.duration_limit_s + 600);
    conns[static_cast<size_t>(i)]->start(token);
  }
  ioc.run();
  double secs = std::chrono::duration<double>(clock_type::now() - t0).count();

  auto& st = s.st;
  int64_t expected = static_cast<int64_t>(o.connections) * o.messages;
  std::printf("elapsed %.2f s%s\n", secs, limit_hit ? " (duration limit reached)" : "");
  std::printf("messages: expected %lld, sent %lld, completed ok %lld, missing %lld\n",
              static_cast<long long>(expected), static_cast<long long>(st.sent),
              static_cast<long long>(st.completed), static_cast<long long>(st.missing));
  std::printf("throughput: %.1f messages/s, %.1f chunks/s\n", st.completed / secs,
              st.chunks / secs);
  std::printf("latency (ms):\n");
  print_row("connect", st.connect);
  print_row("ack", st.ack);
  print_row("first chunk", st.first_chunk);
  print_row("chunk gap", st.inter_chunk);
  print_row("done", st.done);
  std::printf("finish reasons:");
  for (auto& kv : st.finish_reasons)
    std::printf(" %s=%lld", kv.first.c_str(), static_cast<long long>(kv.second));
  std::printf("\nerrors: connect failures %lld, connection errors %lld, timeouts %lld, "
              "error frames %lld, wrong frames %lld\n",
              static_cast<long long>(st.connect_failures), static_cast<long long>(st.conn_errors),
              static_cast<long long>(st.timeouts), static_cast<long long>(st.error_frames),
              static_cast<long long>(st.wrong));
  for (auto& kv : st.error_codes)
    std::printf("  error code %s: %lld\n", kv.first.c_str(), static_cast<long long>(kv.second));
  for (auto& p : st.samples)
    std::printf("  problem: %s\n", p.c_str());
  bool ok = st.completed == expected && st.wrong == 0 && st.missing == 0 && st.connect_failures == 0
            && st.conn_errors == 0 && st.timeouts == 0;
  std::printf("result: %s\n", ok ? "OK" : "FAILED");
  return ok ? 0 : 1;
}
