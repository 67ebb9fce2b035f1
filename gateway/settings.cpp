#include "gateway/settings.hpp"

#include <algorithm>
#include <cstdlib>

namespace chat::gateway {

const std::vector<setting_spec>& setting_specs() {
  static const std::vector<setting_spec> specs{
      {"CHAT_LISTEN", "listen", "127.0.0.1:8080", "HTTP/WebSocket address"},
      {"DATABASE_URL", "database-url", nullptr, "PostgreSQL connection URI"},
      {"CHAT_JWT_SECRET", "jwt-secret", nullptr, "HS256 secret, at least 32 bytes"},
      {"CHAT_MODELS", "models", "gpt-4o-mini",
       "comma-separated name or name=provider (openai|anthropic); first is the default"},
      {"OPENAI_BASE_URL", "openai-base-url", "https://api.openai.com/v1",
       "OpenAI-compatible provider"},
      {"OPENAI_API_KEY", "openai-api-key", "", "its API key"},
      {"ANTHROPIC_BASE_URL", "anthropic-base-url", "https://api.anthropic.com",
       "Anthropic provider"},
      {"ANTHROPIC_API_KEY", "anthropic-api-key", "", "its API key"},
      {"CHAT_THREADS", "threads", "", "worker threads (actors and I/O); default: cores"},
      {"CHAT_IO_THREADS", "io-threads", "", "WebSocket I/O threads; default: CHAT_THREADS"},
      {"CHAT_ACTOR_THREADS", "actor-threads", "", "actor scheduler threads; default: CHAT_THREADS"},
      {"CHAT_AI_INVOKERS", "ai-invokers", "",
       "provider stream threads (curl multi); default: CHAT_THREADS"},
      {"CHAT_USER_SENDS_PER_MIN", "user-sends-per-min", "120",
       "sends per user per minute before rate_limited; 0: off"},
      {"CHAT_LOG_LEVEL", "log-level", "info", "debug, info, warn, error"},
      {"CHAT_NODE_ID", "node-id", "", "this node's name; default: host name"},
      {"CHAT_CLUSTER_LISTEN", "cluster-listen", "", "address for other nodes; off: single node"},
      {"CHAT_CLUSTER_PEERS", "cluster-peers", "", "comma-separated host:port of other nodes"},
      {"CHAT_CLUSTER_TLS_CERT", "cluster-tls-cert", "",
       "PEM: this node's certificate; with _KEY and _CA the cluster port is mutual TLS only"},
      {"CHAT_CLUSTER_TLS_KEY", "cluster-tls-key", "", "PEM: this node's private key"},
      {"CHAT_CLUSTER_TLS_CA", "cluster-tls-ca", "", "PEM: the CA that signs every node's"},
      {"CHAT_CLUSTER_SUSPECT_TIMEOUT", "cluster-suspect-timeout", "5",
       "seconds a member may stop beating (paused, cut off) before the others count it out"},
      {"CHAT_DRAIN_TIMEOUT", "drain-timeout", "30",
       "seconds replies may take to finish at shutdown"},
      {"CHAT_STORE_TIMEOUT", "store-timeout", "15",
       "seconds a conversation waits for the database before a write's outcome is unknown"},
      {"CHAT_CONVERSATION_TIMEOUT", "conversation-timeout", "60",
       "seconds a connection waits for its conversation's answer (an ack comes after the commit) "
       "before the client gets unavailable; directory look-ups wait at most 10 of them"},
      {"CHAT_DB_CONNECT_TIMEOUT", "db-connect-timeout", "5", "seconds to connect to PostgreSQL"},
      {"CHAT_DB_STATEMENT_TIMEOUT", "db-statement-timeout", "10",
       "seconds any SQL statement may run (e.g. behind a lock) before it is cancelled"},
      {"CHAT_PROVIDER_CONNECT_TIMEOUT", "provider-connect-timeout", "10",
       "seconds to connect to a provider (fractions allowed)"},
      {"CHAT_PROVIDER_FIRST_TOKEN_TIMEOUT", "provider-first-token-timeout", "60",
       "seconds from a request to its first token"},
      {"CHAT_PROVIDER_IDLE_TIMEOUT", "provider-idle-timeout", "60",
       "longest silence between tokens, seconds (keep-alives do not count)"},
      {"CHAT_PROVIDER_REPLY_TIMEOUT", "provider-reply-timeout", "600",
       "longest whole reply, seconds"},
      {"CHAT_PROVIDER_RETRIES", "provider-retries", "3",
       "retries of a request that failed before its first token"},
      {"CHAT_PROVIDER_RETRY_BASE_MS", "provider-retry-base-ms", "500",
       "backoff base in ms (retry k waits up to base*2^(k-1)); for tests"},
      {"CHAT_PROVIDER_MAX_STREAMS", "provider-max-streams", "1000",
       "streams in flight per provider; as many more may queue"},
      {"CHAT_CONTEXT_BYTES", "context-bytes", "65536",
       "most bytes of history sent with a message (newest first)"},
      {"CHAT_IDLE_TIMEOUT", "idle-timeout", "60",
       "seconds without any frame before closing with 1001"},
      {"CHAT_MAX_FRAME_BYTES", "max-frame-bytes", "65536", "largest WebSocket message"},
      {"CHAT_MAX_CONTENT_BYTES", "max-content-bytes", "32768", "largest send.content"},
      {"CHAT_MAX_PENDING_BYTES", "max-pending-bytes", "4194304",
       "bytes queued for a slow client before closing it with 1013"},
      {"CHAT_FRAMES_PER_SEC", "frames-per-sec", "50",
       "frames of any type a WebSocket may send per second, sustained; 0: no limit"},
      {"CHAT_FRAME_BURST", "frame-burst", "200",
       "frames a WebSocket may send at once; past the budget: rate_limited, close 1008"},
      {"CHAT_MAX_CONNECTIONS", "max-connections", "",
       "open HTTP and WebSocket connections before 503; default: 90 % of the open-files limit"},
      {"CHAT_REQUEST_TIMEOUT", "request-timeout", "10",
       "seconds a client may take to send a whole HTTP request (the upgrade included)"},
      {"CHAT_CLOSE_TIMEOUT", "close-timeout", "10",
       "seconds a WebSocket client has to answer our close frame before the socket is closed"},
      {"CHAT_ALLOWED_ORIGINS", "allowed-origins", "",
       "comma-separated origins a browser may open the WebSocket from; default: the page's own; *: "
       "any"},
      {"CHAT_MAX_CONNECTIONS_PER_USER", "max-connections-per-user", "32",
       "open WebSocket connections per user before the upgrade gets 429"},
  };
  return specs;
}

settings settings::load(const std::vector<std::string>& args, std::vector<std::string>& rest) {
  settings s;
  for (auto& spec : setting_specs()) {
    if (auto v = std::getenv(spec.env); v != nullptr && *v != '\0')
      s.values_[spec.env] = v;
    else if (spec.fallback != nullptr)
      s.values_[spec.env] = spec.fallback;
  }
  for (size_t i = 0; i < args.size(); ++i) {
    auto& a = args[i];
    bool matched = false;
    if (a.rfind("--", 0) == 0) {
      auto eq = a.find('=');
      auto name = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
      for (auto& spec : setting_specs()) {
        if (name != spec.flag)
          continue;
        if (eq != std::string::npos) {
          s.values_[spec.env] = a.substr(eq + 1);
          matched = true;
        } else if (i + 1 < args.size()) {
          s.values_[spec.env] = args[++i];
          matched = true;
        }
        break;
      }
    }
    if (!matched)
      rest.push_back(a);
  }
  return s;
}

const std::string& settings::get(const std::string& env) const {
  static const std::string none;
  auto i = values_.find(env);
  return i == values_.end() ? none : i->second;
}

bool settings::has(const std::string& env) const {
  auto i = values_.find(env);
  return i != values_.end() && !i->second.empty();
}

std::string usage() {
  std::string out = "usage: chatd [flags]                 serve until SIGTERM/SIGINT, then drain\n"
                    "       chatd migrate [flags]         apply database migrations and exit\n"
                    "       chatd token --user U [--ttl SECONDS] [flags]\n"
                    "                                     print a JWT for user U\n"
                    "       chatd --help | --version\n\n"
                    "Settings (environment variable, or the flag, which overrides it):\n";
  for (auto& s : setting_specs()) {
    std::string line = "  --" + std::string{s.flag} + " / " + s.env;
    line.resize(std::max<size_t>(line.size() + 2, 48), ' ');
    out += line + s.help;
    if (s.fallback == nullptr)
      out += " (required)";
    else if (*s.fallback != '\0')
      out += " [" + std::string{s.fallback} + "]";
    out += '\n';
  }
  return out;
}

} // namespace chat::gateway
