// chat_load: a bounded WebSocket load generator for chatd (PROTOCOL.md v1).
//
// N clients on one io_context thread (async Beast, no thread per
// connection). Each client sends M `send` frames one after another over one
// connection to --url: the next one after the previous reply's `done`; the
// first opens a new conversation, the rest go to that conversation. Measures,
// per message, send->ack, send->first chunk, chunk inter-arrival and
// send->done; checks that every reply is complete and well-formed. Exits
// non-zero if any reply was wrong or missing. Connects only to 127.0.0.1.
//
// Soak modes (bench/run_soak.sh): --cut-permille drops connections abruptly
// mid-reply and resumes with `subscribe` (or the same send again, if not
// acked); --reconnect-every closes cleanly and checks the replay of what was
// acked and received since; --new-conversation. A reply not arriving whole
// after a resume, or a replay that differs, counts as lost (frames to stderr).
//
// Cluster modes (bench/run_cluster_latency.sh uses them):
//  --create-url URL   each client first creates its conversation over a
//                     short connection to URL (one send, its reply, close),
//                     so the node behind URL owns it; then the M measured
//                     sends go over --url into that conversation. With --url
//                     on the same node: a local conversation; on another
//                     node: every measured send crosses nodes.
//  --failover-kill PID  after every client's M replies (connections kept
//                     open), SIGKILL PID (the node owning the
//                     conversations) and send one more message per
//                     conversation, resent (same clientMsgId) while the
//                     server answers `unavailable` or leaves it unacked for
//                     --ack-timeout-ms; measures kill->ack, kill->first
//                     chunk and kill->done: how long the conversations of a
//                     dead node stay unanswered.

#include <signal.h>
#include <sys/types.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
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
  std::string create_url; // empty: the first measured send creates the conversation
  std::string secret;
  int connections = 10;
  int messages = 5;
  int users = 0; // 0: one user per connection
  int duration_limit_s = 120;
  int timeout_ms = 30000;         // per message, send -> done (after a kill: kill -> done)
  int connect_timeout_ms = 10000; // TCP connect + upgrade
  int resend_ms = 100;            // after a kill: pause before resending an `unavailable` send
  int ack_timeout_ms = 1000;      // after a kill: resend a send not acked within this long
  pid_t kill_pid = 0;             // --failover-kill
  std::string content = "hello from chat_load";
  std::string model;
  bool verbose = false;
  // Workload shapes (bench/run_workload.sh, bench/run_saturation.sh):
  int think_ms = 0; // pause between a reply's done and the next send
  int ramp_ms = 0;  // connection i starts at i * ramp_ms / N: no thundering start
  int run_s = 0;    // >0: keep sending (up to --messages) until this many s after the start
  int warmup_s = 0; // with --run-s: chunks/s counted from here to --run-s
  // Soak (bench/run_soak.sh): reconnects and resumes.
  int cut_permille = 0;          // per send: drop the connection abruptly before the reply ends
  int cut_window_ms = 500;       // the cut comes at a uniform time in [0, this] after the send
  int reconnect_every = 0;       // >0: a clean close and reconnect after every K replies
  bool new_conversation = false; // on a clean reconnect, 1 in 4 starts a new conversation
  bool soak() const {
    return cut_permille > 0 || reconnect_every > 0;
  }
};

void usage(const char* argv0) {
  std::cerr << "usage: " << argv0
            << " --secret SECRET [--url ws://127.0.0.1:PORT/api/v1/chat/ws]\n"
               "         [--connections N] [--messages M] [--users U] [--duration-limit S]\n"
               "         [--timeout-ms T] [--connect-timeout-ms T] [--content TEXT] [--model ID]\n"
               "         [--create-url ws://127.0.0.1:PORT/api/v1/chat/ws]\n"
               "         [--failover-kill PID [--resend-ms T] [--ack-timeout-ms T]] [--verbose]\n"
               "         [--think-ms T] [--ramp-ms T] [--run-s S [--warmup-s W]]\n"
               "         [--cut-permille N [--cut-window-ms T]] [--reconnect-every K]\n"
               "         [--new-conversation]\n\n"
               "Opens N WebSocket connections (token for user load-<i % U>, U defaults to N);\n"
               "each sends M messages in one conversation, each after the previous reply's\n"
               "done. Prints latency percentiles; exits 1 if any reply was wrong or missing,\n"
               "2 on bad arguments. Only ws://127.0.0.1 is accepted. SECRET may also come\n"
               "from CHAT_JWT_SECRET.\n\n"
               "--create-url: each conversation is first created with one send (not measured)\n"
               "over a short connection to that node, which then owns it; the M measured sends\n"
               "go over --url into it (same node or across nodes).\n"
               "--failover-kill PID: after all M replies, SIGKILL PID (the conversations' owner)\n"
               "and send one more message per conversation over the open --url connection,\n"
               "resent with the same clientMsgId --resend-ms (default 100) after an `unavailable`\n"
               "answer and whenever --ack-timeout-ms (default 1000) pass without an ack;\n"
               "latencies of that send are measured from the kill.\n"
               "--think-ms: pause between a reply's done and the next send (a user reading).\n"
               "--ramp-ms: connection i starts i*T/N ms after the first (spread the start).\n"
               "--run-s: no new send once S s have passed since the start (--messages is then\n"
               "a cap); replies in flight still complete and are checked. --warmup-s W: the\n"
               "steady-state chunks/s is counted over [W, S] s.\n"
               "--cut-permille N: after each send, with probability N/1000, the connection is\n"
               "dropped abruptly (no close frame) at a uniform time in [0, --cut-window-ms]\n"
               "(default 500) unless the reply ended first; the client reconnects and resumes:\n"
               "`subscribe` afterSeq = the acked user message's seq (or, if the send was not\n"
               "acked, the same send again, then that subscribe). The reply must then arrive\n"
               "whole (missing chunks, a wrong done.chunks or a timeout count as lost; the\n"
               "user's recent frames are printed to stderr).\n"
               "--reconnect-every K: after every K replies a clean close and reconnect, then\n"
               "`subscribe` afterSeq = the seq before the messages of the last K sends: all of\n"
               "them must be replayed, in order, exactly as acked and received (else lost).\n"
               "--new-conversation: on 1 in 4 clean reconnects, start a new conversation.\n";
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

/// The sends of one kind (measured, creating, after the kill) and how they went.
struct stats {
  int64_t expected = 0; // sends this run should complete
  series connect, ack, first_chunk, inter_chunk, done;
  int64_t sent = 0, completed = 0, chunks = 0;
  int64_t window_chunks = 0;                          // received within [--warmup-s, --run-s]
  int64_t resent_unavailable = 0, resent_unacked = 0; // after a kill
  int64_t repeated_chunks = 0;                        // dropped, as a client does
  int64_t replayed_replies = 0; // ended by a `message` instead of chunks and done
  // Soak: reconnects and resumes.
  int64_t cuts = 0, cuts_before_ack = 0, resumes = 0, resumed_whole = 0, reconnects = 0;
  int64_t new_conversations = 0, replay_verified = 0, lost = 0;
  int64_t repeated_ends = 0; // a reply's done (or replay) again: see repeated_end()
  int64_t connect_failures = 0, conn_errors = 0, timeouts = 0;
  int64_t error_frames = 0, wrong = 0, missing = 0;
  std::map<std::string, int64_t> finish_reasons;
  std::map<std::string, int64_t> error_codes;
  std::vector<std::string> samples; // first few problem descriptions
  void problem(const std::string& s) {
    if (samples.size() < 20)
      samples.push_back(s);
  }
  bool ok() const {
    return completed == expected && wrong == 0 && missing == 0 && connect_failures == 0
           && conn_errors == 0 && timeouts == 0 && lost == 0;
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

// -- shared state ------------------------------------------------------------------

/// A ws://127.0.0.1:PORT/PATH address.
struct endpoint {
  std::string url;
  std::string host;
  uint16_t port = 0;
  std::string target; // path
};

struct shared_state {
  options opt;
  endpoint url, create_url;
  stats st;       // the measured sends, over --url
  stats setup;    // the sends that created the conversations (--create-url)
  stats failover; // the sends after the kill (--failover-kill), timed from the kill
  std::string run_id;
  clock_type::time_point t0;                     // the start
  clock_type::time_point window_from, window_to; // steady-state window (--run-s)
  bool stopping = false;
  std::mt19937_64 rng{std::random_device{}()};
  int finished = 0; // clients that ended (well or not)
  int settled = 0;  // clients past their measured sends (well or not)
  int ready = 0;    // of which with all replies, waiting for the kill
  // The measured phase, for the throughput: first measured connect to last
  // measured reply.
  std::optional<clock_type::time_point> measure_start, measure_end;
  std::function<void()> on_all_settled; // --failover-kill: kill, then probe
  std::vector<std::function<void()>> stoppers;
};

// -- one connection ----------------------------------------------------------------

/// What one connection does: `count` sends into its client's conversation,
/// each after the previous reply's done, numbered from `first` within the
/// conversation (the conversation's first send is 1: the ack of send k has
/// seq 2k-1, its reply 2k).
struct leg {
  const char* name; // "create" or "measure", for messages
  const endpoint* ep;
  stats* st;
  int first = 1;
  int count = 1;
  bool keep_open = false; // stay connected after the last reply (a probe follows)
};

using ws_type = websocket::stream<beast::tcp_stream>;

class connection : public std::enable_shared_from_this<connection> {
public:
  /// Called once the leg's sends are over: `all_replied` if every one got
  /// its done (well-formed or not; problems are counted in the stats).
  using end_fn = std::function<void(bool all_replied)>;

  connection(net::io_context& ioc, shared_state& s, int id, leg l, std::string conversation,
             end_fn on_end)
      : s_(s), id_(id), leg_(l), st_(l.st), on_end_(std::move(on_end)), ioc_(ioc),
        ws_(std::make_shared<ws_type>(ioc)), timer_(ioc), resend_timer_(ioc), think_timer_(ioc),
        cut_timer_(ioc), conversation_(std::move(conversation)), msg_(l.first - 1),
        conv_msgs_(l.first - 1) {}

  void start(const std::string& token) {
    token_ = token;
    t_connect_ = clock_type::now();
    beast::get_lowest_layer(*ws_).expires_after(
        std::chrono::milliseconds{s_.opt.connect_timeout_ms});
    tcp::endpoint ep{net::ip::make_address("127.0.0.1"), leg_.ep->port};
    beast::get_lowest_layer(*ws_).async_connect(
        ep, [self = shared_from_this(), g = gen_](beast::error_code ec) {
          if (g == self->gen_)
            self->on_connect(ec);
        });
  }

  /// --failover-kill: one more send on this still open connection, its
  /// latencies counted in `st` from `t0` (the kill). Resent with the same
  /// clientMsgId (the idempotency key) --resend-ms after an `unavailable`
  /// answer (the conversation is moving to a live node), and whenever
  /// --ack-timeout-ms pass without an ack (a send that reached the dead
  /// node is lost).
  void probe(stats& st, clock_type::time_point t0, end_fn on_end) {
    st_ = &st;
    on_end_ = std::move(on_end);
    probing_ = true;
    t_probe_ = t0;
    dones_ = 0;
    leg_.count = 1;
    leg_.keep_open = false;
    if (ended_) { // the connection broke while waiting for the kill
      st.missing += 1;
      st.problem(who() + ": connection lost before the kill");
      return on_end_(false);
    }
    idle_ = false;
    send_next();
  }

  /// Called at the duration limit: abandon whatever is outstanding.
  void stop() {
    if (idle_) {
      idle_ = false;
      close_hard();
      ended_ = true;
      return;
    }
    if (!ended_)
      fail_remaining("duration limit reached");
  }

  const std::string& conversation() const {
    return conversation_;
  }

private:
  std::string who() const {
    return "conn " + std::to_string(id_) + " (" + (probing_ ? "after kill" : leg_.name) + ")";
  }

  void on_connect(beast::error_code ec) {
    if (ec)
      return connect_failed("connect: " + ec.message());
    ws_->set_option(websocket::stream_base::decorator([](websocket::request_type& req) {
      req.set(beast::http::field::user_agent, "chat_load");
    }));
    ws_->read_message_max(16 << 20);
    ws_->async_handshake(res_, leg_.ep->host + ":" + std::to_string(leg_.ep->port),
                         leg_.ep->target + "?token=" + token_,
                         [self = shared_from_this(), g = gen_](beast::error_code ec) {
                           if (g == self->gen_)
                             self->on_handshake(ec);
                         });
  }

  void on_handshake(beast::error_code ec) {
    if (ec)
      return connect_failed("upgrade: " + ec.message() + " (HTTP "
                            + std::to_string(res_.result_int()) + ")");
    beast::get_lowest_layer(*ws_).expires_never();
    // Beast answers the server's pings while a read is pending.
    websocket::stream_base::timeout t{};
    t.handshake_timeout = std::chrono::seconds{10};
    t.idle_timeout = websocket::stream_base::none();
    t.keep_alive_pings = false;
    ws_->set_option(t);
    ws_->text(true);
    st_->connect.add(clock_type::now() - t_connect_);
    read();
    auto p = reconnecting_;
    reconnecting_ = phase::none;
    switch (p) {
      case phase::none:
        return send_next();
      case phase::cut:
        ++st_->resumes;
        return resume();
      case phase::clean:
        ++st_->reconnects;
        return after_clean_reconnect();
      case phase::fresh:
        return start_new_conversation();
    }
  }

  // -- soak: cuts, resumes, clean reconnects ---------------------------------------

  enum class phase { none, cut, clean, fresh };

  /// The last frames of this connection (soak only), printed when something is lost.
  void trace(const char* dir, const std::string& what) {
    if (!s_.opt.soak())
      return;
    double t = std::chrono::duration<double, std::milli>(clock_type::now() - s_.t0).count();
    char b[48];
    std::snprintf(b, sizeof b, "%11.1f ms g%llu %s ", t, static_cast<unsigned long long>(gen_),
                  dir);
    log_.push_back(b + what.substr(0, 500));
    if (log_.size() > 150)
      log_.pop_front();
  }

  /// A loss: counted, described, and the user's recent frames to stderr.
  void lost(const std::string& why) {
    ++st_->lost;
    std::string d = who() + " user load-" + std::to_string(id_ % s_.opt.users) + " conversation "
                    + conversation_ + " user seq " + std::to_string(cur_.seq) + " clientMsgId "
                    + cur_.client_msg_id + " (resumed " + std::to_string(cur_.resumes)
                    + "x, chunks 0.." + std::to_string(cur_.chunks - 1) + " received): " + why;
    st_->problem("LOST " + d);
    std::cerr << "=== LOST: " << d << "\n    frames of this connection (ms since start, g = "
              << "connection generation):\n";
    for (auto& l : log_)
      std::cerr << "    " << l << "\n";
    std::cerr << "=== end of LOST report\n";
  }

  /// Replaces the socket by a new connection; `p` says what follows the upgrade.
  void reconnect(phase p) {
    reconnecting_ = p;
    closing_ = false;
    close_hard();
    ++gen_;
    writing_ = false;
    outq_.clear();
    // A read pending on the old socket may still fill its buffer: a new one.
    buf_ = std::make_shared<beast::flat_buffer>();
    ws_ = std::make_shared<ws_type>(ioc_);
    trace("--", "reconnect");
    start(token_);
  }

  /// --cut-permille: the connection drops (no close frame) before the reply ended.
  void cut() {
    ++st_->cuts;
    if (!cur_.acked)
      ++st_->cuts_before_ack;
    ++cur_.resumes;
    trace("--", std::string("CUT (") + (cur_.acked ? "acked" : "not acked") + ", "
                    + std::to_string(cur_.chunks) + " chunks)");
    reconnect(phase::cut);
  }

  /// After a cut: subscribe after the acked user message; not acked, the
  /// same send again first (its ack then brings the subscribe).
  void resume() {
    if (!cur_.acked) {
      cur_.resend_pending = true;
      return write_frame(out_);
    }
    subscribe(cur_.seq);
  }

  void subscribe(int64_t after) {
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w{sb};
    w.StartObject();
    w.Key("type");
    w.String("subscribe");
    w.Key("conversationId");
    w.String(conversation_.c_str());
    w.Key("afterSeq");
    w.Int64(after);
    w.EndObject();
    write_frame(sb.GetString());
  }

  /// --reconnect-every: close cleanly, then reconnect.
  void clean_reconnect() {
    trace("--", "clean close");
    closing_ = true;
    ws_->async_close(websocket::close_code::normal,
                     [self = shared_from_this(), g = gen_, ws = ws_](beast::error_code) {
                       if (g == self->gen_ && !self->ended_)
                         self->reconnect(phase::clean);
                     });
  }

  /// After a clean reconnect: a new conversation (--new-conversation, 1 in
  /// 4), or a subscribe that must replay every message since the previous
  /// reconnect exactly as this client saw it.
  void after_clean_reconnect() {
    if (conversation_.empty()
        || (s_.opt.new_conversation && std::uniform_int_distribution<int>(0, 3)(s_.rng) == 0))
      return start_new_conversation();
    if (history_.empty())
      return think_then_send();
    verify_after_ = history_.front().seq - 1;
    verify_next_ = verify_after_ + 1;
    verifying_ = true;
    timer_.expires_after(std::chrono::milliseconds{s_.opt.timeout_ms});
    timer_.async_wait([self = shared_from_this(), n = msg_](beast::error_code ec) {
      if (!ec && self->msg_ == n && self->verifying_ && !self->ended_) {
        ++self->st_->timeouts;
        self->lost("replay after a clean reconnect incomplete: next expected seq "
                   + std::to_string(self->verify_next_) + " of "
                   + std::to_string(self->verify_after_ + 1) + ".."
                   + std::to_string(self->history_.back().seq));
        self->verifying_ = false;
        self->reconnect(phase::fresh);
      }
    });
    subscribe(verify_after_);
  }

  /// A `message` while verifying the replay after a clean reconnect.
  void verify_replayed(const rapidjson::Document& d, const std::string& text) {
    auto seq = num(d, "seq");
    if (seq < verify_next_)
      return lost("replayed seq " + std::to_string(seq) + " again or out of order: " + text);
    if (seq > verify_next_)
      lost("replay skipped seqs " + std::to_string(verify_next_) + ".." + std::to_string(seq - 1)
           + ": " + text);
    auto idx = static_cast<size_t>(seq - verify_after_ - 1);
    if (idx >= history_.size())
      return lost("replayed seq " + std::to_string(seq) + " beyond the last one seen: " + text);
    auto& h = history_[idx];
    if (str(d, "role") != h.role || str(d, "messageId") != h.id || str(d, "content") != h.content
        || (h.role == "user" && str(d, "clientMsgId") != h.client_msg_id))
      lost("replayed message differs from the one acked/received (" + h.role + " " + h.id + ", "
           + std::to_string(h.content.size()) + " bytes): " + text);
    verify_next_ = seq + 1;
    if (idx + 1 == history_.size()) {
      verifying_ = false;
      st_->replay_verified += static_cast<int64_t>(history_.size());
      history_.clear();
      timer_.cancel();
      think_then_send();
    }
  }

  void start_new_conversation() {
    ++st_->new_conversations;
    conversation_.clear();
    conv_msgs_ = 0;
    history_.clear();
    think_then_send();
  }

  void think_then_send() {
    if (s_.opt.think_ms <= 0)
      return send_next();
    think_timer_.expires_after(std::chrono::milliseconds{s_.opt.think_ms});
    think_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec && !self->ended_)
        self->send_next();
    });
  }

  void connect_failed(const std::string& why) {
    if (ended_)
      return;
    ++st_->connect_failures;
    st_->problem(who() + ": " + why);
    // With --run-s the messages are only a cap: count the first send missing.
    st_->missing += s_.opt.run_s > 0 ? 1 : leg_.count;
    close_hard();
    end(false);
  }

  void send_next() {
    if (s_.stopping)
      return;
    ++msg_;
    ++conv_msgs_;
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
    cur_.content_sent = content;
    w.Key("content");
    w.String(content.c_str(), static_cast<rapidjson::SizeType>(content.size()));
    w.EndObject();
    out_ = sb.GetString();
    cur_.t_send = clock_type::now();
    // Latencies count from the send, or, after a kill, from the kill.
    cur_.t_base = probing_ ? t_probe_ : cur_.t_send;
    ++st_->sent;
    if (probing_)
      resend_after(std::chrono::milliseconds{s_.opt.ack_timeout_ms});
    timer_.expires_at(cur_.t_base + std::chrono::milliseconds{s_.opt.timeout_ms});
    timer_.async_wait([self = shared_from_this(), n = msg_](beast::error_code ec) {
      if (!ec && self->msg_ == n && !self->ended_) {
        ++self->st_->timeouts;
        if (!self->s_.opt.soak())
          return self->fail_remaining("timeout waiting for the reply");
        // Soak: counted lost (and missing), then on in a new conversation.
        ++self->st_->missing;
        self->lost("timeout waiting for the reply");
        self->reconnect(phase::fresh);
      }
    });
    if (s_.opt.cut_permille > 0 && !probing_
        && std::uniform_int_distribution<int>(0, 999)(s_.rng) < s_.opt.cut_permille) {
      cut_timer_.expires_after(std::chrono::milliseconds{
          std::uniform_int_distribution<int>(0, s_.opt.cut_window_ms)(s_.rng)});
      cut_timer_.async_wait([self = shared_from_this(), n = msg_](beast::error_code ec) {
        if (!ec && self->msg_ == n && !self->ended_ && !self->cur_.ended
            && self->reconnecting_ == phase::none && !self->closing_)
          self->cut();
      });
    }
    write_out();
  }

  /// Writes the current send. Beast allows one write at a time: a resend
  /// due while one is in flight is skipped (the next is planned already).
  void write_out() {
    if (writing_ && probing_)
      return;
    write_frame(out_);
  }

  /// Queues a frame; one write at a time, in order.
  void write_frame(std::string f) {
    trace("->", f);
    outq_.push_back(std::make_shared<std::string>(std::move(f)));
    pump();
  }

  void pump() {
    if (writing_ || outq_.empty())
      return;
    writing_ = true;
    auto f = outq_.front();
    ws_->async_write(net::buffer(*f), [self = shared_from_this(), g = gen_, f,
                                       ws = ws_](beast::error_code ec, size_t) {
      if (g != self->gen_)
        return; // a socket replaced since
      self->writing_ = false;
      if (!self->outq_.empty())
        self->outq_.pop_front();
      if (ec && !self->ended_) {
        if (self->closing_)
          return;
        ++self->st_->conn_errors;
        return self->fail_remaining("write: " + ec.message());
      }
      self->pump();
    });
  }

  /// Probing: resends the current send after `delay` unless it is acked by
  /// then, and again every --ack-timeout-ms. Replaces an earlier plan.
  void resend_after(std::chrono::milliseconds delay) {
    resend_timer_.expires_after(delay);
    resend_timer_.async_wait([self = shared_from_this(), n = msg_](beast::error_code ec) {
      if (ec || self->msg_ != n || self->ended_ || self->s_.stopping || self->cur_.acked)
        return;
      if (!self->unavailable_)
        ++self->st_->resent_unacked;
      self->unavailable_ = false;
      self->write_out();
      self->resend_after(std::chrono::milliseconds{self->s_.opt.ack_timeout_ms});
    });
  }

  void read() {
    ws_->async_read(*buf_, [self = shared_from_this(), g = gen_, ws = ws_,
                            b = buf_](beast::error_code ec, size_t) {
      if (g == self->gen_)
        self->on_read(ec);
    });
  }

  void on_read(beast::error_code ec) {
    if (ec && closing_)
      return; // our clean close: the reconnect follows
    if (ec) {
      if (idle_) { // between the last reply and the kill; probe() counts it missing
        idle_ = false;
        ended_ = true;
        ++s_.failover.conn_errors;
        s_.failover.problem(who() + ": read while waiting for the kill: " + ec.message());
        return;
      }
      if (!ended_) {
        ++st_->conn_errors;
        std::string why = "read: " + ec.message();
        if (ec == websocket::error::closed)
          why += " (close code " + std::to_string(ws_->reason().code) + " '"
                 + std::string(ws_->reason().reason.c_str()) + "')";
        fail_remaining(why);
      }
      return;
    }
    auto now = clock_type::now();
    std::string text = beast::buffers_to_string(buf_->data());
    buf_->consume(buf_->size());
    handle(text, now);
    if (!ended_)
      read();
  }

  void wrong(const std::string& why, const std::string& frame) {
    ++st_->wrong;
    if (cur_.resumes > 0)
      lost(why + ": " + frame.substr(0, 300));
    st_->problem(who() + " msg " + std::to_string(msg_) + ": " + why + ": " + frame.substr(0, 300));
  }

  void handle(const std::string& text, clock_type::time_point now) {
    if (s_.opt.verbose)
      std::cerr << who() << " <- " << text << "\n";
    trace("<-", text);
    rapidjson::Document d;
    d.Parse(text.c_str(), text.size());
    if (d.HasParseError() || !d.IsObject())
      return wrong("not a JSON object", text);
    auto type = str(d, "type");
    if (type == "ack") {
      if (probing_ && cur_.acked && str(d, "clientMsgId") == cur_.client_msg_id
          && str(d, "messageId") == cur_.message_id)
        return; // the repeat of a resend
      if (str(d, "clientMsgId") != cur_.client_msg_id || cur_.acked)
        return wrong("unexpected ack", text);
      cur_.acked = true;
      cur_.message_id = str(d, "messageId");
      cur_.seq = num(d, "seq");
      st_->ack.add(now - cur_.t_base);
      auto conv = str(d, "conversationId");
      if (conversation_.empty())
        conversation_ = conv;
      else if (conv != conversation_)
        wrong("ack for another conversation", text);
      // Each earlier message of this conversation used two seqs.
      int64_t want = 2 * (conv_msgs_ - 1) + 1;
      if (cur_.seq != want)
        wrong("ack seq " + std::to_string(cur_.seq) + ", expected " + std::to_string(want), text);
      if (cur_.resend_pending) { // resumed before the ack: now the reply
        cur_.resend_pending = false;
        subscribe(cur_.seq);
      }
    } else if (type == "chunk") {
      if (!cur_.acked)
        wrong("chunk before ack", text);
      auto index = num(d, "index");
      auto mid = str(d, "messageId");
      if (str(d, "replyTo") != cur_.message_id)
        return wrong("chunk for another message", text);
      if (index >= 0 && index < cur_.chunks && mid == cur_.reply_id) {
        // Already have it: after a resubscription (the session followed the
        // conversation) or a resend, chunks may come again (PROTOCOL.md).
        ++st_->repeated_chunks;
        return;
      }
      if (cur_.chunks == 0) {
        cur_.reply_id = mid;
        st_->first_chunk.add(now - cur_.t_base);
      } else {
        st_->inter_chunk.add(now - cur_.t_last_chunk);
        if (mid != cur_.reply_id)
          wrong("chunk messageId changed", text);
      }
      if (index != cur_.chunks)
        wrong("chunk index " + std::to_string(index) + ", expected " + std::to_string(cur_.chunks)
                  + " (chunks " + std::to_string(cur_.chunks) + ".." + std::to_string(index - 1)
                  + " missing)",
              text);
      if (str(d, "delta").empty())
        wrong("empty delta", text);
      if (num(d, "seq") != cur_.seq + 1)
        wrong("chunk seq is not ack seq + 1", text);
      cur_.content += str(d, "delta");
      cur_.t_last_chunk = now;
      ++cur_.chunks;
      ++st_->chunks;
      if (s_.opt.run_s > 0 && now >= s_.window_from && now < s_.window_to)
        ++st_->window_chunks;
    } else if (type == "done") {
      if (repeated_end(d))
        return;
      if (str(d, "replyTo") != cur_.message_id || !cur_.acked)
        return wrong("unexpected done", text);
      bool ok = true;
      if (num(d, "chunks") != cur_.chunks) {
        wrong("done.chunks " + std::to_string(num(d, "chunks")) + " but received "
                  + std::to_string(cur_.chunks),
              text);
        ok = false;
      }
      if (cur_.chunks == 0) {
        wrong("reply without chunks", text);
        ok = false;
      }
      reply_ended(d, text, now, ok);
    } else if (type == "message") {
      if (verifying_)
        return verify_replayed(d, text);
      if (repeated_end(d))
        return;
      // After a resubscription (the session followed the conversation to a
      // new node) a reply that ended meanwhile comes whole, as a `message`,
      // instead of its last chunks and done (PROTOCOL.md, subscribe).
      if (cur_.acked && str(d, "role") == "assistant" && str(d, "replyTo") == cur_.message_id) {
        ++st_->replayed_replies;
        bool ok = true;
        if (str(d, "content").compare(0, cur_.content.size(), cur_.content) != 0) {
          wrong("replayed reply does not start with the chunks received", text);
          ok = false;
        }
        cur_.content = str(d, "content");
        if (cur_.chunks == 0)
          cur_.reply_id = str(d, "messageId");
        reply_ended(d, text, now, ok);
      }
      // Other messages (replays of earlier ones) are harmless.
    } else if (type == "error") {
      bool answers_send = !str(d, "clientMsgId").empty() && !cur_.acked;
      if (answers_send && probing_ && str(d, "code") == "unavailable") {
        ++st_->resent_unavailable;
        unavailable_ = true;
        return resend_after(std::chrono::milliseconds{s_.opt.resend_ms});
      }
      ++st_->error_frames;
      ++st_->error_codes[str(d, "code")];
      wrong("error frame", text);
      // An error answering our send means no reply will come.
      if (answers_send)
        fail_remaining("send refused");
    } else if (type == "pong") {
      // not expected, harmless
    } else {
      wrong("unknown frame type", text);
    }
  }

  /// The end (`done`, or a `message` replaying it) of a reply that has ended
  /// already: after a cut before the ack the client resends the send, whose
  /// repeat attaches the connection to the reply (PROTOCOL.md, clientMsgId),
  /// and subscribes on the ack (the reply may have ended, and then only a
  /// subscribe brings it), so a reply still running then ends twice. Dropped,
  /// like a repeated chunk.
  bool repeated_end(const rapidjson::Document& d) {
    if (last_reply_id_.empty() || str(d, "messageId") != last_reply_id_)
      return false;
    ++st_->repeated_ends;
    return true;
  }

  /// The current reply ended (`done`, or replayed whole as a `message`):
  /// the checks both share, then the next send or the end of the leg.
  void reply_ended(const rapidjson::Document& d, const std::string& text,
                   clock_type::time_point now, bool ok) {
    auto reason = str(d, "finishReason");
    ++st_->finish_reasons[reason];
    st_->done.add(now - cur_.t_base);
    if (cur_.chunks > 0 && str(d, "messageId") != cur_.reply_id) {
      wrong("reply messageId differs from the chunks'", text);
      ok = false;
    }
    if (num(d, "seq") != cur_.seq + 1) {
      wrong("reply seq is not ack seq + 1", text);
      ok = false;
    }
    if (reason != "stop" && reason != "length") {
      wrong("finishReason " + reason, text);
      ok = false;
    }
    ++dones_;
    if (ok)
      ++st_->completed;
    if (ok && cur_.resumes > 0)
      ++st_->resumed_whole;
    cur_.ended = true;
    last_reply_id_ = str(d, "messageId");
    timer_.cancel();
    cut_timer_.cancel();
    if (s_.opt.reconnect_every > 0) { // what a clean reconnect must replay
      if (history_.size() > 400)
        history_.clear();
      history_.push_back(
          {cur_.seq, "user", cur_.message_id, cur_.client_msg_id, cur_.content_sent});
      history_.push_back({cur_.seq + 1, "assistant", cur_.reply_id, "", cur_.content});
    }
    // --run-s: the time is up, no new send (the leg ends as if complete).
    if (dones_ < leg_.count && s_.opt.run_s > 0 && !probing_
        && now - s_.t0 >= std::chrono::seconds{s_.opt.run_s})
      leg_.count = dones_;
    if (dones_ < leg_.count) {
      if (probing_)
        return send_next();
      if (s_.opt.reconnect_every > 0 && dones_ % s_.opt.reconnect_every == 0)
        return clean_reconnect();
      return think_then_send();
    }
    if (leg_.keep_open) { // reading on, until probe()
      idle_ = true;
      return on_end_(true);
    }
    finish();
  }

  // Counts the current (if unfinished) and the not yet sent messages missing.
  void fail_remaining(const std::string& why) {
    if (ended_)
      return;
    st_->missing += leg_.count - dones_; // the current one too
    st_->problem(who() + " msg " + std::to_string(msg_) + ": " + why);
    close_hard();
    end(false);
  }

  void finish() {
    end(true);
    ws_->async_close(websocket::close_code::normal,
                     [self = shared_from_this()](beast::error_code) { self->close_hard(); });
  }

  void close_hard() {
    beast::error_code ec;
    beast::get_lowest_layer(*ws_).socket().close(ec);
  }

  void end(bool all_replied) {
    if (ended_)
      return;
    ended_ = true;
    timer_.cancel();
    resend_timer_.cancel();
    think_timer_.cancel();
    cut_timer_.cancel();
    on_end_(all_replied);
  }

  struct reply {
    std::string client_msg_id, message_id, reply_id, content, content_sent;
    int64_t seq = -1;
    int64_t chunks = 0;
    int resumes = 0;             // cuts during this reply
    bool resend_pending = false; // cut before the ack: resent, subscribe on the ack
    bool ended = false;
    bool acked = false;
    clock_type::time_point t_send, t_base, t_last_chunk;
  };

  shared_state& s_;
  int id_;
  leg leg_;
  stats* st_;
  end_fn on_end_;
  net::io_context& ioc_;
  std::shared_ptr<ws_type> ws_; // replaced on a reconnect (--cut-permille, --reconnect-every)
  net::steady_timer timer_, resend_timer_, think_timer_, cut_timer_;
  websocket::response_type res_;
  std::shared_ptr<beast::flat_buffer> buf_ = std::make_shared<beast::flat_buffer>();
  std::string token_, out_, conversation_;
  clock_type::time_point t_connect_, t_probe_;
  int msg_;          // number of the current send on this connection (clientMsgId)
  int conv_msgs_;    // sends in the current conversation, this one included
  uint64_t gen_ = 0; // the socket's generation: handlers of replaced ones do nothing
  phase reconnecting_ = phase::none;
  bool closing_ = false;   // clean close in progress (--reconnect-every)
  bool verifying_ = false; // waiting for the replay after a clean reconnect
  int64_t verify_after_ = 0, verify_next_ = 0;
  struct seen {
    int64_t seq;
    std::string role, id, client_msg_id, content;
  };
  std::vector<seen> history_; // since the last clean reconnect
  std::deque<std::shared_ptr<std::string>> outq_;
  std::deque<std::string> log_;
  std::string last_reply_id_; // of the last reply that ended
  int dones_ = 0;             // replies done on this leg
  reply cur_;
  bool writing_ = false;
  bool probing_ = false;
  bool unavailable_ = false; // probing: the pending resend answers an `unavailable`
  bool idle_ = false;        // keep_open: all replied, waiting for probe()
  bool ended_ = false;
};

// -- one client ----------------------------------------------------------------

/// One user's conversation: (--create-url) created over a short connection
/// to that node, then M measured sends over a connection to --url, then
/// (--failover-kill) one more send after the kill, on the same connection.
class client : public std::enable_shared_from_this<client> {
public:
  client(net::io_context& ioc, shared_state& s, int id) : ioc_(ioc), s_(s), id_(id) {}

  void start(std::string token) {
    token_ = std::move(token);
    if (s_.create_url.url.empty())
      return measure("");
    leg l{"create", &s_.create_url, &s_.setup, 1, 1, false};
    conn_ = std::make_shared<connection>(ioc_, s_, id_, l, "",
                                         [self = shared_from_this()](bool all_replied) {
                                           if (all_replied && !self->s_.stopping)
                                             self->measure(self->conn_->conversation());
                                           else
                                             self->give_up(true);
                                         });
    conn_->start(token_);
  }

  /// After the kill: the probe send, if this client got that far.
  void probe(clock_type::time_point t_kill) {
    if (!waiting_for_kill_)
      return;
    waiting_for_kill_ = false;
    conn_->probe(s_.failover, t_kill, [self = shared_from_this()](bool) { self->end(); });
  }

  void stop() {
    if (conn_)
      conn_->stop();
    if (waiting_for_kill_) {
      waiting_for_kill_ = false;
      s_.failover.missing += 1;
      end();
    }
  }

private:
  bool failover() const {
    return s_.opt.kill_pid != 0;
  }

  void measure(const std::string& conversation) {
    // A created conversation already has send 1 (and its reply).
    int first = conversation.empty() ? 1 : 2;
    leg l{"measure", &s_.url, &s_.st, first, s_.opt.messages, failover()};
    if (!s_.measure_start)
      s_.measure_start = clock_type::now();
    conn_ = std::make_shared<connection>(ioc_, s_, id_, l, conversation,
                                         [self = shared_from_this()](bool all_replied) {
                                           self->s_.measure_end = clock_type::now();
                                           if (!all_replied)
                                             return self->give_up(false);
                                           if (!self->failover())
                                             return self->end();
                                           self->waiting_for_kill_ = true;
                                           ++self->s_.ready;
                                           self->settle();
                                         });
    conn_->start(token_);
  }

  /// A leg failed: what this client did not get to send is missing.
  void give_up(bool before_measure) {
    if (before_measure)
      s_.st.missing += s_.opt.messages;
    if (failover()) {
      s_.failover.missing += 1;
      settle();
    }
    end();
  }

  /// The last client past its measured sends starts the kill, posted: it
  /// gives every connection a new end callback, this one's included.
  void settle() {
    if (++s_.settled == s_.opt.connections && s_.on_all_settled)
      net::post(ioc_, s_.on_all_settled);
  }

  void end() {
    if (ended_)
      return;
    ended_ = true;
    conn_.reset(); // its end callback holds this client: no cycle left behind
    if (++s_.finished == s_.opt.connections)
      for (auto& f : s_.stoppers)
        f();
  }

  net::io_context& ioc_;
  shared_state& s_;
  int id_;
  std::string token_;
  std::shared_ptr<connection> conn_;
  bool waiting_for_kill_ = false;
  bool ended_ = false;
};

// -- main ----------------------------------------------------------------------

bool parse_url(const std::string& url, endpoint& ep) {
  const std::string scheme = "ws://";
  if (url.rfind(scheme, 0) != 0)
    return false;
  ep.url = url;
  auto rest = url.substr(scheme.size());
  auto slash = rest.find('/');
  auto hostport = rest.substr(0, slash);
  ep.target = slash == std::string::npos ? "/" : rest.substr(slash);
  auto colon = hostport.rfind(':');
  ep.host = hostport.substr(0, colon);
  if (ep.host != "127.0.0.1")
    return false;
  int port = colon == std::string::npos ? 80 : std::atoi(hostport.substr(colon + 1).c_str());
  if (port <= 0 || port > 65535)
    return false;
  ep.port = static_cast<uint16_t>(port);
  return ep.target.find('?') == std::string::npos;
}

void print_row(const char* name, series& s) {
  std::sort(s.ms.begin(), s.ms.end());
  std::printf("  %-14s n=%-7zu p50=%8.1f  p90=%8.1f  p99=%8.1f  max=%8.1f ms\n", name, s.ms.size(),
              s.pct(50), s.pct(90), s.pct(99), s.ms.empty() ? 0.0 : s.ms.back());
}

/// Counts, optionally latencies, finish reasons, errors and problems of one
/// kind of send.
void print_stats(stats& st, bool latencies, bool with_connect = true) {
  std::printf("  messages: expected %lld, sent %lld, completed ok %lld, missing %lld",
              static_cast<long long>(st.expected), static_cast<long long>(st.sent),
              static_cast<long long>(st.completed), static_cast<long long>(st.missing));
  if (st.resent_unavailable + st.resent_unacked > 0)
    std::printf(", resent: after `unavailable` %lld, unacked after --ack-timeout-ms %lld",
                static_cast<long long>(st.resent_unavailable),
                static_cast<long long>(st.resent_unacked));
  if (st.repeated_chunks > 0)
    std::printf(", repeated chunks dropped %lld", static_cast<long long>(st.repeated_chunks));
  if (st.replayed_replies > 0)
    std::printf(", replies replayed whole %lld", static_cast<long long>(st.replayed_replies));
  if (st.repeated_ends > 0)
    std::printf(", repeated reply ends dropped %lld", static_cast<long long>(st.repeated_ends));
  std::printf("\n");
  if (st.cuts + st.reconnects > 0)
    std::printf("  soak: cuts %lld (before the ack %lld), resumes %lld, resumed replies whole "
                "%lld, clean reconnects %lld, new conversations %lld, replayed messages "
                "verified %lld, lost %lld\n",
                static_cast<long long>(st.cuts), static_cast<long long>(st.cuts_before_ack),
                static_cast<long long>(st.resumes), static_cast<long long>(st.resumed_whole),
                static_cast<long long>(st.reconnects), static_cast<long long>(st.new_conversations),
                static_cast<long long>(st.replay_verified), static_cast<long long>(st.lost));
  if (latencies) {
    std::printf("  latency (ms):\n");
    if (with_connect)
      print_row("connect", st.connect);
    print_row("ack", st.ack);
    print_row("first chunk", st.first_chunk);
    print_row("chunk gap", st.inter_chunk);
    print_row("done", st.done);
  }
  std::printf("  finish reasons:");
  for (auto& kv : st.finish_reasons)
    std::printf(" %s=%lld", kv.first.c_str(), static_cast<long long>(kv.second));
  std::printf("\n  errors: connect failures %lld, connection errors %lld, timeouts %lld, "
              "error frames %lld, wrong frames %lld\n",
              static_cast<long long>(st.connect_failures), static_cast<long long>(st.conn_errors),
              static_cast<long long>(st.timeouts), static_cast<long long>(st.error_frames),
              static_cast<long long>(st.wrong));
  for (auto& kv : st.error_codes)
    std::printf("    error code %s: %lld\n", kv.first.c_str(), static_cast<long long>(kv.second));
  for (auto& p : st.samples)
    std::printf("    problem: %s\n", p.c_str());
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
    else if (a == "--create-url")
      o.create_url = val();
    else if (a == "--secret")
      o.secret = val();
    else if (a == "--connections")
      o.connections = ival(1, 5000);
    else if (a == "--messages")
      o.messages = ival(1, 100000);
    else if (a == "--users")
      o.users = ival(1, 1000000);
    else if (a == "--duration-limit")
      o.duration_limit_s = ival(1, 86400);
    else if (a == "--timeout-ms")
      o.timeout_ms = ival(1, 3600 * 1000);
    else if (a == "--connect-timeout-ms")
      o.connect_timeout_ms = ival(1, 600 * 1000);
    else if (a == "--failover-kill")
      o.kill_pid = static_cast<pid_t>(ival(2, 1 << 30));
    else if (a == "--resend-ms")
      o.resend_ms = ival(1, 60 * 1000);
    else if (a == "--ack-timeout-ms")
      o.ack_timeout_ms = ival(1, 600 * 1000);
    else if (a == "--content")
      o.content = val();
    else if (a == "--model")
      o.model = val();
    else if (a == "--verbose")
      o.verbose = true;
    else if (a == "--think-ms")
      o.think_ms = ival(0, 600 * 1000);
    else if (a == "--ramp-ms")
      o.ramp_ms = ival(0, 600 * 1000);
    else if (a == "--run-s")
      o.run_s = ival(0, 86400);
    else if (a == "--warmup-s")
      o.warmup_s = ival(0, 86400);
    else if (a == "--cut-permille")
      o.cut_permille = ival(0, 1000);
    else if (a == "--cut-window-ms")
      o.cut_window_ms = ival(0, 60 * 1000);
    else if (a == "--reconnect-every")
      o.reconnect_every = ival(0, 1000000);
    else if (a == "--new-conversation")
      o.new_conversation = true;
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
  if (!parse_url(o.url, s.url)
      || (!o.create_url.empty() && !parse_url(o.create_url, s.create_url))) {
    std::cerr << "--url and --create-url must be ws://127.0.0.1:PORT/PATH (only 127.0.0.1 is "
                 "allowed)\n";
    return 2;
  }
  s.run_id = "L" + random_hex(10);
  s.st.expected = static_cast<int64_t>(o.connections) * o.messages;
  if (!o.create_url.empty())
    s.setup.expected = o.connections;
  if (o.kill_pid != 0)
    s.failover.expected = o.connections;

  net::io_context ioc{1};
  auto now_s = std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
  std::vector<std::shared_ptr<client>> clients;
  clients.reserve(static_cast<size_t>(o.connections));
  for (int i = 0; i < o.connections; ++i)
    clients.push_back(std::make_shared<client>(ioc, s, i));

  net::steady_timer limit{ioc};
  bool limit_hit = false;
  s.stoppers.push_back([&] { limit.cancel(); });
  limit.expires_after(std::chrono::seconds{o.duration_limit_s});
  limit.async_wait([&](beast::error_code ec) {
    if (ec)
      return;
    limit_hit = true;
    s.stopping = true;
    for (auto& c : clients)
      c->stop();
  });

  // --failover-kill: once every client has its replies, kill the owner and
  // send into each conversation again.
  std::optional<clock_type::time_point> t_kill;
  if (o.kill_pid != 0)
    s.on_all_settled = [&] {
      if (s.stopping)
        return;
      if (s.ready == 0) { // nothing to measure: kill nobody
        s.failover.problem("no connection got its replies: pid " + std::to_string(o.kill_pid)
                           + " not killed");
        return;
      }
      t_kill = clock_type::now();
      if (::kill(o.kill_pid, SIGKILL) != 0) {
        s.failover.problem("kill " + std::to_string(o.kill_pid) + ": " + std::strerror(errno));
        s.failover.missing = s.failover.expected;
        for (auto& c : clients)
          c->stop();
        return;
      }
      for (auto& c : clients)
        c->probe(*t_kill);
    };

  std::printf("chat_load: %d connections x %d messages, %d users, %s, run %s\n", o.connections,
              o.messages, o.users, o.url.c_str(), s.run_id.c_str());
  if (!o.create_url.empty())
    std::printf("conversations created first over %s (one send each, not measured)\n",
                o.create_url.c_str());
  if (o.kill_pid != 0)
    std::printf("after the measured sends: SIGKILL pid %d, then one send per conversation\n",
                static_cast<int>(o.kill_pid));
  std::fflush(stdout);
  auto t0 = clock_type::now();
  s.t0 = t0;
  s.window_from = t0 + std::chrono::seconds{o.warmup_s};
  s.window_to = t0 + std::chrono::seconds{o.run_s};
  // --ramp-ms: client i starts i * ramp / N after the first.
  std::vector<std::unique_ptr<net::steady_timer>> ramp;
  for (int i = 0; i < o.connections; ++i) {
    auto token = chat::auth::make_token("load-" + std::to_string(i % o.users), o.secret, now_s,
                                        o.duration_limit_s + 600);
    auto& c = clients[static_cast<size_t>(i)];
    auto delay = static_cast<int64_t>(o.ramp_ms) * i / o.connections;
    if (delay == 0) {
      c->start(token);
      continue;
    }
    ramp.push_back(std::make_unique<net::steady_timer>(ioc, t0 + std::chrono::milliseconds{delay}));
    ramp.back()->async_wait([&s, c, token](beast::error_code ec) {
      if (!ec && !s.stopping)
        c->start(token);
    });
  }
  ioc.run();
  double secs = std::chrono::duration<double>(clock_type::now() - t0).count();

  auto& st = s.st;
  double measure_secs
      = s.measure_start && s.measure_end
            ? std::chrono::duration<double>(*s.measure_end - *s.measure_start).count()
            : secs;
  std::printf("elapsed %.2f s%s\n", secs, limit_hit ? " (duration limit reached)" : "");
  if (o.run_s > 0) // the messages are a cap: every send made must have its reply
    st.expected = st.sent;
  bool ok = st.ok();
  if (!o.create_url.empty()) {
    std::printf("conversation creation over --create-url (not measured):\n");
    print_stats(s.setup, false);
    ok = ok && s.setup.ok();
  }
  std::printf("measured sends over --url:\n");
  std::printf("  throughput: %.1f messages/s, %.1f chunks/s (over %.2f s)\n",
              st.completed / measure_secs, st.chunks / measure_secs, measure_secs);
  if (o.run_s > o.warmup_s)
    std::printf("  steady state: %.1f chunks/s (from %d s to %d s)\n",
                static_cast<double>(st.window_chunks) / (o.run_s - o.warmup_s), o.warmup_s,
                o.run_s);
  print_stats(st, true);
  if (o.kill_pid != 0) {
    if (t_kill)
      std::printf("after SIGKILL of pid %d: one send per conversation, latencies from the kill:\n",
                  static_cast<int>(o.kill_pid));
    else
      std::printf("--failover-kill %d: pid not killed, nothing sent:\n",
                  static_cast<int>(o.kill_pid));
    print_stats(s.failover, t_kill.has_value(), false);
    ok = ok && s.failover.ok();
  }
  std::printf("result: %s\n", ok ? "OK" : "FAILED");
  return ok ? 0 : 1;
}
