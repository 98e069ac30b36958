-- Queries of the dispatcher (SPEC §5.4): claim queued runs, record publish outcomes.
-- Statuses are parameters taken from domain/model.py LIFECYCLE; writes report what they changed.

-- name: claim_dispatchable
-- Locks the due queued runs of this batch; rows another dispatcher holds are skipped, so
-- replicas never publish the same run concurrently. An ordered scan of
-- metric_runs_dispatchable that stops at the limit: its cost does not grow with the backlog.
SELECT id,
       attempt,
       status,
       request_payload,
       dispatch_attempts
FROM metric_runs
WHERE status = %(from)s
  AND completed_at IS NULL
  AND not_before <= %(now)s
ORDER BY not_before, created_at
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED

-- name: mark_dispatched
UPDATE metric_runs
SET status = %(to)s,
    dispatched_at = %(now)s,
    dispatch_attempts = dispatch_attempts + 1,
    last_dispatch_error = NULL,
    updated_at = %(now)s
WHERE id = ANY(%(ids)s::uuid[])
  AND status = %(from)s

-- name: schedule_dispatch_retries
-- Not a status change: the run stays queued, due again at the not_before the dispatcher chose.
UPDATE metric_runs AS r
SET dispatch_attempts = r.dispatch_attempts + 1,
    last_dispatch_error = f.error,
    not_before = f.not_before,
    updated_at = %(now)s
FROM unnest(%(ids)s::uuid[], %(errors)s::text[], %(not_befores)s::timestamptz[])
     AS f(id, error, not_before)
WHERE r.id = f.id
  AND r.status = %(from)s

-- name: give_up_dispatch
UPDATE metric_runs AS r
SET status = %(to)s,
    dispatch_attempts = r.dispatch_attempts + 1,
    last_dispatch_error = f.error,
    error = f.error,
    status_reason = %(reason)s,
    completed_at = %(now)s,
    updated_at = %(now)s
FROM unnest(%(ids)s::uuid[], %(errors)s::text[]) AS f(id, error)
WHERE r.id = f.id
  AND r.status = %(from)s
