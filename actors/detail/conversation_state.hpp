#pragma once
/// The state of a conversation actor, shared by the files that implement it
/// (actors/conversation_*.cpp; the life of the actor and the seq rule are
/// described at the top of conversation_actor.cpp). Internal to actors/:
/// no other folder includes actors/detail/ (the `layering` test checks).

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_addr.hpp>
#include <caf/actor_clock.hpp>
#include <caf/atom.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>

#include "actors/client_link.hpp"
#include "actors/conversation_actor.hpp"
#include "actors/messages.hpp"

namespace chat::conversation_detail {

// Timers and retries the actor sends itself.
using retry_store_atom = caf::atom_constant<caf::atom("c_retry")>;
using checkpoint_tick_atom = caf::atom_constant<caf::atom("c_ckpt")>;
using check_seq_atom = caf::atom_constant<caf::atom("c_check")>;
using expire_sends_atom = caf::atom_constant<caf::atom("c_expire")>;
using retry_unstored_atom = caf::atom_constant<caf::atom("c_unstord")>;

/// The actor's own interface: the public one plus the timers above (and
/// idle_check_atom), which only it sends itself (delayed_send to self is
/// checked against this). The handles given out are the public
/// conversation_actor, a subset, so nobody else can send a timer.
using conversation_self_actor = conversation_actor::extend<
    caf::reacts_to<retry_store_atom, std::string>,
    caf::reacts_to<checkpoint_tick_atom, std::string>, caf::reacts_to<check_seq_atom, uint64_t>,
    caf::reacts_to<expire_sends_atom>, caf::reacts_to<retry_unstored_atom, std::string>,
    caf::reacts_to<idle_check_atom>>;

/// A send waiting for its turn to be written.
struct pending_send {
  std::string user_id;
  std::string client_msg_id;
  std::string content;
  std::string model;
  std::string provider;
  session_events session;
  caf::typed_response_promise<append_result> promise;
  caf::actor_clock::time_point queued_at;
  int seq_retries = 0; // times the database said its seq was taken
};

/// A user message whose write we sent but whose outcome we did not see.
struct unknown_write {
  stored_message message;
  std::string provider;
};

/// A finished reply whose `done` went out but whose write still fails
/// transiently: retried in the background.
struct unstored_reply {
  stored_message message;
  int attempts = 0;
  bool in_flight = false;   // a write of it is out
  bool retry_armed = false; // its backoff timer is running (one at a time)
};

/// An acknowledged user message whose reply has not started yet.
struct queued_reply {
  std::string user_message_id;
  int64_t seq; // the reply's
  std::string model;
  std::string provider;
};

/// The reply being generated.
struct reply_state {
  std::string id;
  int64_t seq = 0;
  std::string reply_to;
  std::string model;
  std::vector<std::string> deltas; // kept to replay chunks to new subscribers
  /// Set once the AI pool answered; monitored. Typed as the pool is: an
  /// invoker takes what its pool takes (ai/invoker_pool.cpp).
  ai_actor invoker;
  bool cancel_requested = false;
  bool finishing = false; // done received, storing
  stored_message final_message;
  timestamp_ms created_at = 0; // when it started: the row's createdAt
  caf::actor_clock::time_point started;
  caf::actor_clock::time_point first_chunk_at; // set with the first chunk
  size_t checkpointed_chunks = 0;              // how many deltas the database has
  bool checkpoint_in_flight = false;
  int store_attempts = 0; // failed writes of the finished reply
  /// Started while its user message is still being written, so that the
  /// provider's time to first token overlaps the commit: until the message
  /// is acked nothing of the reply goes out and nothing is stored; if the
  /// message is not written, the reply is dropped unseen.
  bool awaiting_ack = false;
  std::optional<generation_outcome> early_outcome; // its end, if it came first
};

struct subscriber {
  session_events handle;
  /// Its connection, when its session is in this process: frames are
  /// written there directly (actors/local_links.hpp).
  client_link_ptr link;
  // While replaying, live events are not sent: the replay ends with the
  // current state (see finish_replay).
  bool replaying = false;
  uint64_t replay_token = 0; // identifies the current replay of this subscriber
  int64_t after_seq = 0;
  std::set<int64_t> replayed_recent; // seqs replayed that `context` may hold
  bool reply_replayed = false;       // the current reply went out whole
};

struct conversation_state {
  std::string id;
  std::string owner;
  conversation_config cfg;
  bool loaded = false;
  bool found = true;
  bool load_failed = false;
  bool is_new = false; // no row yet: written with the first message
  /// The fencing token: the epoch this actor claimed the conversation
  /// under (1 for one it creates). Every write carries it.
  int64_t epoch = 0;
  /// The conversation is another node's now: finish what is in flight,
  /// then stop (see hand_over).
  bool handing_over = false;
  int64_t next_seq = 1;
  /// next_seq agrees with the database; false after a failed write until
  /// a check says what the database holds.
  bool seq_known = true;
  bool check_in_flight = false;
  bool last_write_failed = false; // the last user message write failed
  /// A retry of the check is waiting out its backoff: the timer that
  /// counts is the one carrying `check_timer` (a send may cut the wait
  /// short, and the timer it replaced must then do nothing).
  bool check_armed = false;
  uint64_t check_timer = 0;
  std::chrono::milliseconds check_backoff{0};
  std::optional<unknown_write> unknown;
  std::deque<stored_message> context; // recent finished messages, seq order
  std::deque<pending_send> sends;
  bool write_in_flight = false;
  bool expiry_armed = false;
  std::map<std::string, unstored_reply> unstored; // by message id
  bool stopping = false;                          // drained: start no reply
  std::deque<queued_reply> replies;
  std::optional<reply_state> reply;
  std::map<caf::actor_addr, subscriber> subs;
  uint64_t next_replay_token = 1;
  bool idle_check_armed = false;
  caf::actor_clock::time_point last_activity;

  static inline const char* name = "conversation";
};

using conversation = conversation_self_actor::stateful_base<conversation_state>;

} // namespace chat::conversation_detail
