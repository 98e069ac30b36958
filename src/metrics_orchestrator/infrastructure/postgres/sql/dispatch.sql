-- Queries of the dispatcher (SPEC §5.4): claim queued runs, record publish outcomes.

-- name: claim_dispatchable
-- Locks the due queued runs of this batch; rows another dispatcher holds are skipped,
-- so replicas never publish the same run concurrently.
SELECT id,
       attempt,
       status,
       coalesce(request_payload ->> 'metricCode', '') AS metric_code,
       request_payload,
       dispatch_attempts
FROM metric_runs
WHERE status = 'queued'
  AND (not_before IS NULL OR not_before <= %(now)s)
ORDER BY coalesce(not_before, queued_at), created_at
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED

-- name: mark_dispatched
UPDATE metric_runs
SET status = 'dispatched',
    dispatched_at = %(now)s,
    dispatch_attempts = dispatch_attempts + 1,
    last_dispatch_error = NULL,
    updated_at = %(now)s
WHERE id = ANY(%(ids)s::uuid[])
  AND status = 'queued'

-- name: schedule_dispatch_retries
UPDATE metric_runs AS r
SET dispatch_attempts = r.dispatch_attempts + 1,
    last_dispatch_error = f.error,
    not_before = f.not_before,
    updated_at = %(now)s
FROM unnest(%(ids)s::uuid[], %(errors)s::text[], %(not_befores)s::timestamptz[])
     AS f(id, error, not_before)
WHERE r.id = f.id
  AND r.status = 'queued'

-- name: give_up_dispatch
UPDATE metric_runs AS r
SET status = 'failed',
    dispatch_attempts = r.dispatch_attempts + 1,
    last_dispatch_error = f.error,
    error = f.error,
    status_reason = 'dispatch_failed',
    completed_at = %(now)s,
    updated_at = %(now)s
FROM unnest(%(ids)s::uuid[], %(errors)s::text[]) AS f(id, error)
WHERE r.id = f.id
  AND r.status = 'queued'

-- name: notify_runs_queued
SELECT pg_notify('metric_run_queued', '')
