// chatd: the chat service. See OPERATIONS.md for commands and settings.

#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/openssl/publish.hpp>
#include <caf/send.hpp>

#include "actors/directory_actor.hpp"
#include "actors/type_registry.hpp"
#include "ai/invoker_pool.hpp"
#include "actors/rate_limiter.hpp"
#include "common/cluster_usage.hpp"
#include "common/log.hpp"
#include "common/metrics.hpp"
#include "gateway/jwt.hpp"
#include "gateway/node_health.hpp"
#include "gateway/server.hpp"
#include "gateway/settings.hpp"
#include "persistence/membership.hpp"
#include "persistence/store.hpp"

// Built with AddressSanitizer (CHAT_SANITIZE=address): std::_Exit skips the
// exit-time leak check, so main runs it itself.
#if defined(__SANITIZE_ADDRESS__)
#define CHAT_LEAK_CHECK 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CHAT_LEAK_CHECK 1
#endif
#endif
#ifdef CHAT_LEAK_CHECK
#include <sanitizer/lsan_interface.h>
#endif

namespace {

using namespace chat;
using gateway::settings;

constexpr const char* version = "chatd 0.1.0";

/// Exit 2 with one line naming the bad setting (OPERATIONS.md).
[[noreturn]] void bad_setting(const std::string& what) {
  std::fprintf(stderr, "chatd: %s\n", what.c_str());
  std::exit(2);
}

int64_t int_setting(const settings& s, const char* env, int64_t min, int64_t max) {
  auto& v = s.get(env);
  try {
    size_t pos = 0;
    auto x = std::stoll(v, &pos);
    if (pos != v.size() || x < min || x > max)
      throw std::out_of_range{env};
    return x;
  } catch (const std::exception&) {
    bad_setting(std::string{env} + " must be a whole number in " + std::to_string(min) + ".."
                + std::to_string(max) + " (got '" + v + "')");
  }
}

/// A duration setting in seconds; fractions allowed ("0.5"), so that
/// tests can stage faults in seconds.
std::chrono::milliseconds seconds_setting(const settings& s, const char* env, double min,
                                          double max) {
  auto& v = s.get(env);
  try {
    size_t pos = 0;
    auto x = std::stod(v, &pos);
    if (pos != v.size() || !(x >= min && x <= max))
      throw std::out_of_range{env};
    return std::chrono::milliseconds{static_cast<int64_t>(x * 1000)};
  } catch (const std::exception&) {
    bad_setting(std::string{env} + " must be a number of seconds in " + std::to_string(min) + ".."
                + std::to_string(max) + " (got '" + v + "')");
  }
}

/// "a, b,,c" -> {"a", "b", "c"}: a comma-separated setting, blanks dropped.
std::vector<std::string> split_list(const std::string& v) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= v.size()) {
    auto end = v.find(',', start);
    if (end == std::string::npos)
      end = v.size();
    auto item = v.substr(start, end - start);
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty())
      out.push_back(item);
    start = end + 1;
  }
  return out;
}

const std::string& required(const settings& s, const char* env) {
  if (!s.has(env))
    bad_setting(std::string{env} + " is required");
  return s.get(env);
}

std::string jwt_secret(const settings& s) {
  auto& secret = required(s, "CHAT_JWT_SECRET");
  if (secret.size() < 32)
    bad_setting("CHAT_JWT_SECRET must be at least 32 bytes");
  return secret;
}

int64_t unix_now() {
  using namespace std::chrono;
  return duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
}

int cmd_token(const settings& s, const std::vector<std::string>& rest) {
  std::string user;
  int64_t ttl = 3600;
  for (size_t i = 1; i < rest.size(); ++i) {
    if (rest[i] == "--user" && i + 1 < rest.size())
      user = rest[++i];
    else if (rest[i].rfind("--user=", 0) == 0)
      user = rest[i].substr(7);
    else if (rest[i] == "--ttl" && i + 1 < rest.size())
      ttl = std::atoll(rest[++i].c_str());
    else if (rest[i].rfind("--ttl=", 0) == 0)
      ttl = std::atoll(rest[i].c_str() + 6);
    else
      bad_setting("token: unknown argument '" + rest[i] + "'");
  }
  if (user.empty() || user.size() > 128)
    bad_setting("token: --user U is required (1..128 characters)");
  if (ttl <= 0)
    bad_setting("token: --ttl must be a positive number of seconds");
  std::cout << auth::make_token(user, jwt_secret(s), unix_now(), ttl) << std::endl;
  return 0;
}

int cmd_migrate(const settings& s) {
  auto& url = required(s, "DATABASE_URL");
  try {
    auto n = persistence::migrate(url);
    log::info("migrations_applied", {{"count", n}});
    return 0;
  } catch (const std::exception& e) {
    log::error("migration_failed", {{"error", e.what()}});
    return 1;
  }
}

std::pair<std::string, uint16_t> split_host_port(const std::string& hp,
                                                 const char* env = "CHAT_LISTEN") {
  auto colon = hp.rfind(':');
  if (colon == std::string::npos || colon == 0)
    bad_setting(std::string{env} + " must be HOST:PORT (got '" + hp + "')");
  auto host = hp.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  try {
    auto port = std::stoul(hp.substr(colon + 1));
    if (port > 65535)
      throw std::out_of_range{"port"};
    return {host, static_cast<uint16_t>(port)};
  } catch (const std::exception&) {
    bad_setting(std::string{env} + " must be HOST:PORT (got '" + hp + "')");
  }
}

/// Raises the soft open-files limit to the hard one (each connection is a
/// descriptor) and returns the soft limit now in force.
int64_t raise_open_files_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0)
    return 1024;
  if (lim.rlim_cur < lim.rlim_max) {
    auto wanted = lim;
    wanted.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &wanted) == 0)
      lim = wanted;
  }
  // RLIM_INFINITY is not a number of descriptors; the kernel caps it anyway.
  return lim.rlim_cur == RLIM_INFINITY ? int64_t{1} << 20 : static_cast<int64_t>(lim.rlim_cur);
}

std::string host_name() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0)
    return "chatd";
  return buf;
}

int cmd_serve(const settings& s) {
  // Validate everything before starting anything.
  auto& db_url = required(s, "DATABASE_URL");
  auto secret = jwt_secret(s);
  auto models = std::make_shared<model_catalog>();
  std::string err;
  if (!model_catalog::parse(s.get("CHAT_MODELS"), *models, err))
    bad_setting(err);
  auto [host, port] = split_host_port(s.get("CHAT_LISTEN"));
  // A cluster node listens for other nodes (CAF's middleman) and is a
  // member of the cluster while it lives (persistence/membership.hpp).
  bool cluster = s.has("CHAT_CLUSTER_LISTEN");
  std::pair<std::string, uint16_t> cluster_listen;
  if (cluster)
    cluster_listen = split_host_port(s.get("CHAT_CLUSTER_LISTEN"), "CHAT_CLUSTER_LISTEN");
  // Mutual TLS between nodes: all three files, or none.
  bool cluster_tls = s.has("CHAT_CLUSTER_TLS_CERT") || s.has("CHAT_CLUSTER_TLS_KEY")
                     || s.has("CHAT_CLUSTER_TLS_CA");
  if (cluster_tls) {
    for (auto env : {"CHAT_CLUSTER_TLS_CERT", "CHAT_CLUSTER_TLS_KEY", "CHAT_CLUSTER_TLS_CA"}) {
      if (!s.has(env))
        bad_setting(std::string{env} + " is required with the other CHAT_CLUSTER_TLS_* settings");
      if (access(s.get(env).c_str(), R_OK) != 0)
        bad_setting(std::string{env} + " names no readable file (got '" + s.get(env) + "')");
    }
  }
  // A member that stops beating (paused, frozen, cut off) is out after
  // this long, in the membership table and on the cluster port alike.
  auto suspect_timeout = seconds_setting(s, "CHAT_CLUSTER_SUSPECT_TIMEOUT", 0.5, 3600);
  auto cores = std::max(1u, std::thread::hardware_concurrency());
  auto threads = s.has("CHAT_THREADS") ? int_setting(s, "CHAT_THREADS", 1, 256)
                                       : static_cast<int64_t>(cores);
  // Each kind of thread apart, for sizing them to the cores (bench/README.md,
  // "Token path and workload A"); each defaults to CHAT_THREADS.
  auto sized = [&](const char* env) { return s.has(env) ? int_setting(s, env, 1, 256) : threads; };
  auto io_threads_n = sized("CHAT_IO_THREADS");
  auto actor_threads = sized("CHAT_ACTOR_THREADS");
  auto invokers = sized("CHAT_AI_INVOKERS");
  auto sends_per_min = int_setting(s, "CHAT_USER_SENDS_PER_MIN", 0, 1000000);
  auto drain_timeout = std::chrono::seconds{int_setting(s, "CHAT_DRAIN_TIMEOUT", 0, 3600)};
  log::set_node(s.has("CHAT_NODE_ID") ? s.get("CHAT_NODE_ID") : host_name());

  gateway::gateway_config gw;
  gw.listen_host = host;
  gw.listen_port = port;
  gw.jwt_secret = secret;
  gw.idle_timeout = std::chrono::seconds{int_setting(s, "CHAT_IDLE_TIMEOUT", 1, 86400)};
  gw.max_frame_bytes = int_setting(s, "CHAT_MAX_FRAME_BYTES", 1024, 64 << 20);
  gw.max_content_bytes = int_setting(s, "CHAT_MAX_CONTENT_BYTES", 1, 64 << 20);
  gw.max_pending_bytes = int_setting(s, "CHAT_MAX_PENDING_BYTES", 4096, int64_t{1} << 32);
  gw.request_timeout = seconds_setting(s, "CHAT_REQUEST_TIMEOUT", 0.1, 3600);
  gw.close_timeout = seconds_setting(s, "CHAT_CLOSE_TIMEOUT", 0.1, 3600);
  gw.frames.per_sec = static_cast<double>(int_setting(s, "CHAT_FRAMES_PER_SEC", 0, 1000000));
  gw.frames.burst = static_cast<double>(int_setting(s, "CHAT_FRAME_BURST", 1, 1000000));
  for (auto& origin : split_list(s.get("CHAT_ALLOWED_ORIGINS")))
    gw.allowed_origins.push_back(origin);
  auto open_files = raise_open_files_limit();
  // The rest of the descriptors stay for the database, the providers and
  // the listener: the node refuses politely before accept() fails.
  gw.max_connections = s.has("CHAT_MAX_CONNECTIONS")
                           ? int_setting(s, "CHAT_MAX_CONNECTIONS", 1, 10000000)
                           : std::max<int64_t>(1, open_files * 9 / 10);
  gw.max_connections_per_user = int_setting(s, "CHAT_MAX_CONNECTIONS_PER_USER", 1, 1000000);
  log::info("open_files_limit",
            {{"limit", open_files},
             {"maxConnections", static_cast<int64_t>(gw.max_connections)},
             {"maxConnectionsPerUser", static_cast<int64_t>(gw.max_connections_per_user)}});

  // The AI pool's settings, checked before anything starts.
  ai::pool_config pc;
  pc.openai = {s.get("OPENAI_BASE_URL"), s.get("OPENAI_API_KEY")};
  pc.anthropic = {s.get("ANTHROPIC_BASE_URL"), s.get("ANTHROPIC_API_KEY")};
  pc.invokers = std::max<size_t>(1, static_cast<size_t>(invokers));
  pc.connect_timeout = seconds_setting(s, "CHAT_PROVIDER_CONNECT_TIMEOUT", 0.001, 3600);
  pc.first_token_timeout = seconds_setting(s, "CHAT_PROVIDER_FIRST_TOKEN_TIMEOUT", 0.001, 86400);
  pc.idle_timeout = seconds_setting(s, "CHAT_PROVIDER_IDLE_TIMEOUT", 0.001, 86400);
  pc.reply_timeout = seconds_setting(s, "CHAT_PROVIDER_REPLY_TIMEOUT", 0.001, 86400);
  pc.retries = static_cast<int>(int_setting(s, "CHAT_PROVIDER_RETRIES", 0, 10));
  pc.retry_base
      = std::chrono::milliseconds{int_setting(s, "CHAT_PROVIDER_RETRY_BASE_MS", 1, 60000)};
  pc.max_streams = static_cast<size_t>(int_setting(s, "CHAT_PROVIDER_MAX_STREAMS", 1, 1000000));
  pc.context_bytes = static_cast<size_t>(int_setting(s, "CHAT_CONTEXT_BYTES", 0, 64 << 20));

  auto node_id = s.has("CHAT_NODE_ID") ? s.get("CHAT_NODE_ID") : host_name();
  persistence::connection_options db_options;
  db_options.connect_timeout
      = std::chrono::seconds{int_setting(s, "CHAT_DB_CONNECT_TIMEOUT", 1, 600)};
  db_options.statement_timeout = seconds_setting(s, "CHAT_DB_STATEMENT_TIMEOUT", 0, 86400);
  auto store_timeout = seconds_setting(s, "CHAT_STORE_TIMEOUT", 0.1, 3600);
  try {
    persistence::migrate(db_url);
    // Replies left unfinished by processes that are gone (a crash of this
    // node under any name, or of another) are kept as "interrupted", with
    // what was checkpointed.
    persistence::recover_interrupted(db_url);
  } catch (const std::exception& e) {
    log::error("startup_failed", {{"error", e.what()}});
    return 1;
  }

  // CAF: the `sharing` scheduler measured 5x lower message latency than
  // work stealing on this hardware (TOOLCHAIN.md §2).
  caf::actor_system_config cfg;
  register_message_types(cfg);
  cfg.set("scheduler.policy", caf::atom("sharing"));
  cfg.set("scheduler.max-threads", static_cast<size_t>(actor_threads));
  cfg.set("logger.verbosity", caf::atom("quiet"));
  if (cluster) {
    cfg.load<caf::io::middleman>();
    // Heartbeats on every link between nodes: a peer silent for the
    // suspect timeout (paused, not dead: its sockets stay open) is
    // disconnected, so the actors of other nodes holding its conversations
    // see them go and follow them to their new owner.
    cfg.set("middleman.heartbeat-interval", caf::timespan{std::chrono::milliseconds{500}});
    cfg.set("middleman.connection-timeout", caf::timespan{suspect_timeout});
  }
  if (cluster && cluster_tls) {
    // CAF then requires a certificate signed by this CA on both sides of
    // every connection (SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT):
    // a peer without one is refused in the handshake, before any message.
    cfg.load<caf::openssl::manager>();
    cfg.openssl_certificate = s.get("CHAT_CLUSTER_TLS_CERT");
    cfg.openssl_key = s.get("CHAT_CLUSTER_TLS_KEY");
    cfg.openssl_cafile = s.get("CHAT_CLUSTER_TLS_CA");
  }
  caf::actor_system sys{cfg};
  // Idle conversations would keep the system alive for minutes at exit.
  sys.await_actors_before_shutdown(false);

  persistence_actor store;
  persistence::process_registration process;
  try {
    // This process's identity in the database: its in-progress replies are
    // recovered by others only once it is gone.
    process = persistence::register_process(db_url, node_id, db_options);
    persistence::store_config sc;
    sc.database_url = db_url;
    sc.connection = db_options;
    store = persistence::spawn_store(sys, sc);
  } catch (const std::exception& e) {
    log::error("startup_failed", {{"error", e.what()}});
    return 1;
  }
  auto ai_pool = ai::spawn_invoker_pool(sys, pc);

  conversation_config cc;
  cc.store = store;
  cc.ai = ai_pool;
  cc.process_id = process.process_id;
  cc.store_timeout = store_timeout;
  // The invoker ends a reply at the provider's reply timeout; this is the
  // conversation's last resort if that end never arrives.
  cc.reply_deadline = pc.reply_timeout + std::chrono::seconds{30};
  cc.models = models;
  auto directory = spawn_directory(sys, cc);

  // Nothing restarts these: if one dies, /healthz and /readyz fail so that
  // an orchestrator replaces the node.
  auto health = std::make_shared<gateway::node_health>();
  gateway::watch(caf::actor_cast<caf::strong_actor_ptr>(store), "store", health);
  gateway::watch(caf::actor_cast<caf::strong_actor_ptr>(directory), "directory", health);
  gateway::watch(caf::actor_cast<caf::strong_actor_ptr>(ai_pool), "ai_pool", health);

  gateway::gateway_services services;
  services.health = health;
  services.system = &sys;
  services.directory = directory;
  services.store = store;
  services.session.directory = directory;
  services.session.store = store;
  services.session.models = models;
  // Per-user limits hold cluster-wide: what the user holds on the other
  // members counts too (common/cluster_usage.hpp, with the error bound).
  auto usage_elsewhere = cluster ? std::make_shared<cluster_usage>() : nullptr;
  auto limiter = std::make_shared<rate_limiter>(static_cast<int>(sends_per_min), usage_elsewhere);
  services.session.limiter = limiter;
  services.limits = gateway::connection_limits::make(gw.max_connections,
                                                     gw.max_connections_per_user, usage_elsewhere);
  auto draining = std::make_shared<std::atomic<bool>>(false);
  services.session.draining = draining;
  services.session.conversation_timeout
      = seconds_setting(s, "CHAT_CONVERSATION_TIMEOUT", 0.1, 3600);
  services.session.directory_timeout
      = std::min(services.session.conversation_timeout, std::chrono::milliseconds{10000});

  // Membership. The table of processes is the membership table: every node
  // reads the same live set (held liveness locks), so the survivors agree
  // on who is gone within a poll. Peers are learned from it;
  // CHAT_CLUSTER_PEERS is not needed to join.
  std::shared_ptr<persistence::cluster_status> cluster_status;
  std::shared_ptr<persistence::membership_watch> membership;
  if (cluster) {
    auto& [chost, cport] = cluster_listen;
    auto published = cluster_tls ? caf::openssl::publish(caf::actor_cast<caf::actor>(directory),
                                                         cport, chost.c_str(), true)
                                 : sys.middleman().publish(caf::actor_cast<caf::actor>(directory),
                                                           cport, chost.c_str(), true);
    if (!published) {
      log::error("startup_failed",
                 {{"error", "cannot listen for other nodes on " + chost + ":"
                                + std::to_string(cport) + ": " + sys.render(published.error())}});
      return 1;
    }
    auto address = chost + ":" + std::to_string(*published);
    if (cluster_tls)
      log::info("cluster_port_tls", {{"address", address}, {"mutualTls", true}});
    else
      log::warn("cluster_port_unauthenticated",
                {{"address", address},
                 {"note", "no CHAT_CLUSTER_TLS_*: anyone who reaches this address can message "
                          "this node's actors; bind it to a private address"}});
    try {
      persistence::advertise(db_url, process, address, db_options);
    } catch (const std::exception& e) {
      log::error("startup_failed", {{"error", e.what()}});
      return 1;
    }
    if (s.has("CHAT_CLUSTER_PEERS"))
      log::info("cluster_peers", {{"peers", s.get("CHAT_CLUSTER_PEERS")},
                                  {"note", "members are learned from the database"}});
    cluster_status = std::make_shared<persistence::cluster_status>();
    // Placement follows each new view (the callback runs on the watch's
    // thread: it only sends a message).
    membership = persistence::watch_membership(
        db_url, process.process_id, std::chrono::milliseconds{1000}, suspect_timeout,
        cluster_status,
        [directory, self_id = process.process_id](const cluster_members& view) {
          caf::anon_send(directory, cluster_view_atom::value, view, self_id);
        },
        persistence::usage_exchange{[limits = services.limits, limiter] {
                                      auto usage = limits->connections_by_user();
                                      for (auto& [user, u] : limiter->recent_sends())
                                        usage[user].sends = u.sends;
                                      return usage;
                                    },
                                    usage_elsewhere},
        db_options);
    services.cluster_joined
        = std::shared_ptr<const std::atomic<bool>>(cluster_status, &cluster_status->joined);
  }

  boost::asio::io_context ioc{static_cast<int>(io_threads_n)};
  gateway::server srv{ioc, gw, services};
  uint16_t bound = 0;
  try {
    bound = srv.start();
  } catch (const std::exception& e) {
    log::error("startup_failed", {{"error", e.what()}});
    return 1;
  }
  log::info("listening", {{"address", host + ":" + std::to_string(bound)},
                          {"threads", threads},
                          {"ioThreads", io_threads_n},
                          {"actorThreads", actor_threads},
                          {"aiInvokers", invokers},
                          {"defaultModel", models->models.front().name}});

  // Graceful drain: stop accepting, /readyz 503, let replies finish (up to
  // the drain timeout), close sockets with 1001, exit 0.
  boost::asio::signal_set signals{ioc, SIGTERM, SIGINT};
  boost::asio::steady_timer drain_timer{ioc};
  auto drain_started = std::chrono::steady_clock::now();
  bool interrupted_sent = false;
  std::function<void()> poll_drain = [&] {
    auto active = metrics::global().replies_active.load();
    auto waited = std::chrono::steady_clock::now() - drain_started;
    if (active > 0 && waited >= drain_timeout && !interrupted_sent) {
      // Out of time: the replies still running are stored as they are,
      // "interrupted"; give those writes a few seconds to commit.
      interrupted_sent = true;
      log::warn("drain_timeout", {{"repliesActive", active}});
      caf::anon_send(directory, drain_atom::value);
    }
    if (active > 0 && waited < drain_timeout + std::chrono::seconds{5}) {
      drain_timer.expires_after(std::chrono::milliseconds{50});
      drain_timer.async_wait([&](boost::system::error_code) { poll_drain(); });
      return;
    }
    log::info("drain_done", {{"repliesUnfinished", active}});
    srv.close_all(1001);
    // Give close frames a moment to go out, then stop the I/O threads.
    drain_timer.expires_after(std::chrono::milliseconds{300});
    drain_timer.async_wait([&](boost::system::error_code) { ioc.stop(); });
  };
  signals.async_wait([&](boost::system::error_code ec, int sig) {
    if (ec)
      return;
    log::info("drain_started",
              {{"signal", sig}, {"repliesActive", metrics::global().replies_active.load()}});
    drain_started = std::chrono::steady_clock::now();
    draining->store(true);
    // The others stop counting this node before it goes.
    if (cluster)
      persistence::leave(process);
    srv.begin_drain();
    poll_drain();
  });

  // Test hook, not a setting: with CHAT_TEST_SIGUSR2_KILLS=store|directory|
  // ai_pool, SIGUSR2 kills that actor, so that tests can watch /healthz
  // fail as it would after a crash.
  boost::asio::signal_set test_kill{ioc};
  if (auto victim = std::getenv("CHAT_TEST_SIGUSR2_KILLS")) {
    std::map<std::string, caf::actor> actors{{"store", caf::actor_cast<caf::actor>(store)},
                                             {"directory", caf::actor_cast<caf::actor>(directory)},
                                             {"ai_pool", caf::actor_cast<caf::actor>(ai_pool)}};
    if (auto i = actors.find(victim); i != actors.end()) {
      test_kill.add(SIGUSR2);
      test_kill.async_wait([a = i->second](boost::system::error_code ec, int) {
        if (!ec)
          caf::anon_send_exit(a, caf::exit_reason::kill);
      });
    }
  }

  std::vector<std::thread> io_threads;
  for (int64_t i = 1; i < io_threads_n; ++i)
    io_threads.emplace_back([&] { ioc.run(); });
  ioc.run();
  for (auto& t : io_threads)
    t.join();

  health->stop_watching(); // what follows stops them on purpose
  caf::anon_send_exit(directory, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(ai_pool, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
  membership.reset();   // its thread ends; the process's lock goes with the process
  log::info("stopped"); // every log line is flushed as it is written
  // Exit without tearing the actor system down. What matters is in the
  // database and the sockets are closed; CAF 0.17's teardown, with actors
  // still holding proxies of actors on other nodes, could crash in their
  // destructors (seen on cluster nodes after SIGTERM), and nothing is
  // gained by running it.
#ifdef CHAT_LEAK_CHECK
  // Leaks found end the process here with ASan's exit code and a report.
  __lsan_do_leak_check();
#endif
  std::_Exit(0);
}

} // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args{argv + 1, argv + argc};
  std::vector<std::string> rest;
  auto s = settings::load(args, rest);
  log::level lvl;
  if (!log::parse_level(s.get("CHAT_LOG_LEVEL"), lvl))
    bad_setting("CHAT_LOG_LEVEL must be debug, info, warn or error");
  log::set_level(lvl);
  std::signal(SIGPIPE, SIG_IGN);
  if (!rest.empty() && (rest[0] == "--help" || rest[0] == "-h" || rest[0] == "help")) {
    std::cout << gateway::usage();
    return 0;
  }
  if (!rest.empty() && rest[0] == "--version") {
    std::cout << version << std::endl;
    return 0;
  }
  if (!rest.empty() && rest[0] == "migrate" && rest.size() == 1)
    return cmd_migrate(s);
  if (!rest.empty() && rest[0] == "token")
    return cmd_token(s, rest);
  if (!rest.empty())
    bad_setting("unknown argument '" + rest[0] + "' (see chatd --help)");
  return cmd_serve(s);
}
