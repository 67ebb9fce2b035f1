-- Cluster membership, Orleans-style: the table of processes is the
-- membership table. A node in a cluster publishes its address for other
-- nodes (CAF's middleman) here; it is a live member while it holds its
-- liveness lock (003) and has not left (SIGTERM: left_at is set first, so
-- the others stop placing work on it before it goes).

ALTER TABLE chat_processes ADD COLUMN cluster_address text;
ALTER TABLE chat_processes ADD COLUMN left_at timestamptz;
