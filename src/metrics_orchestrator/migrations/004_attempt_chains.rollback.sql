ALTER TABLE metric_runs DROP COLUMN IF EXISTS retryable;
DROP INDEX IF EXISTS metric_runs_one_attempt_per_chain;
ALTER TABLE metric_runs DROP CONSTRAINT IF EXISTS metric_runs_chain_root_of_retries;
ALTER TABLE metric_runs DROP COLUMN IF EXISTS chain_root;
