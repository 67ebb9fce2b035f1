-- Checkpoints of replies being generated: an assistant row with
-- finish_reason NULL is "in progress" and names the node generating it, so
-- that node can mark what it left unfinished as 'interrupted' after a crash.
-- A finished reply has generating_node NULL.

ALTER TABLE messages ADD COLUMN generating_node text;

-- recover_interrupted: a node's in-progress replies (few rows at any time).
CREATE INDEX messages_in_progress
  ON messages (generating_node)
  WHERE finish_reason IS NULL AND role = 'assistant';
