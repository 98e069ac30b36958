DROP INDEX IF EXISTS metric_runs_retry_undecided;
DROP INDEX IF EXISTS metric_runs_awaiting_signal;
DROP INDEX IF EXISTS metric_runs_dispatchable;
CREATE INDEX metric_runs_dispatchable ON metric_runs (not_before, created_at)
    WHERE status = 'queued';
CREATE INDEX metric_runs_awaiting_start ON metric_runs (dispatched_at)
    WHERE status = 'dispatched';
CREATE INDEX metric_runs_awaiting_heartbeat ON metric_runs (last_heartbeat_at)
    WHERE status = 'running';
CREATE INDEX metric_runs_retry_due ON metric_runs (completed_at)
    WHERE status IN ('failed', 'timed_out');
ALTER TABLE datasets DROP COLUMN IF EXISTS freshest_update_id;
ALTER TABLE metric_runs DROP CONSTRAINT IF EXISTS metric_runs_queued_has_not_before;
ALTER TABLE metric_runs DROP COLUMN IF EXISTS retry_decided_at;
ALTER TABLE metric_runs DROP COLUMN IF EXISTS last_seen_at;
