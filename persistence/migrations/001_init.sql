-- Conversations and their messages.

CREATE TABLE conversations (
  id         uuid        PRIMARY KEY,
  user_id    text        NOT NULL,
  title      text        NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- A user's list, newest first, paged by (updated_at, id).
CREATE INDEX conversations_user_updated
  ON conversations (user_id, updated_at DESC, id DESC);

CREATE TABLE messages (
  conversation_id   uuid        NOT NULL
                    REFERENCES conversations ON DELETE CASCADE,
  seq               bigint      NOT NULL CHECK (seq > 0),
  id                uuid        NOT NULL UNIQUE,
  role              text        NOT NULL CHECK (role IN ('user', 'assistant')),
  content           text        NOT NULL,
  user_id           text        NOT NULL,
  client_msg_id     text,
  reply_to          uuid,
  model             text,
  finish_reason     text,
  prompt_tokens     int,
  completion_tokens int,
  created_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (conversation_id, seq),
  -- The idempotency key of a send (assistant messages have NULL: no clash).
  UNIQUE (user_id, client_msg_id)
);
