#pragma once
/// Every SQL statement of the store, prepared on each connection under
/// its name. Timestamps are timestamptz in SQL and ms since the epoch in C++.

namespace chat::persistence::sql {

struct statement {
  const char* name;
  const char* text;
};

// Hand-wrapped for reading the SQL.
// clang-format off

// ms since the epoch; the cast to bigint rounds, so a value we stored
// from ms comes back exactly.
#define CHAT_MS(col) "(extract(epoch from " col ") * 1000)::bigint"

// NULL (ms not given) means the transaction's now().
#define CHAT_TS_FROM_MS(param) \
  "coalesce(to_timestamp(" param "::float8 / 1000), now())"

// In ON CONFLICT (id) DO UPDATE: the existing row is a reply still being
// generated, at the same place (the same id elsewhere is never overwritten).
#define CHAT_SAME_IN_PROGRESS_REPLY                                          \
  "messages.role = 'assistant' AND messages.finish_reason IS NULL "         \
  "AND messages.conversation_id = excluded.conversation_id "                \
  "AND messages.seq = excluded.seq"

// A reply still being generated (checkpointed): never shown as a message.
#define CHAT_FINISHED "NOT (role = 'assistant' AND finish_reason IS NULL)"

// The fencing check (migrations/005_fencing.sql): one row when the writer's
// token `param` is still the conversation's epoch. FOR SHARE: a claim waits
// for this write to commit, or this write for the claim (and then sees the
// new epoch and writes nothing).
#define CHAT_FENCE(conv, param)                                              \
  "fence AS (SELECT 1 FROM conversations WHERE id = " conv                   \
  " AND owner_epoch = " param " FOR SHARE)"

#define CHAT_MESSAGE_COLUMNS                                                 \
  "id, conversation_id, seq, role, content, user_id, client_msg_id, "       \
  "reply_to, model, finish_reason, prompt_tokens, completion_tokens, "      \
  CHAT_MS("created_at")

// -- writes -------------------------------------------------------------------

/// ($1 id, $2 user_id, $3 title, $4 the creator's epoch) -> one row when
/// inserted; none when the conversation exists already (a retry of a first
/// message whose commit we could not confirm).
inline constexpr statement insert_conversation{
  "insert_conversation",
  "INSERT INTO conversations (id, user_id, title, owner_epoch) "
  "VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING RETURNING id"};

/// ($1 conversation) -> (owner_epoch): after a fenced write took nothing,
/// whether the fence refused it.
inline constexpr statement conversation_epoch{
  "conversation_epoch", "SELECT owner_epoch FROM conversations WHERE id = $1"};

/// ($1 conversation) -> (user_id, owner_epoch) when it exists: the caller
/// now owns it under the new epoch; writes under older ones are refused.
inline constexpr statement claim_conversation{
  "claim_conversation",
  "UPDATE conversations SET owner_epoch = owner_epoch + 1 WHERE id = $1 "
  "RETURNING user_id, owner_epoch"};

/// ($1 conversation, $2 seq, $3 id, $4 content, $5 user, $6 client_msg_id,
///  $7 created_at ms or NULL, $8 the model asked for or NULL, $9 epoch) ->
/// one row, or none when the epoch is not the conversation's (fenced) or a
/// unique key is taken: the user's clientMsgId (a repeat), the seq (another
/// message holds it: the caller's next seq was stale) or the id. The model
/// is kept so that a reply lost in a crash can be generated with it later.
inline constexpr statement insert_user_message{
  "insert_user_message",
  "WITH " CHAT_FENCE("$1::uuid", "$9::bigint") " "
  "INSERT INTO messages (conversation_id, seq, id, role, content, user_id, "
  "client_msg_id, created_at, model) "
  "SELECT $1::uuid, $2::bigint, $3::uuid, 'user', $4::text, $5::text, $6::text, "
  CHAT_TS_FROM_MS("$7") ", $8::text FROM fence "
  "ON CONFLICT DO NOTHING RETURNING id"};

/// ($1 user, $2 client_msg_id) -> (conversation_id, id, seq)
inline constexpr statement find_client_msg{
  "find_client_msg",
  "SELECT conversation_id, id, seq FROM messages "
  "WHERE user_id = $1 AND client_msg_id = $2"};

/// ($1 conversation) the conversation created for a send that turned out to
/// be a duplicate.
inline constexpr statement delete_conversation{
  "delete_conversation", "DELETE FROM conversations WHERE id = $1"};

/// ($1 conversation, $2 seq, $3 id, $4 content, $5 user or '' for the
///  owner, $6 reply_to, $7 model, $8 created_at ms or NULL, $9 process,
///  $10 epoch) -> one row (id) when inserted or updated; none when fenced,
/// or when the row with that id is not an in-progress reply at this
/// conversation and seq (see find_reply). Another message at this seq
/// raises a unique violation.
inline constexpr statement checkpoint_reply{
  "checkpoint_reply",
  "WITH " CHAT_FENCE("$1::uuid", "$10::bigint") " "
  "INSERT INTO messages (conversation_id, seq, id, role, content, user_id, "
  "reply_to, model, created_at, generating_process) "
  "SELECT $1::uuid, $2::bigint, $3::uuid, 'assistant', $4::text, "
  "coalesce(nullif($5::text, ''), "
  "         (SELECT user_id FROM conversations WHERE id = $1::uuid)), "
  "$6::uuid, $7::text, " CHAT_TS_FROM_MS("$8") ", $9::uuid FROM fence "
  "ON CONFLICT (id) DO UPDATE SET content = excluded.content, "
  "generating_process = excluded.generating_process "
  "WHERE " CHAT_SAME_IN_PROGRESS_REPLY " RETURNING id"};

/// ($1 conversation, $2 seq, $3 id, $4 content, $5 user or '' for the
///  owner, $6 reply_to, $7 model, $8 finish_reason, $9 prompt_tokens,
///  $10 completion_tokens, $11 created_at ms or NULL, $12 epoch) -> one row
/// (id) when inserted or when it completed the checkpointed row; none when
/// fenced, or when the row with that id is not an in-progress reply at this
/// conversation and seq. A completed checkpoint keeps its created_at (when
/// the reply began).
inline constexpr statement upsert_reply{
  "upsert_reply",
  "WITH " CHAT_FENCE("$1::uuid", "$12::bigint") " "
  "INSERT INTO messages (conversation_id, seq, id, role, content, user_id, "
  "reply_to, model, finish_reason, prompt_tokens, completion_tokens, "
  "created_at) "
  "SELECT $1::uuid, $2::bigint, $3::uuid, 'assistant', $4::text, "
  "coalesce(nullif($5::text, ''), "
  "         (SELECT user_id FROM conversations WHERE id = $1::uuid)), "
  "$6::uuid, $7::text, $8::text, $9::int, $10::int, " CHAT_TS_FROM_MS("$11") " FROM fence "
  "ON CONFLICT (id) DO UPDATE SET content = excluded.content, "
  "finish_reason = excluded.finish_reason, "
  "prompt_tokens = excluded.prompt_tokens, "
  "completion_tokens = excluded.completion_tokens, "
  "reply_to = coalesce(excluded.reply_to, messages.reply_to), "
  "model = coalesce(excluded.model, messages.model), "
  "generating_process = NULL, generating_node = NULL "
  "WHERE " CHAT_SAME_IN_PROGRESS_REPLY " RETURNING id"};

/// ($1 id) -> (conversation_id, seq, role, finish_reason, content): what
/// holds an id an upsert above did not take.
inline constexpr statement find_reply{
  "find_reply",
  "SELECT conversation_id, seq, role, finish_reason, content FROM messages "
  "WHERE id = $1"};

/// ($1 conversation, $2 message id or NULL) -> (max seq or 0, whether the
/// message is stored).
inline constexpr statement check_writes{
  "check_writes",
  "SELECT coalesce(max(seq), 0), "
  "coalesce(bool_or(id = $2::uuid), false) "
  "FROM messages WHERE conversation_id = $1"};

// -- process liveness ----------------------------------------------------------

// Every chatd process holds pg_advisory_lock(CHAT_LOCK_SPACE, its lock_key)
// on a connection of its own while it lives (persistence/liveness.cpp).
// PostgreSQL shows held advisory locks in pg_locks (classid = first key,
// objid = second key, objsubid = 2 for the two-int4 form), and drops them
// when the connection ends, however the process ended.
#define CHAT_LOCK_SPACE "1667785076" /* 'chat' */
#define CHAT_PROCESS_LIVE(col)                                               \
  "EXISTS (SELECT 1 FROM chat_processes p JOIN pg_locks l "                 \
  "ON l.locktype = 'advisory' AND l.granted "                               \
  "AND l.classid = " CHAT_LOCK_SPACE "::oid AND l.objid = p.lock_key::oid " \
  "AND l.objsubid = 2 AND l.database = "                                    \
  "(SELECT oid FROM pg_database WHERE datname = current_database()) "       \
  "WHERE p.id = " col ")"

/// ($1 process id, $2 node name) -> (lock_key)
inline constexpr statement register_process{
  "register_process",
  "INSERT INTO chat_processes (id, node) VALUES ($1, $2) RETURNING lock_key"};

/// ($1 lock_key): held until the connection closes.
inline constexpr statement lock_process{
  "lock_process", "SELECT pg_advisory_lock(" CHAT_LOCK_SPACE ", $1)"};

/// ($1 process id, $2 host:port for other nodes)
inline constexpr statement advertise_process{
  "advertise_process", "UPDATE chat_processes SET cluster_address = $2 WHERE id = $1"};

/// ($1 process id): it leaves the cluster (SIGTERM), before it goes.
inline constexpr statement leave_cluster{
  "leave_cluster", "UPDATE chat_processes SET left_at = now() WHERE id = $1"};

/// ($1 process id): it is alive and not paused (run every second by the
/// thread holding its lock).
inline constexpr statement heartbeat{
  "heartbeat", "UPDATE chat_processes SET heartbeat_at = now() WHERE id = $1"};

/// ($1 suspect timeout ms) -> (id, node, cluster_address) of the cluster's
/// live members, by id: holding their lock, not left, and beating (a paused
/// process keeps its lock but stops beating).
inline constexpr statement live_members{
  "live_members",
  "SELECT id::text, node, cluster_address FROM chat_processes "
  "WHERE cluster_address IS NOT NULL AND left_at IS NULL AND "
  "heartbeat_at > now() - $1::bigint * interval '1 millisecond' AND "
  CHAT_PROCESS_LIVE("chat_processes.id") " ORDER BY id"};

/// ($1 process id, $2 its usage as jsonb: {"user": [connections, sends]})
inline constexpr statement report_usage{
  "report_usage", "UPDATE chat_processes SET usage = $2::jsonb WHERE id = $1"};

/// ($1 own process id, $2 suspect timeout ms) -> (user, connections, sends)
/// summed over the other live members' reports.
inline constexpr statement usage_elsewhere{
  "usage_elsewhere",
  "SELECT u.key, sum((u.value->>0)::bigint), sum((u.value->>1)::bigint) "
  "FROM chat_processes p, jsonb_each(p.usage) u "
  "WHERE p.id <> $1::uuid AND p.cluster_address IS NOT NULL AND p.left_at IS NULL AND "
  "p.heartbeat_at > now() - $2::bigint * interval '1 millisecond' AND "
  CHAT_PROCESS_LIVE("p.id") " GROUP BY u.key"};

/// () -> rows of processes that are gone and own nothing any more.
inline constexpr statement prune_processes{
  "prune_processes",
  "DELETE FROM chat_processes WHERE NOT " CHAT_PROCESS_LIVE("chat_processes.id") " "
  "AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.generating_process = "
  "chat_processes.id AND m.role = 'assistant' AND m.finish_reason IS NULL)"};

// A reply in progress whose process is gone (or that never named one:
// written before processes registered).
#define CHAT_ORPHANED_REPLY                                                  \
  "role = 'assistant' AND finish_reason IS NULL AND "                       \
  "(generating_process IS NULL OR NOT " CHAT_PROCESS_LIVE("generating_process") ")"

/// ($1 conversation) -> one row: after a claim, how many of its replies in
/// progress were closed `interrupted` (keeping what was checkpointed): their
/// writers are fenced off, nobody else can finish them. Bumps the
/// conversation's updated_at when any was.
inline constexpr statement recover_conversation{
  "recover_conversation",
  "WITH r AS (UPDATE messages SET finish_reason = 'interrupted', "
  "generating_process = NULL, generating_node = NULL "
  "WHERE conversation_id = $1 AND role = 'assistant' AND finish_reason IS NULL "
  "RETURNING seq), "
  "t AS (UPDATE conversations SET updated_at = now() "
  "WHERE id = $1 AND EXISTS (SELECT 1 FROM r)) "
  "SELECT count(*) FROM r"};

/// () -> one row: the same for every conversation (chatd start-up).
inline constexpr statement recover_interrupted{
  "recover_interrupted",
  "WITH r AS (UPDATE messages SET finish_reason = 'interrupted', "
  "generating_process = NULL, generating_node = NULL "
  "WHERE " CHAT_ORPHANED_REPLY " RETURNING conversation_id), "
  "t AS (UPDATE conversations SET updated_at = now() "
  "WHERE id IN (SELECT conversation_id FROM r)) "
  "SELECT count(*) FROM r"};


/// ($1 conversation)
inline constexpr statement touch_conversation{
  "touch_conversation",
  "UPDATE conversations SET updated_at = now() WHERE id = $1"};

/// ($1 conversation, $2 user) -> affected rows 0 or 1; messages cascade.
inline constexpr statement remove_conversation{
  "remove_conversation",
  "DELETE FROM conversations WHERE id = $1 AND user_id = $2"};

// -- reads --------------------------------------------------------------------

/// ($1 conversation) -> (user_id)
inline constexpr statement conversation_owner{
  "conversation_owner", "SELECT user_id FROM conversations WHERE id = $1"};

/// ($1 conversation) -> (max seq or 0); in-progress replies count.
inline constexpr statement last_seq{
  "last_seq",
  "SELECT coalesce(max(seq), 0) FROM messages WHERE conversation_id = $1"};

/// ($1 conversation, $2 how many) -> the newest finished messages, oldest
/// first.
inline constexpr statement recent_messages{
  "recent_messages",
  "SELECT * FROM (SELECT " CHAT_MESSAGE_COLUMNS " FROM messages "
  "WHERE conversation_id = $1 AND " CHAT_FINISHED " "
  "ORDER BY seq DESC LIMIT $2) AS m ORDER BY seq"};

/// ($1 conversation, $2 after_seq, $3 limit) -> finished messages in seq
/// order.
inline constexpr statement message_page{
  "message_page",
  "SELECT " CHAT_MESSAGE_COLUMNS " FROM messages "
  "WHERE conversation_id = $1 AND seq > $2 AND " CHAT_FINISHED " "
  "ORDER BY seq LIMIT $3"};

#define CHAT_CONVERSATION_COLUMNS                                            \
  "id, title, " CHAT_MS("created_at") ", " CHAT_MS("updated_at") ", "       \
  "(extract(epoch from updated_at) * 1000000)::bigint"

/// ($1 user, $2 limit) -> (id, title, created ms, updated ms, updated us)
inline constexpr statement first_conversations{
  "first_conversations",
  "SELECT " CHAT_CONVERSATION_COLUMNS " FROM conversations "
  "WHERE user_id = $1 ORDER BY updated_at DESC, id DESC LIMIT $2"};

/// ($1 user, $2 cursor updated_at us, $3 cursor id, $4 limit): the page after
/// the cursor. Microseconds, timestamptz's resolution, so that no two rows
/// compare equal to the cursor by rounding.
inline constexpr statement next_conversations{
  "next_conversations",
  "SELECT " CHAT_CONVERSATION_COLUMNS " FROM conversations "
  "WHERE user_id = $1 AND (updated_at, id) < "
  "(to_timestamp(0) + $2::bigint * interval '1 microsecond', $3::uuid) "
  "ORDER BY updated_at DESC, id DESC LIMIT $4"};

inline constexpr statement ping{"ping", "SELECT 1"};

// clang-format on

#undef CHAT_FENCE
#undef CHAT_ORPHANED_REPLY
#undef CHAT_PROCESS_LIVE
#undef CHAT_LOCK_SPACE
#undef CHAT_CONVERSATION_COLUMNS
#undef CHAT_MESSAGE_COLUMNS
#undef CHAT_FINISHED
#undef CHAT_SAME_IN_PROGRESS_REPLY
#undef CHAT_TS_FROM_MS
#undef CHAT_MS

/// Prepared on every connection the store opens.
inline constexpr statement all[] = {
    insert_conversation,
    insert_user_message,
    find_client_msg,
    delete_conversation,
    checkpoint_reply,
    upsert_reply,
    find_reply,
    check_writes,
    recover_conversation,
    claim_conversation,
    conversation_epoch,
    touch_conversation,
    remove_conversation,
    conversation_owner,
    last_seq,
    recent_messages,
    message_page,
    first_conversations,
    next_conversations,
    ping,
};

} // namespace chat::persistence::sql
