-- Facts the domain's rules need, so that SQL stores decisions instead of making them.

-- SPEC §4.2: liveness is judged by our clock. When we last received a started or heartbeat
-- event; the worker's own timestamps (started_at, last_heartbeat_at) stay as reported.
ALTER TABLE metric_runs ADD COLUMN last_seen_at timestamptz;
UPDATE metric_runs SET last_seen_at = updated_at WHERE status = 'running';

-- SPEC §5.6: the sweeper judges every ended run once (domain/retries.py decides) and records
-- that it did, so runs that get no retry are never read again.
ALTER TABLE metric_runs ADD COLUMN retry_decided_at timestamptz;
UPDATE metric_runs AS r SET retry_decided_at = r.completed_at
WHERE r.completed_at IS NOT NULL
  AND (r.status NOT IN ('failed', 'timed_out')
       OR r.completed_at < now() - interval '1 day'
       OR EXISTS (SELECT 1 FROM metric_runs AS c WHERE c.retry_of = r.id AND c.trigger = 'retry'));

-- SPEC §5.4: a queued run always has the time from which it may be dispatched, so the
-- dispatcher's claim is an ordered index scan whatever the backlog.
UPDATE metric_runs SET not_before = queued_at WHERE status = 'queued' AND not_before IS NULL;
ALTER TABLE metric_runs ADD CONSTRAINT metric_runs_queued_has_not_before
    CHECK (status <> 'queued' OR not_before IS NOT NULL);

-- SPEC §5.2: each dataset's freshest update, chosen by the domain (orchestration.freshest)
-- when an update is recorded, and stored here.
ALTER TABLE datasets ADD COLUMN freshest_update_id uuid REFERENCES dataset_updates (id);
UPDATE datasets AS d SET freshest_update_id = f.id
FROM (SELECT DISTINCT ON (dataset_id) dataset_id, id
      FROM dataset_updates
      ORDER BY dataset_id, effective_at DESC, received_at DESC, seq DESC) AS f
WHERE f.dataset_id = d.id;

-- The status literal of a partial index cannot match `status = %(from)s`: these indexes lead
-- with the status instead and cover only runs that have not ended.
DROP INDEX metric_runs_dispatchable;
DROP INDEX metric_runs_awaiting_start;
DROP INDEX metric_runs_awaiting_heartbeat;
DROP INDEX metric_runs_retry_due;
CREATE INDEX metric_runs_dispatchable ON metric_runs (status, not_before, created_at)
    WHERE completed_at IS NULL;
-- the sweeper's timeouts: the last sign of life we observed (SPEC §4.2, §5.5)
CREATE INDEX metric_runs_awaiting_signal
    ON metric_runs (status, (coalesce(last_seen_at, dispatched_at)))
    WHERE completed_at IS NULL;
CREATE INDEX metric_runs_retry_undecided ON metric_runs (status, completed_at)
    WHERE retry_decided_at IS NULL AND completed_at IS NOT NULL;
