-- Fencing: one writer per conversation, decided by the database.
--
-- Whoever serves a conversation first claims it: owner_epoch goes up by one
-- and the claimer keeps the new value as its fencing token. Every write of
-- a message carries the token and is checked against owner_epoch in the same
-- statement (the row locked FOR SHARE, so a claim waits for writes under the
-- old token to commit, and writes wait for a claim): two nodes that both
-- believe they own a conversation (membership views disagree for a moment,
-- or a paused node resumes) can never both write it. The claim also closes
-- as `interrupted` every reply still in progress: nobody else can finish it.
ALTER TABLE conversations ADD COLUMN owner_epoch bigint NOT NULL DEFAULT 0;

-- Liveness by heartbeat as well as by lock: a process that is paused (or
-- whose host froze) keeps its connection, and so its lock, but stops beating:
-- the others count it out after CHAT_CLUSTER_SUSPECT_TIMEOUT.
ALTER TABLE chat_processes ADD COLUMN heartbeat_at timestamptz NOT NULL DEFAULT now();
