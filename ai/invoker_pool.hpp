#pragma once
/// The AI invoker pool: `invokers` invoker actors behind one chat::ai_actor
/// handle (actors/ai_actor.hpp has the messages). Each invoker owns one
/// curl_driver, i.e. one thread that streams many provider requests at once.
///
/// `generate` goes to the invokers in turn and is answered with the handle of
/// the invoker that owns the stream; `ai_cancel` sent to the pool handle
/// reaches every invoker, so it also works there. An invoker monitors each
/// sink and aborts the sink's streams when it goes down.

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
  std::chrono::milliseconds connect_timeout{10000};
  std::chrono::milliseconds first_token_timeout{60000}; // no first byte by then -> error
  std::chrono::milliseconds stall_timeout{30000}; // no bytes for this long mid-stream -> error
};

/// Spawns `invokers` invoker actors behind one handle implementing
/// chat::ai_actor (actors/ai_actor.hpp).
chat::ai_actor spawn_invoker_pool(caf::actor_system& sys, const pool_config& cfg);

} // namespace chat::ai
