-- Cluster-wide limits: each live member reports, once a tick, what each
-- user holds on it ({"user": [connections, sends in the last minute]});
-- every node checks its own counts plus the other live members' sums
-- (common/cluster_usage.hpp). One row per process, rewritten in place.
ALTER TABLE chat_processes ADD COLUMN usage jsonb NOT NULL DEFAULT '{}';
