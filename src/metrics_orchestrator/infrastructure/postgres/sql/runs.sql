-- Run lifecycle (SPEC §5.5-§5.7): feedback, sweeper, cancel, retry and run read models.

-- name: lock_run
-- The metric code a worker must echo is the one its request carried.
SELECT r.id, r.status, coalesce(r.request_payload ->> 'metricCode', m.code) AS metric_code
FROM metric_runs AS r
JOIN metrics AS m ON m.id = r.metric_id
WHERE r.id = %(id)s
FOR UPDATE OF r

-- name: get_run
SELECT r.id, r.metric_id, r.status, r.trigger, r.attempt, r.created_at, r.retry_of,
       r.inputs_fingerprint, r.request_payload, r.not_before, r.progress, r.dispatch_attempts,
       r.status_reason, r.error, r.queued_at, r.dispatched_at, r.started_at,
       r.last_heartbeat_at, r.completed_at, r.version_ts, r.output_manifest, r.row_count,
       (SELECT jsonb_object_agg(l.dataset_id, l.update_id)
        FROM run_dataset_updates AS l WHERE l.run_id = r.id) AS lineage,
       m.code AS metric_code
FROM metric_runs AS r
JOIN metrics AS m ON m.id = r.metric_id
WHERE r.id = %(id)s

-- name: list_runs
-- Keyset pagination on (created_at DESC, id DESC), served by the metric_runs_by_* indexes.
SELECT r.id, r.metric_id, r.status, r.trigger, r.attempt, r.created_at, r.retry_of,
       r.inputs_fingerprint, r.request_payload, r.not_before, r.progress, r.dispatch_attempts,
       r.status_reason, r.error, r.queued_at, r.dispatched_at, r.started_at,
       r.last_heartbeat_at, r.completed_at, r.version_ts, r.output_manifest, r.row_count,
       (SELECT jsonb_object_agg(l.dataset_id, l.update_id)
        FROM run_dataset_updates AS l WHERE l.run_id = r.id) AS lineage,
       m.code AS metric_code
FROM metric_runs AS r
JOIN metrics AS m ON m.id = r.metric_id
WHERE (%(status)s::text IS NULL OR r.status = %(status)s::text)
  AND (%(metric_code)s::text IS NULL OR m.code = %(metric_code)s::text)
  AND (%(since)s::timestamptz IS NULL OR r.created_at >= %(since)s::timestamptz)
  AND (%(after_created_at)s::timestamptz IS NULL
       OR (r.created_at, r.id) < (%(after_created_at)s::timestamptz, %(after_id)s::uuid))
ORDER BY r.created_at DESC, r.id DESC
LIMIT %(limit)s

-- name: record_start
-- started_at is the earliest evidence that the worker was running.
UPDATE metric_runs
SET status = %(status)s,
    started_at = least(started_at, %(started_at)s::timestamptz),
    updated_at = %(now)s
WHERE id = %(id)s

-- name: record_heartbeat
-- last_heartbeat_at never moves backwards; progress is taken from the newest heartbeat only.
UPDATE metric_runs
SET status = %(status)s,
    started_at = least(started_at, %(ts)s::timestamptz),
    progress = CASE
                   WHEN %(progress)s::double precision IS NOT NULL
                        AND (last_heartbeat_at IS NULL OR %(ts)s::timestamptz >= last_heartbeat_at)
                   THEN %(progress)s::double precision
                   ELSE progress
               END,
    last_heartbeat_at = greatest(last_heartbeat_at, %(ts)s::timestamptz),
    updated_at = %(now)s
WHERE id = %(id)s

-- name: record_completion
UPDATE metric_runs
SET status = %(status)s::text,
    completed_at = %(completed_at)s,
    version_ts = %(version_ts)s,
    output_manifest = %(output_manifest)s,
    row_count = %(row_count)s,
    error = %(error)s,
    status_reason = %(status_reason)s,
    progress = CASE WHEN %(status)s::text = 'succeeded' THEN 1 ELSE progress END,
    updated_at = %(now)s
WHERE id = %(id)s

-- name: cancel_run
UPDATE metric_runs
SET status = 'canceled',
    status_reason = %(reason)s,
    completed_at = %(now)s,
    updated_at = %(now)s
WHERE id = %(id)s

-- name: create_manual_retry
-- A manual re-run: same inputs and lineage, next attempt, a fresh request identity.
WITH created AS (
    INSERT INTO metric_runs (id, metric_id, status, trigger, attempt, retry_of,
                             inputs_fingerprint, request_payload, created_at, queued_at,
                             updated_at)
    SELECT %(new_id)s::uuid, r.metric_id, 'queued', 'manual', r.attempt + 1, r.id,
           r.inputs_fingerprint,
           r.request_payload || jsonb_build_object('runId', %(new_id)s::text,
                                                   'attempt', r.attempt + 1,
                                                   'requestedAt', %(requested_at)s::text),
           %(now)s, %(now)s, %(now)s
    FROM metric_runs AS r
    WHERE r.id = %(id)s
    RETURNING id, retry_of
),
copied_lineage AS (
    INSERT INTO run_dataset_updates (run_id, dataset_id, update_id)
    SELECT c.id, l.dataset_id, l.update_id
    FROM created AS c
    JOIN run_dataset_updates AS l ON l.run_id = c.retry_of
)
SELECT id FROM created

-- name: time_out_unstarted
-- Rows another transaction holds (a feedback event in flight, another sweeper) are skipped.
WITH due AS (
    SELECT id
    FROM metric_runs
    WHERE status = 'dispatched'
      AND coalesce(dispatched_at, updated_at) < %(cutoff)s
    ORDER BY dispatched_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE metric_runs AS r
SET status = 'timed_out',
    status_reason = 'start_timeout',
    error = %(error)s,
    completed_at = %(now)s,
    updated_at = %(now)s
FROM due
WHERE r.id = due.id
  AND r.status = 'dispatched'
RETURNING r.id, r.metric_id, r.status_reason

-- name: time_out_silent
-- Like time_out_unstarted, for running runs silent since their last sign of life. Not merged:
-- status, clock, order and reason all differ, and each literal status matches a partial index.
WITH due AS (
    SELECT id
    FROM metric_runs
    WHERE status = 'running'
      AND coalesce(last_heartbeat_at, started_at, dispatched_at, updated_at) < %(cutoff)s
    ORDER BY last_heartbeat_at NULLS FIRST
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE metric_runs AS r
SET status = 'timed_out',
    status_reason = 'heartbeat_timeout',
    error = %(error)s,
    completed_at = %(now)s,
    updated_at = %(now)s
FROM due
WHERE r.id = due.id
  AND r.status = 'running'
RETURNING r.id, r.metric_id, r.status_reason

-- name: schedule_retries
-- SPEC §5.6, set-based: each failed/timed_out run below its metric's max_attempts that ended
-- within the window and has no automatic retry yet gets one, queued with exponential backoff.
-- Old runs are locked SKIP LOCKED so concurrent sweepers split them; the
-- metric_runs_one_retry_per_run index makes a second retry impossible even so.
WITH due AS (
    SELECT gen_random_uuid() AS id,
           r.id AS retry_of,
           r.metric_id,
           r.attempt + 1 AS attempt,
           r.inputs_fingerprint,
           r.request_payload,
           %(now)s::timestamptz
               + %(base_delay)s::interval
                 * power(2, least(r.attempt - 1, %(max_doublings)s::integer)) AS not_before
    FROM metric_runs AS r
    JOIN metrics AS m ON m.id = r.metric_id
    WHERE r.status IN ('failed', 'timed_out')
      AND r.completed_at >= %(ended_since)s
      AND r.attempt < m.max_attempts
      AND m.enabled
      AND r.request_payload IS NOT NULL
      AND r.inputs_fingerprint IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM metric_runs AS c
                      WHERE c.retry_of = r.id AND c.trigger = 'retry')
    ORDER BY r.completed_at, r.id
    LIMIT %(limit)s
    FOR UPDATE OF r SKIP LOCKED
),
created AS (
    INSERT INTO metric_runs (id, metric_id, status, trigger, attempt, retry_of,
                             inputs_fingerprint, request_payload, not_before, created_at,
                             queued_at, updated_at)
    SELECT id, metric_id, 'queued', 'retry', attempt, retry_of, inputs_fingerprint,
           request_payload || jsonb_build_object('runId', id::text,
                                                 'attempt', attempt,
                                                 'requestedAt', %(requested_at)s::text),
           not_before, %(now)s, %(now)s, %(now)s
    FROM due
    ON CONFLICT (retry_of) WHERE retry_of IS NOT NULL AND trigger = 'retry' DO NOTHING
    RETURNING id, retry_of, metric_id, attempt, not_before
),
copied_lineage AS (
    INSERT INTO run_dataset_updates (run_id, dataset_id, update_id)
    SELECT c.id, l.dataset_id, l.update_id
    FROM created AS c
    JOIN run_dataset_updates AS l ON l.run_id = c.retry_of
)
SELECT id, retry_of, metric_id, attempt, not_before FROM created

-- name: notify_runs_queued
SELECT pg_notify('metric_run_queued', '')

-- name: pending_inputs
SELECT p.dataset_id, p.update_id, p.received_at, u.version_manifest_path
FROM metric_run_pending_datasets AS p
LEFT JOIN dataset_updates AS u ON u.id = p.update_id
WHERE p.run_id = %(id)s
ORDER BY p.dataset_id

-- name: lineage
SELECT l.dataset_id, u.id, u.event_key, u.bucket, u.version_manifest_path,
       u.projections_path, u.occurred_at, u.received_at, u.effective_at
FROM run_dataset_updates AS l
JOIN dataset_updates AS u ON u.id = l.update_id
WHERE l.run_id = %(id)s
ORDER BY l.dataset_id

-- name: attempt_chain
-- Up to the first attempt by primary key, then every re-run of it (a retry is a later run
-- of the same metric, which lets metric_runs_by_metric bound the search).
WITH RECURSIVE ancestors AS (
    SELECT id, retry_of, 0 AS depth
    FROM metric_runs
    WHERE id = %(id)s
    UNION ALL
    SELECT r.id, r.retry_of, a.depth + 1
    FROM metric_runs AS r
    JOIN ancestors AS a ON r.id = a.retry_of
    WHERE a.depth < 10000
),
root AS (
    SELECT id FROM ancestors ORDER BY depth DESC LIMIT 1
),
family AS (
    SELECT r.id, r.metric_id, r.created_at, 0 AS depth
    FROM metric_runs AS r
    JOIN root ON root.id = r.id
    UNION ALL
    SELECT r.id, r.metric_id, r.created_at, f.depth + 1
    FROM metric_runs AS r
    JOIN family AS f
      ON r.metric_id = f.metric_id AND r.created_at >= f.created_at AND r.retry_of = f.id
    WHERE f.depth < 10000
)
SELECT r.id, r.attempt, r.trigger, r.status, r.retry_of, r.created_at, r.completed_at
FROM family AS f
JOIN metric_runs AS r ON r.id = f.id
ORDER BY r.attempt, r.created_at, r.id
