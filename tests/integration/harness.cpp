#include "tests/integration/harness.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <doctest/doctest.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "common/ids.hpp"
#include "gateway/jwt.hpp"
#include "tests/integration/leak_watch.hpp"

namespace chat::test {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace websocket = boost::beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;

// -- process --------------------------------------------------------------------

process::process(const std::string& program, const std::vector<std::string>& args,
                 const std::map<std::string, std::string>& env) {
  char tmpl[] = "/tmp/chat-test-log-XXXXXX";
  int fd = mkstemp(tmpl);
  REQUIRE(fd >= 0);
  log_path_ = tmpl;
  pid_ = fork();
  REQUIRE(pid_ >= 0);
  if (pid_ == 0) {
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);
    for (auto& kv : env)
      setenv(kv.first.c_str(), kv.second.c_str(), 1);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(program.c_str()));
    for (auto& a : args)
      argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(program.c_str(), argv.data());
    _exit(127);
  }
  close(fd);
}

process::~process() {
  if (!exited_ && pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  check_sanitizers();
  unlink(log_path_.c_str());
}

void process::check_sanitizers() {
  // Sanitizer builds (deploy/sanitizers/env.sh): ASan, LeakSanitizer and
  // TSan write their reports to CHAT_SANITIZER_LOGS/report.<program>.<pid>;
  // UBSan (next to ASan) writes to stderr, which is this log.
  auto dir = std::getenv("CHAT_SANITIZER_LOGS");
  if (dir == nullptr || pid_ <= 0)
    return;
  auto suffix = "." + std::to_string(pid_);
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator{dir, ec}) {
    auto name = entry.path().filename().string();
    if (name.rfind("report.", 0) != 0 || name.size() <= suffix.size()
        || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    std::ifstream in{entry.path()};
    std::stringstream ss;
    ss << in.rdbuf();
    CHECK_MESSAGE(ss.str().empty(), "sanitizer report of pid " << pid_ << " ("
                                                               << entry.path().string() << "):\n"
                                                               << ss.str());
  }
  auto text = log();
  CHECK_MESSAGE(text.find(": runtime error: ") == std::string::npos,
                "UBSan report in the log of pid " << pid_ << ":\n"
                                                  << text);
}

std::string process::log() const {
  std::ifstream in{log_path_};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string process::wait_for_line(const std::string& needle, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    std::istringstream lines{log()};
    for (std::string line; std::getline(lines, line);)
      if (line.find(needle) != std::string::npos)
        return line;
    if (!exited_ && waitpid(pid_, nullptr, WNOHANG) == pid_) {
      exited_ = true;
      break;
    }
    std::this_thread::sleep_for(20ms);
  }
  FAIL("no line with '" << needle << "' in the log of pid " << pid_ << ":\n" << log());
  return {};
}

void process::signal(int sig) {
  if (!exited_)
    kill(pid_, sig);
}

int process::wait(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      return WIFEXITED(status) ? WEXITSTATUS(status) : -2;
    }
    std::this_thread::sleep_for(10ms);
  }
  return -1;
}

// -- service --------------------------------------------------------------------

std::string database_url() {
  auto url = std::getenv("CHAT_TEST_DATABASE_URL");
  REQUIRE_MESSAGE(url != nullptr, "CHAT_TEST_DATABASE_URL is not set (run through ctest)");
  return url;
}

std::string bin_dir() {
  auto dir = std::getenv("CHAT_BIN_DIR");
  return dir != nullptr ? dir : CHAT_BUILD_BIN_DIR;
}

std::chrono::milliseconds left_until(std::chrono::steady_clock::time_point deadline) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline
                                                               - std::chrono::steady_clock::now());
}

std::string unique_user() {
  auto id = "user-" + new_uuid().substr(0, 13);
  leak_watch::user(id);
  return id;
}

namespace {

uint16_t port_after(const std::string& line, const std::string& prefix) {
  auto pos = line.find(prefix);
  REQUIRE(pos != std::string::npos);
  pos += prefix.size();
  return static_cast<uint16_t>(std::stoi(line.substr(pos)));
}

} // namespace

service::service(options opts) : watch_from_(leak_watch::mark()) {
  secret = "test-secret-" + new_uuid() + "-0123456789";
  leak_watch::secret(secret);
  leak_watch::secret(openai_key);
  leak_watch::secret(anthropic_key);
  std::vector<std::string> mock_args{"--listen", "127.0.0.1:0",      "--ttft-ms",
                                     "5",        "--token-delay-ms", "2"};
  for (auto& a : opts.mock_args)
    mock_args.push_back(a);
  mock = std::make_unique<process>(bin_dir() + "/mock_llm", mock_args,
                                   std::map<std::string, std::string>{});
  mock_port = port_after(mock->wait_for_line("listening on"), "127.0.0.1:");
  chatd_env_ = {
      {"DATABASE_URL", database_url()},
      {"CHAT_JWT_SECRET", secret},
      {"CHAT_LISTEN", "127.0.0.1:0"},
      {"OPENAI_BASE_URL", "http://127.0.0.1:" + std::to_string(mock_port) + "/v1"},
      {"OPENAI_API_KEY", openai_key},
      // The mock speaks Anthropic's Messages API too.
      {"ANTHROPIC_BASE_URL", "http://127.0.0.1:" + std::to_string(mock_port)},
      {"ANTHROPIC_API_KEY", anthropic_key},
      {"CHAT_MODELS", "gpt-4o-mini,mock-2,claude-mock=anthropic"},
      {"CHAT_THREADS", "2"},
  };
  if (!opts.node_id.empty())
    chatd_env_["CHAT_NODE_ID"] = opts.node_id;
  for (auto& kv : opts.chatd_env)
    chatd_env_[kv.first] = kv.second;
  chatd_prefix_ = opts.chatd_prefix;
  start_chatd();
}

void service::start_chatd() {
  auto program = bin_dir() + "/chatd";
  std::vector<std::string> args;
  if (!chatd_prefix_.empty()) {
    args.assign(chatd_prefix_.begin() + 1, chatd_prefix_.end());
    args.push_back(program);
    program = chatd_prefix_.front();
  }
  chatd = std::make_unique<process>(program, args, chatd_env_);
  port = port_after(chatd->wait_for_line("\"event\":\"listening\""), "127.0.0.1:");
}

void service::restart_chatd(const std::map<std::string, std::string>& changed_env) {
  for (auto& kv : changed_env)
    chatd_env_[kv.first] = kv.second;
  restart_chatd();
}

service::~service() {
  check_for_leaks();
}

void service::check_for_leaks() {
  if (!chatd)
    return;
  // /metrics, if chatd still answers (a test may have killed it).
  try {
    net::io_context ioc;
    beast::tcp_stream stream{ioc};
    stream.expires_after(2s);
    stream.connect(tcp::endpoint{net::ip::make_address("127.0.0.1"), port});
    http::request<http::empty_body> req{http::verb::get, "/metrics", 11};
    req.set(http::field::host, "127.0.0.1");
    req.keep_alive(false);
    http::write(stream, req);
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(stream, buf, res);
    leak_watch::check("chatd's /metrics", res.body(), watch_from_, true);
  } catch (const std::exception&) {
  }
  leak_watch::check("chatd's log", chatd->log(), watch_from_);
}

void service::restart_chatd() {
  check_for_leaks();
  chatd.reset(); // SIGKILL unless it already exited
  start_chatd();
}

std::string service::token(const std::string& user, int64_t ttl) const {
  auto now = std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  auto t = auth::make_token(user, secret, now, ttl);
  leak_watch::secret(t);
  return t;
}

std::string service::ws_path(const std::string& user) const {
  return "/api/v1/chat/ws?token=" + token(user);
}

// -- ws_client -------------------------------------------------------------------

struct ws_client::impl {
  net::io_context ioc;
  websocket::stream<beast::tcp_stream> ws{ioc};
  beast::flat_buffer buffer;
  bool open = false;
  int close_code = 0;
  int receive_buffer = 0; // SO_RCVBUF before connect, 0: default

  // Runs one async operation to completion, or until the timeout closes
  // the socket (then the operation fails).
  template<class Start>
  beast::error_code run(Start start, std::chrono::milliseconds timeout) {
    beast::error_code result = net::error::would_block;
    beast::get_lowest_layer(ws).expires_after(timeout);
    start(result);
    ioc.restart();
    ioc.run();
    return result;
  }
};

ws_client::ws_client() : impl_(std::make_unique<impl>()) {}

ws_client::~ws_client() {
  if (impl_->open) {
    beast::error_code ec;
    beast::get_lowest_layer(impl_->ws).socket().close(ec);
  }
}

int ws_client::connect(uint16_t port, const std::string& path_and_query) {
  auto& ws = impl_->ws;
  tcp::endpoint ep{net::ip::make_address("127.0.0.1"), port};
  if (impl_->receive_buffer > 0) {
    auto& sock = beast::get_lowest_layer(ws).socket();
    sock.open(tcp::v4());
    sock.set_option(net::socket_base::receive_buffer_size{impl_->receive_buffer});
  }
  auto ec = impl_->run(
      [&](beast::error_code& out) {
        beast::get_lowest_layer(ws).async_connect(ep, [&](beast::error_code e) { out = e; });
      },
      5s);
  REQUIRE_MESSAGE(!ec, "connect: " << ec.message());
  websocket::response_type res;
  ec = impl_->run(
      [&](beast::error_code& out) {
        ws.async_handshake(res, "127.0.0.1:" + std::to_string(port), path_and_query,
                           [&](beast::error_code e) { out = e; });
      },
      5s);
  if (ec) {
    return static_cast<int>(res.result_int());
  }
  impl_->open = true;
  beast::get_lowest_layer(ws).expires_never();
  return 101;
}

void ws_client::send_text(const std::string& text) {
  auto& ws = impl_->ws;
  ws.text(true);
  auto ec = impl_->run(
      [&](beast::error_code& out) {
        ws.async_write(net::buffer(text), [&](beast::error_code e, size_t) { out = e; });
      },
      5s);
  REQUIRE_MESSAGE(!ec, "write: " << ec.message());
}

void ws_client::send_binary(const std::string& bytes) {
  auto& ws = impl_->ws;
  ws.binary(true);
  auto ec = impl_->run(
      [&](beast::error_code& out) {
        ws.async_write(net::buffer(bytes), [&](beast::error_code e, size_t) { out = e; });
      },
      5s);
  REQUIRE_MESSAGE(!ec, "write: " << ec.message());
}

std::optional<std::string> ws_client::read(std::chrono::milliseconds timeout) {
  auto& ws = impl_->ws;
  if (!impl_->open)
    return std::nullopt;
  impl_->buffer.clear();
  auto ec = impl_->run(
      [&](beast::error_code& out) {
        ws.async_read(impl_->buffer, [&](beast::error_code e, size_t) { out = e; });
      },
      timeout);
  if (ec) {
    if (ec == websocket::error::closed)
      impl_->close_code = ws.reason().code;
    impl_->open = false;
    return std::nullopt;
  }
  auto text = beast::buffers_to_string(impl_->buffer.data());
  if (text.find(R"("type":"error")") != std::string::npos)
    leak_watch::check("an error frame", text);
  return text;
}

rapidjson::Document ws_client::read_json(std::chrono::milliseconds timeout) {
  auto text = read(timeout);
  REQUIRE_MESSAGE(text.has_value(), "no frame within the timeout");
  return parse(*text);
}

rapidjson::Document ws_client::read_until(const std::string& type,
                                          std::vector<std::string>* skipped,
                                          std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = left_until(deadline);
    REQUIRE_MESSAGE(left.count() > 0, "no '" << type << "' frame in time");
    auto text = read(left);
    REQUIRE_MESSAGE(text.has_value(), "connection ended before a '" << type << "' frame");
    auto d = parse(*text);
    if (str(d, "type") == type)
      return d;
    if (skipped)
      skipped->push_back(*text);
  }
}

int ws_client::close_code() const {
  return impl_->close_code;
}

bool ws_client::is_open() const {
  return impl_->open;
}

void ws_client::set_receive_buffer(int bytes) {
  impl_->receive_buffer = bytes;
}

void ws_client::cut() {
  beast::error_code ec;
  beast::get_lowest_layer(impl_->ws).socket().close(ec);
  impl_->open = false;
}

// -- http -------------------------------------------------------------------------

std::string raw_exchange(uint16_t port, const std::string& request) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  size_t sent = 0;
  while (sent < request.size()) {
    auto n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0)
      break; // the server may answer and close before taking it all
    sent += static_cast<size_t>(n);
  }
  std::string out;
  char buf[4096];
  for (;;) {
    auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0)
      break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

http_response http_request(uint16_t port, const std::string& method, const std::string& target,
                           const std::string& token) {
  net::io_context ioc;
  beast::tcp_stream stream{ioc};
  stream.expires_after(10s);
  stream.connect(tcp::endpoint{net::ip::make_address("127.0.0.1"), port});
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, "127.0.0.1");
  if (!token.empty())
    req.set(http::field::authorization, "Bearer " + token);
  req.keep_alive(false);
  http::write(stream, req);
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(stream, buf, res);
  if (res.result_int() >= 400)
    leak_watch::check("an HTTP " + std::to_string(res.result_int()) + " body", res.body());
  return {static_cast<int>(res.result_int()), res.body()};
}

// -- frames -----------------------------------------------------------------------

std::string send_frame(const std::string& client_msg_id, const std::string& content,
                       const std::string& conversation_id) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w{sb};
  w.StartObject();
  w.Key("type");
  w.String("send");
  w.Key("clientMsgId");
  w.String(client_msg_id.c_str());
  if (!conversation_id.empty()) {
    w.Key("conversationId");
    w.String(conversation_id.c_str());
  }
  w.Key("content");
  w.String(content.c_str(), static_cast<rapidjson::SizeType>(content.size()));
  leak_watch::content(content);
  w.EndObject();
  return sb.GetString();
}

std::string subscribe_frame(const std::string& conv, int64_t after_seq) {
  return R"({"type":"subscribe","conversationId":")" + conv + R"(","afterSeq":)"
         + std::to_string(after_seq) + "}";
}

std::string cancel_frame(const std::string& conv, const std::string& message_id) {
  return R"({"type":"cancel","conversationId":")" + conv + R"(","messageId":")" + message_id
         + R"("})";
}

rapidjson::Document parse(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str());
  REQUIRE_MESSAGE(!d.HasParseError(), "not JSON: " << text);
  return d;
}

// -- replies ----------------------------------------------------------------------

std::string assembled::content() const {
  if (whole_message)
    return message_content;
  std::string out;
  for (auto& kv : chunks)
    out += kv.second;
  return out;
}

bool assembled::complete() const {
  if (whole_message)
    return true;
  if (dones != 1 || done_chunks < 0 || static_cast<int64_t>(chunks.size()) != done_chunks)
    return false;
  int64_t i = 0;
  for (auto& kv : chunks)
    if (kv.first != i++)
      return false;
  return true;
}

bool assembled::feed(const std::string& text) {
  auto f = parse(text);
  auto type = str(f, "type");
  if (type == "chunk" && (reply_to.empty() || str(f, "replyTo") == reply_to)) {
    message_id = str(f, "messageId");
    reply_to = str(f, "replyTo");
    seq = num(f, "seq");
    auto idx = num(f, "index");
    CHECK(idx >= 0);
    CHECK_FALSE(str(f, "delta").empty());
    auto next = static_cast<int64_t>(chunks.size());
    if (!chunks.emplace(idx, str(f, "delta")).second)
      ++duplicates;
    else if (idx != next)
      ++out_of_order;
    return false;
  }
  if (type == "done" && (reply_to.empty() || str(f, "replyTo") == reply_to)) {
    ++dones;
    message_id = str(f, "messageId");
    reply_to = str(f, "replyTo");
    seq = num(f, "seq");
    done_chunks = num(f, "chunks");
    finish_reason = str(f, "finishReason");
    return true;
  }
  if (type == "message" && str(f, "role") == "assistant" && !reply_to.empty()
      && str(f, "replyTo") == reply_to) {
    whole_message = true;
    message_id = str(f, "messageId");
    seq = num(f, "seq");
    message_content = str(f, "content");
    finish_reason = str(f, "finishReason");
    return true;
  }
  if (type == "error")
    errors.push_back(str(f, "code"));
  other.push_back(text);
  return false;
}

assembled read_reply_of(ws_client& ws, const std::string& reply_to,
                        std::chrono::milliseconds timeout, assembled start) {
  assembled r = std::move(start);
  if (!reply_to.empty())
    r.reply_to = reply_to;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = left_until(deadline);
    REQUIRE_MESSAGE(left.count() > 0, "the reply did not end in time");
    auto text = ws.read(left);
    REQUIRE_MESSAGE(text.has_value(),
                    "connection ended before the reply did (close code " << ws.close_code() << ")");
    if (r.feed(*text))
      return r;
  }
}

assembled read_chunks(ws_client& ws, const std::string& reply_to, size_t n) {
  assembled r;
  r.reply_to = reply_to;
  while (r.chunks.size() < n) {
    auto f = ws.read(10s);
    REQUIRE(f.has_value());
    REQUIRE_FALSE(r.feed(*f));
  }
  return r;
}

std::vector<std::string> frames_before_pong(ws_client& ws, int nonce,
                                            std::chrono::milliseconds timeout) {
  ws.send_text(R"({"type":"ping","nonce":)" + std::to_string(nonce) + "}");
  std::vector<std::string> before;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = left_until(deadline);
    REQUIRE_MESSAGE(left.count() > 0, "no pong in time");
    auto text = ws.read(left);
    REQUIRE_MESSAGE(text.has_value(), "connection ended before the pong");
    auto f = parse(*text);
    if (str(f, "type") == "pong" && f.HasMember("nonce") && f["nonce"].IsInt()
        && f["nonce"].GetInt() == nonce)
      return before;
    before.push_back(*text);
  }
}

// -- database -------------------------------------------------------------------

int64_t check_history_whole(const std::string& conversation_id) {
  auto rows = db_query("SELECT seq, role, id::text, coalesce(reply_to::text, ''), "
                       "finish_reason IS NOT NULL FROM messages WHERE conversation_id = $1 "
                       "ORDER BY seq",
                       conversation_id);
  int64_t expected = 1;
  std::string last_user_id;
  for (const auto& r : rows) {
    auto seq = r[0].as<int64_t>();
    auto role = r[1].as<std::string>();
    CHECK_MESSAGE(seq == expected, "history of " << conversation_id << ": seq " << seq << " where "
                                                 << expected << " belongs");
    bool user_turn = expected % 2 == 1;
    CHECK_MESSAGE(role == (user_turn ? "user" : "assistant"),
                  "history of " << conversation_id << ": seq " << seq << " is " << role);
    if (role == "user") {
      last_user_id = r[2].as<std::string>();
    } else {
      CHECK_MESSAGE(r[4].as<bool>(), "history of " << conversation_id << ": reply at seq " << seq
                                                   << " never finished");
      CHECK_MESSAGE(r[3].as<std::string>() == last_user_id,
                    "history of " << conversation_id << ": reply at seq " << seq
                                  << " does not answer the message before it");
    }
    expected = seq + 1;
  }
  return static_cast<int64_t>(rows.size());
}

// -- mock LLM ---------------------------------------------------------------------

int64_t mock_stat(const service& svc, const char* key) {
  auto r = http_request(svc.mock_port, "GET", "/stats");
  REQUIRE(r.status == 200);
  return num(parse(r.body), key);
}

int64_t wait_mock_stat(const service& svc, const char* key, int64_t want,
                       std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto v = mock_stat(svc, key);
    if (v >= want || std::chrono::steady_clock::now() >= deadline)
      return v;
    std::this_thread::sleep_for(10ms);
  }
}

int64_t provider_replies(const service& svc, int64_t want, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto r = http_request(svc.mock_port, "GET", "/stats");
    REQUIRE(r.status == 200);
    auto stats = parse(r.body);
    auto v = num(stats, "requests") - num(stats, "aborted");
    if (v == want || std::chrono::steady_clock::now() >= deadline)
      return v;
    std::this_thread::sleep_for(10ms);
  }
}

// -- cluster ----------------------------------------------------------------------

/// A gauge's value from /metrics (-1 when absent).
int64_t gauge(uint16_t port, const std::string& name) {
  auto r = http_request(port, "GET", "/metrics");
  REQUIRE(r.status == 200);
  std::istringstream lines{r.body};
  for (std::string line; std::getline(lines, line);)
    if (line.rfind(name + " ", 0) == 0)
      return std::stoll(line.substr(name.size() + 1));
  return -1;
}

/// Waits until `node` counts `n` live nodes; returns how long it took, in
/// ms (fails the test after `timeout`).
int64_t wait_live_nodes(uint16_t port, int64_t n, std::chrono::milliseconds timeout) {
  auto t0 = std::chrono::steady_clock::now();
  auto deadline = t0 + timeout;
  int64_t seen = -1;
  while (std::chrono::steady_clock::now() < deadline) {
    seen = gauge(port, "chat_cluster_live_nodes");
    if (seen == n)
      return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now()
                                                                   - t0)
          .count();
    std::this_thread::sleep_for(50ms);
  }
  FAIL("the node on port " << port << " counts " << seen << " live nodes, not " << n);
  return -1;
}

// -- values -----------------------------------------------------------------------

std::string mock_reply(const std::string& text, int tokens) {
  std::vector<std::string> words;
  std::istringstream in{text};
  for (std::string w; in >> w;)
    words.push_back(w);
  std::string out = "Echo:";
  for (int i = 1; i < tokens; ++i)
    out += " "
           + (static_cast<size_t>(i - 1) < words.size() ? words[i - 1] : "w" + std::to_string(i));
  return out;
}

} // namespace chat::test
