-- 004: attempt chains (SPEC §5.6) and a worker's "do not retry" (SPEC §4.2).
--
-- chain_root: the first attempt of the chain a run belongs to; NULL for a first attempt, which
-- is its own root (so intake and manual runs write nothing new). An attempt number is never
-- given twice in one chain: the unique index below makes a duplicate impossible, and it serves
-- the "latest attempt of this chain" lookup of a manual retry.
ALTER TABLE metric_runs ADD COLUMN chain_root uuid REFERENCES metric_runs (id);

-- Existing retries join the chain of the run they retry, top down. Before this migration a
-- manual retry of an older attempt could give one attempt number twice; of such siblings the
-- earliest stays in the chain, and each later one (with the retries that follow it) becomes
-- the root of a chain of its own, so that the index can be built without rewriting history.
WITH RECURSIVE chains AS (
    SELECT id, NULL::uuid AS chain_root, id AS effective_root
    FROM metric_runs
    WHERE retry_of IS NULL
    UNION ALL
    -- siblings of one attempt number in one chain are numbered in creation order
    SELECT r.id,
           CASE WHEN row_number() OVER siblings = 1 THEN c.effective_root END,
           CASE WHEN row_number() OVER siblings = 1 THEN c.effective_root ELSE r.id END
    FROM metric_runs AS r
    JOIN chains AS c ON r.retry_of = c.id
    WINDOW siblings AS (PARTITION BY c.effective_root ORDER BY r.created_at, r.id)
)
UPDATE metric_runs AS r
SET chain_root = chains.chain_root
FROM chains
WHERE r.id = chains.id AND chains.chain_root IS NOT NULL;

-- a first attempt roots its own chain
ALTER TABLE metric_runs ADD CONSTRAINT metric_runs_chain_root_of_retries
    CHECK (chain_root IS NULL OR retry_of IS NOT NULL);
CREATE UNIQUE INDEX metric_runs_one_attempt_per_chain
    ON metric_runs ((coalesce(chain_root, id)), attempt);

-- SPEC §4.2: a FAILURE the worker marks `retryable: false` gets no automatic retry (§5.6).
ALTER TABLE metric_runs ADD COLUMN retryable boolean NOT NULL DEFAULT true;
