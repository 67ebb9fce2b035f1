-- Recovery by ownership, not by host name. Every chatd process registers
-- here at start-up under a fresh id and holds a session-level advisory lock
-- on (lock space 'chat', lock_key) for as long as it lives: PostgreSQL drops
-- the lock the moment the process's connection goes (kill -9, crash, exit),
-- so "is the process that wrote this in-progress reply alive?" is answered
-- by pg_locks, whatever the process or its host was called.

CREATE TABLE chat_processes (
  id         uuid        PRIMARY KEY,
  node       text        NOT NULL,
  lock_key   integer     GENERATED ALWAYS AS IDENTITY UNIQUE,
  started_at timestamptz NOT NULL DEFAULT now()
);

-- The process generating an in-progress reply (finish_reason NULL). Rows
-- written before this migration have only generating_node: no live process
-- owns them, so they are recovered as interrupted.
ALTER TABLE messages ADD COLUMN generating_process uuid;

DROP INDEX messages_in_progress;
CREATE INDEX messages_in_progress
  ON messages (conversation_id)
  WHERE finish_reason IS NULL AND role = 'assistant';
