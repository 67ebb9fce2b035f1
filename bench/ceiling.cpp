// chat_ceiling: the chat protocol's happy path and nothing else, on the same
// Beast/Asio stack as chatd: a WebSocket `send` gets its `ack` at once, then
// the reply's `chunk`s paced like the mock LLM (time to first token, delay
// per token) and its `done`. No auth, no database, no provider, no actors.
// Whatever chatd reaches is stated as a fraction of what this reaches on the
// same machine in the same run (bench/README.md): the distance to it is the
// cost of everything chatd does beyond moving bytes.
//
//   chat_ceiling [--listen 127.0.0.1:PORT] [--threads N] [--ttft-ms MS]
//                [--token-delay-ms MS] [--tokens N]
//
// Prints "listening PORT" once bound; runs until SIGINT or SIGTERM.

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <deque>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;

struct options {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  int threads = 2;
  std::chrono::milliseconds ttft{100};
  std::chrono::milliseconds token_delay{10};
  int tokens = 50;
};

std::atomic<uint64_t> next_id{1};

/// A unique id shaped like a UUID (clients may check the shape).
std::string new_id() {
  char buf[40];
  auto n = next_id.fetch_add(1);
  std::snprintf(buf, sizeof buf, "00000000-0000-4000-8000-%012llx",
                static_cast<unsigned long long>(n));
  return buf;
}

std::string json(const std::initializer_list<std::pair<const char*, std::string>>& strings,
                 const std::initializer_list<std::pair<const char*, int64_t>>& numbers,
                 const char* extra = nullptr) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w{sb};
  w.StartObject();
  for (auto& [k, v] : strings) {
    w.Key(k);
    w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
  }
  for (auto& [k, v] : numbers) {
    w.Key(k);
    w.Int64(v);
  }
  if (extra != nullptr) {
    w.Key("usage");
    w.StartObject();
    w.Key("promptTokens");
    w.Int64(1);
    w.Key("completionTokens");
    w.Int64(std::stoll(extra));
    w.EndObject();
  }
  w.EndObject();
  return sb.GetString();
}

/// One WebSocket connection: reads sends, writes acks and paced replies.
/// Everything of a connection runs on its strand; writes go one at a time
/// from a queue.
class session : public std::enable_shared_from_this<session> {
public:
  session(tcp::socket socket, const options& opt) : ws_(std::move(socket)), opt_(opt) {}

  void start() {
    beast::get_lowest_layer(ws_).socket().set_option(tcp::no_delay(true));
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.async_accept([self = shared_from_this()](beast::error_code ec) {
      if (!ec)
        self->read();
    });
  }

private:
  /// One reply being paced.
  struct reply {
    std::string conversation_id;
    std::string message_id;
    std::string reply_to;
    int64_t seq = 0;
    int index = 0;
    net::steady_timer timer;
    explicit reply(net::any_io_executor ex) : timer(std::move(ex)) {}
  };

  void read() {
    ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec)
        return; // closed: the replies' timers find the socket gone
      self->on_frame(beast::buffers_to_string(self->buffer_.data()));
      self->buffer_.consume(self->buffer_.size());
      self->read();
    });
  }

  void on_frame(const std::string& text) {
    rapidjson::Document d;
    d.Parse(text.c_str());
    if (d.HasParseError() || !d.IsObject() || !d.HasMember("type") || !d["type"].IsString()
        || std::string{d["type"].GetString()} != "send")
      return;
    auto client_msg_id = d.HasMember("clientMsgId") && d["clientMsgId"].IsString()
                             ? std::string{d["clientMsgId"].GetString()}
                             : std::string{};
    auto conv = d.HasMember("conversationId") && d["conversationId"].IsString()
                    ? std::string{d["conversationId"].GetString()}
                    : new_id();
    auto& next_seq = seqs_.try_emplace(conv, 1).first->second;
    auto seq = next_seq;
    next_seq += 2;
    auto message_id = new_id();
    write(json({{"type", "ack"},
                {"clientMsgId", client_msg_id},
                {"conversationId", conv},
                {"messageId", message_id}},
               {{"seq", seq}}));
    auto r = std::make_shared<reply>(ws_.get_executor());
    r->conversation_id = conv;
    r->message_id = new_id();
    r->reply_to = message_id;
    r->seq = seq + 1;
    r->timer.expires_after(opt_.ttft);
    r->timer.async_wait([self = shared_from_this(), r](beast::error_code ec) {
      if (!ec)
        self->tick(r);
    });
  }

  void tick(const std::shared_ptr<reply>& r) {
    if (r->index < opt_.tokens) {
      write(json({{"type", "chunk"},
                  {"conversationId", r->conversation_id},
                  {"messageId", r->message_id},
                  {"replyTo", r->reply_to},
                  {"delta", "tok" + std::to_string(r->index) + " "}},
                 {{"seq", r->seq}, {"index", r->index}}));
      ++r->index;
      r->timer.expires_after(opt_.token_delay);
      r->timer.async_wait([self = shared_from_this(), r](beast::error_code ec) {
        if (!ec)
          self->tick(r);
      });
      return;
    }
    write(json({{"type", "done"},
                {"conversationId", r->conversation_id},
                {"messageId", r->message_id},
                {"replyTo", r->reply_to},
                {"finishReason", "stop"}},
               {{"seq", r->seq}, {"chunks", r->index}}, std::to_string(r->index).c_str()));
  }

  void write(std::string frame) {
    queue_.push_back(std::move(frame));
    if (queue_.size() == 1)
      write_next();
  }

  void write_next() {
    ws_.text(true);
    ws_.async_write(net::buffer(queue_.front()),
                    [self = shared_from_this()](beast::error_code ec, size_t) {
                      if (ec)
                        return;
                      self->queue_.pop_front();
                      if (!self->queue_.empty())
                        self->write_next();
                    });
  }

  websocket::stream<beast::tcp_stream> ws_;
  const options& opt_;
  beast::flat_buffer buffer_;
  std::deque<std::string> queue_;
  std::unordered_map<std::string, int64_t> seqs_; // next seq per conversation
};

void accept(tcp::acceptor& acceptor, net::io_context& ioc, const options& opt) {
  acceptor.async_accept(net::make_strand(ioc), [&](beast::error_code ec, tcp::socket socket) {
    if (!ec)
      std::make_shared<session>(std::move(socket), opt)->start();
    if (acceptor.is_open())
      accept(acceptor, ioc, opt);
  });
}

int usage() {
  std::cerr << "usage: chat_ceiling [--listen 127.0.0.1:PORT] [--threads N] [--ttft-ms MS]\n"
               "                    [--token-delay-ms MS] [--tokens N]\n";
  return 2;
}

} // namespace

int main(int argc, char** argv) {
  options opt;
  try {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (i + 1 >= argc)
        return usage();
      std::string v = argv[++i];
      if (a == "--listen") {
        auto colon = v.rfind(':');
        if (colon == std::string::npos)
          return usage();
        opt.host = v.substr(0, colon);
        opt.port = static_cast<uint16_t>(std::stoul(v.substr(colon + 1)));
      } else if (a == "--threads") {
        opt.threads = std::max(1, std::stoi(v));
      } else if (a == "--ttft-ms") {
        opt.ttft = std::chrono::milliseconds{std::stoi(v)};
      } else if (a == "--token-delay-ms") {
        opt.token_delay = std::chrono::milliseconds{std::stoi(v)};
      } else if (a == "--tokens") {
        opt.tokens = std::max(1, std::stoi(v));
      } else {
        return usage();
      }
    }
  } catch (const std::exception&) {
    return usage();
  }
  net::io_context ioc{opt.threads};
  tcp::acceptor acceptor{ioc};
  tcp::endpoint ep{net::ip::make_address(opt.host), opt.port};
  acceptor.open(ep.protocol());
  acceptor.set_option(net::socket_base::reuse_address(true));
  acceptor.bind(ep);
  acceptor.listen(net::socket_base::max_listen_connections);
  std::cout << "listening " << acceptor.local_endpoint().port() << std::endl;
  accept(acceptor, ioc, opt);
  net::signal_set signals{ioc, SIGINT, SIGTERM};
  signals.async_wait([&](beast::error_code, int) { ioc.stop(); });
  std::vector<std::thread> threads;
  for (int i = 1; i < opt.threads; ++i)
    threads.emplace_back([&] { ioc.run(); });
  ioc.run();
  for (auto& t : threads)
    t.join();
  return 0;
}
