// The cluster port with mutual TLS (CHAT_CLUSTER_TLS_*): nodes with
// certificates from the cluster's CA serve one conversation across nodes; a
// node whose certificate another CA signed is refused at the handshake;
// garbage on the port never crashes a node.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>

#include <doctest/doctest.h>

#include "common/ids.hpp"
#include "tests/integration/harness.hpp"

using namespace chat::test;

namespace {

/// A fresh CA in its own directory, with certificates for `names`.
std::string make_certs(const std::vector<std::string>& names) {
  auto dir = "/tmp/chat-test-certs-" + chat::new_uuid().substr(0, 8);
  std::string cmd = std::string{CHAT_SOURCE_DIR} + "/deploy/certs.sh " + dir;
  for (auto& n : names)
    cmd += " " + n + ",localhost,127.0.0.1";
  cmd += " 2>/dev/null";
  REQUIRE(std::system(cmd.c_str()) == 0);
  return dir;
}

service::options tls_node(const std::string& dir, const std::string& name,
                          const std::string& cluster_host = "127.0.0.1") {
  service::options opts;
  opts.chatd_env = {{"CHAT_CLUSTER_LISTEN", cluster_host + ":0"},
                    {"CHAT_CLUSTER_TLS_CERT", dir + "/" + name + ".pem"},
                    {"CHAT_CLUSTER_TLS_KEY", dir + "/" + name + "-key.pem"},
                    {"CHAT_CLUSTER_TLS_CA", dir + "/ca.pem"}};
  return opts;
}

/// The cluster port a node advertised (from its log).
uint16_t cluster_port(service& node) {
  auto line = node.chatd->wait_for_line("cluster_address_advertised");
  auto at = line.find("\"address\":\"127.0.0.1:");
  REQUIRE(at != std::string::npos);
  return static_cast<uint16_t>(std::stoi(line.substr(at + 21)));
}

/// What a shell command prints.
std::string output_of(const std::string& cmd) {
  std::string out;
  if (auto* p = ::popen(cmd.c_str(), "r")) {
    char buf[4096];
    while (auto n = std::fread(buf, 1, sizeof buf, p))
      out.append(buf, n);
    ::pclose(p);
  }
  return out;
}

/// Writes `bytes` of noise to 127.0.0.1:port and closes.
void send_garbage(uint16_t port, size_t bytes) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  std::mt19937 rng{7};
  std::string noise(bytes, '\0');
  for (auto& c : noise)
    c = static_cast<char>(rng());
  auto sent = ::send(fd, noise.data(), noise.size(), MSG_NOSIGNAL);
  (void)sent; // the node may close on us early: that is the point
  ::close(fd);
}

} // namespace

TEST_CASE("cluster tls: nodes with the cluster's certificates serve one conversation across "
          "nodes, a peer with another CA's or none is refused, garbage never crashes a node") {
  auto certs = make_certs({"node-a", "node-b"});
  auto rogue_certs = make_certs({"rogue"});
  service a{tls_node(certs, "node-a")};
  service b{tls_node(certs, "node-b")};
  CHECK(a.chatd->log().find("cluster_port_tls") != std::string::npos);
  CHECK(a.chatd->log().find("cluster_port_unauthenticated") == std::string::npos);
  wait_live_nodes(a.port, 2);
  wait_live_nodes(b.port, 2);
  std::this_thread::sleep_for(300ms);

  // Across nodes, over TLS.
  auto user = unique_user();
  ws_client on_a;
  REQUIRE(on_a.connect(a.port, a.ws_path(user)) == 101);
  on_a.send_text(send_frame("t-1", "over tls [[mock tokens=3]]"));
  auto ack = on_a.read_until("ack");
  auto conv = str(ack, "conversationId"); // owned by a
  CHECK(read_reply_of(on_a, str(ack, "messageId")).complete());
  ws_client on_b;
  REQUIRE(on_b.connect(b.port, b.ws_path(user)) == 101);
  on_b.send_text(send_frame("t-2", "from b [[mock tokens=3]]", conv));
  auto ack2 = on_b.read_until("ack");
  CHECK(num(ack2, "seq") == 3);
  CHECK(read_reply_of(on_b, str(ack2, "messageId")).complete());
  CHECK(read_reply_of(on_a, str(ack2, "messageId")).complete());

  // Garbage on a's cluster port: refused, a goes on.
  auto port_a = cluster_port(a);
  for (int i = 0; i < 5; ++i)
    send_garbage(port_a, 64 * 1024);
  CHECK(http_request(a.port, "GET", "/healthz").status == 200);

  // A peer whose certificate another CA signed, or that has none, is
  // refused in the handshake (TLS 1.2, so that the client sees the
  // server's alert during the handshake); a peer with the cluster's passes.
  auto handshake = [&](const std::string& cert_args) {
    return output_of("(sleep 1; echo) | timeout 10 openssl s_client -tls1_2 -connect 127.0.0.1:"
                     + std::to_string(port_a) + " -CAfile " + certs + "/ca.pem " + cert_args
                     + " 2>&1");
  };
  auto rogue
      = handshake("-cert " + rogue_certs + "/rogue.pem -key " + rogue_certs + "/rogue-key.pem");
  CHECK_MESSAGE(rogue.find("alert unknown ca") != std::string::npos, rogue);
  auto anonymous = handshake("");
  CHECK_MESSAGE(anonymous.find("alert handshake failure") != std::string::npos, anonymous);
  auto member = handshake("-cert " + certs + "/node-b.pem -key " + certs + "/node-b-key.pem");
  CHECK_MESSAGE(member.find("alert") == std::string::npos, member);
  CHECK(http_request(a.port, "GET", "/healthz").status == 200);

  // a and b still chat across nodes.
  on_b.send_text(send_frame("t-3", "still fine [[mock tokens=3]]", conv));
  auto ack3 = on_b.read_until("ack");
  CHECK(read_reply_of(on_b, str(ack3, "messageId")).complete());
  CHECK(http_request(a.port, "GET", "/healthz").status == 200);
  CHECK(check_history_whole(conv) == 6);
  std::system(("rm -rf " + certs + " " + rogue_certs).c_str());
}

TEST_CASE("cluster tls: three nodes on 127.0.0.2, .3 and .4: fan-out to every node, subscribe "
          "mid-reply from one, cancel from another") {
  auto certs = make_certs({"node-2", "node-3", "node-4"});
  service n2{tls_node(certs, "node-2", "127.0.0.2")};
  service n3{tls_node(certs, "node-3", "127.0.0.3")};
  service n4{tls_node(certs, "node-4", "127.0.0.4")};
  for (auto* n : {&n2, &n3, &n4})
    wait_live_nodes(n->port, 3);
  std::this_thread::sleep_for(300ms);
  INFO("node 2: " << n2.chatd->log());
  INFO("node 3: " << n3.chatd->log());
  INFO("node 4: " << n4.chatd->log());
  CHECK(n3.chatd->log().find("127.0.0.2:") != std::string::npos); // it learned node 2

  auto user = unique_user();
  ws_client on2;
  REQUIRE(on2.connect(n2.port, n2.ws_path(user)) == 101);
  on2.send_text(send_frame("f-1", "first [[mock tokens=3]]"));
  auto ack1 = on2.read_until("ack");
  auto conv = str(ack1, "conversationId"); // placed on node 2
  CHECK(read_reply_of(on2, str(ack1, "messageId")).complete());

  // Node 3 follows the conversation from the start.
  ws_client on3;
  REQUIRE(on3.connect(n3.port, n3.ws_path(user)) == 101);
  on3.send_text(subscribe_frame(conv, 0));
  CHECK(num(on3.read_until("message"), "seq") == 1);
  CHECK(num(on3.read_until("message"), "seq") == 2);

  // A slow reply; node 4 subscribes in the middle of it.
  on2.send_text(send_frame("f-2", "slow [[mock delay_ms=30 tokens=300]]", conv));
  auto ack2 = on2.read_until("ack");
  auto asked = str(ack2, "messageId");
  CHECK(str(on3.read_until("message"), "clientMsgId") == "f-2");
  auto so_far3 = read_chunks(on3, asked, 5);
  ws_client on4;
  REQUIRE(on4.connect(n4.port, n4.ws_path(user)) == 101);
  on4.send_text(subscribe_frame(conv, 2));
  CHECK(str(on4.read_until("message"), "clientMsgId") == "f-2");
  auto so_far4 = read_chunks(on4, asked, 10);

  // Node 3 cancels it; every node sees the same end.
  on3.send_text(cancel_frame(conv, so_far4.message_id));
  auto on_2 = read_reply_of(on2, asked);
  auto on_3 = read_reply_of(on3, asked, 30s, so_far3);
  auto on_4 = read_reply_of(on4, asked, 30s, so_far4);
  for (auto* r : {&on_2, &on_3, &on_4}) {
    CHECK(r->finish_reason == "cancelled");
    CHECK(r->complete());
    CHECK(r->duplicates == 0);
    CHECK(r->out_of_order == 0);
    CHECK(r->content() == on_2.content());
  }
  CHECK(on_2.done_chunks < 300);
  CHECK(check_history_whole(conv) == 4);
  CHECK(db_query1("SELECT finish_reason FROM messages WHERE conversation_id = $1 AND seq = 4", conv)[0]
            .as<std::string>()
        == "cancelled");
  // Only node 2 generated replies: the others reached it over TLS.
  CHECK(n3.chatd->log().find("reply_started") == std::string::npos);
  CHECK(n4.chatd->log().find("reply_started") == std::string::npos);
  std::system(("rm -rf " + certs).c_str());
}

TEST_CASE("cluster tls: an incomplete set of TLS settings stops chatd with one line naming it") {
  auto env = std::map<std::string, std::string>{{"DATABASE_URL", database_url()},
                                                {"CHAT_JWT_SECRET", std::string(40, 'x')},
                                                {"CHAT_LISTEN", "127.0.0.1:0"},
                                                {"CHAT_CLUSTER_LISTEN", "127.0.0.1:0"},
                                                {"CHAT_CLUSTER_TLS_CERT", "/etc/hostname"}};
  process chatd{bin_dir() + "/chatd", {}, env};
  CHECK(chatd.wait(10s) == 2);
  CHECK(chatd.log().find("CHAT_CLUSTER_TLS_KEY") != std::string::npos);
}
