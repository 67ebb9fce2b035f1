#pragma once
/// The AI invoker pool: `invokers` invoker actors behind one chat::ai_actor
/// handle (actors/ai_actor.hpp has the messages). Each invoker owns one
/// curl_driver, i.e. one thread that streams many provider requests at once.
///
/// `generate` goes to the invokers in turn and is answered at once with the
/// handle of the invoker that owns the stream; `ai_cancel` sent to the pool
/// handle reaches every invoker, so it also works there. An invoker monitors
/// each sink and aborts the sink's streams when it goes down.
///
/// Per provider (openai and anthropic apart, across all invokers) at most
/// `max_streams` streams are in flight; more wait in a queue of
/// `max_queued`, and past that a stream ends at once with error_code
/// "unavailable". A request that failed before its first token (429, 5xx,
/// connection error, cut) is retried `retries` times with full-jitter
/// backoff, honouring Retry-After, never past the reply deadline; the
/// curl driver holds a retry until its time (no blocking wait, no actor
/// timer) and a cancel ends that wait at once. See retry_policy.hpp.
///
///   generate ──> queued ──slot──> attempt ──failed before any token──┐
///                  │                 ^                                │
///                  │                 └──── backoff (driver's timer) ──┘
///                  v                 │
///          cancelled / unavailable   v
///                        stop / length / error / cancelled

#include <chrono>
#include <cstddef>
#include <string>

#include <caf/actor_system.hpp>

#include "actors/ai_actor.hpp"

namespace chat::ai {

struct provider_endpoint {
  std::string base_url;
  std::string api_key; // may be empty
};

struct pool_config {
  provider_endpoint openai;    // e.g. base_url "http://127.0.0.1:8090/v1"
  provider_endpoint anthropic; // e.g. base_url "https://api.anthropic.com" (no /v1)
  size_t invokers = 2;         // invoker actors in the pool
  /// CHAT_PROVIDER_CONNECT_TIMEOUT: to connect to a provider.
  std::chrono::milliseconds connect_timeout{10000};
  /// CHAT_PROVIDER_FIRST_TOKEN_TIMEOUT: from a request (each attempt) to its
  /// first content token.
  std::chrono::milliseconds first_token_timeout{60000};
  /// CHAT_PROVIDER_IDLE_TIMEOUT: the longest silence between content tokens
  /// (keep-alive comments, pings and other events do not count).
  std::chrono::milliseconds idle_timeout{60000};
  /// CHAT_PROVIDER_REPLY_TIMEOUT: the whole reply, retries included, from
  /// when it leaves the queue.
  std::chrono::milliseconds reply_timeout{600000};
  /// CHAT_PROVIDER_RETRIES: retries of a request that failed before its
  /// first token.
  int retries = 3;
  /// CHAT_PROVIDER_RETRY_BASE_MS: the backoff before retry k is uniform in
  /// [0, retry_base * 2^(k-1)] (at most 10 s), or Retry-After if longer.
  std::chrono::milliseconds retry_base{500};
  /// CHAT_PROVIDER_MAX_STREAMS: streams in flight per provider.
  size_t max_streams = 1000;
  /// Streams waiting for a slot, per provider; 0 means max_streams: a wait
  /// of about one reply's time at most, past which "unavailable" at once is
  /// kinder than a long wait, and memory stays bounded.
  size_t max_queued = 0;
  /// CHAT_CONTEXT_BYTES: most bytes of message content sent to a provider
  /// (newest first; the new message always goes whole).
  size_t context_bytes = 65536;
};

/// Spawns `invokers` invoker actors behind one handle implementing
/// chat::ai_actor (actors/ai_actor.hpp).
chat::ai_actor spawn_invoker_pool(caf::actor_system& sys, const pool_config& cfg);

} // namespace chat::ai
