-- Run lifecycle (SPEC §5.5-§5.7): feedback, sweeper, cancel, retry and run read models.

-- name: lock_run
-- The metric code a worker must echo is the one its request carried.
SELECT r.id, r.status, r.attempt, r.request_payload IS NOT NULL AS has_request,
       coalesce(r.request_payload ->> 'metricCode', m.code) AS metric_code,
       m.enabled AS metric_enabled
FROM metric_runs AS r
JOIN metrics AS m ON m.id = r.metric_id
WHERE r.id = %(id)s
FOR UPDATE OF r

-- name: get_run
SELECT r.id, r.metric_id, r.status, r.trigger, r.attempt, r.created_at, r.retry_of,
       r.inputs_fingerprint, r.request_payload, r.not_before, r.progress, r.dispatch_attempts,
       r.status_reason, r.error, r.queued_at, r.dispatched_at, r.started_at,
       r.last_heartbeat_at, r.completed_at, r.version_ts, r.output_manifest, r.row_count,
       r.retryable,
       (SELECT jsonb_object_agg(l.dataset_id, l.update_id)
        FROM run_dataset_updates AS l WHERE l.run_id = r.id) AS lineage,
       m.code AS metric_code
FROM metric_runs AS r
JOIN metrics AS m ON m.id = r.metric_id
WHERE r.id = %(id)s

-- name: list_runs
-- Keyset pagination on (created_at DESC, id DESC), served by the metric_runs_by_* indexes;
-- %(statuses)s is any of several statuses (all when NULL), [%(since)s, %(until)s) a creation range.
SELECT r.id, r.metric_id, r.status, r.trigger, r.attempt, r.created_at, r.retry_of,
       r.inputs_fingerprint, r.request_payload, r.not_before, r.progress, r.dispatch_attempts,
       r.status_reason, r.error, r.queued_at, r.dispatched_at, r.started_at,
       r.last_heartbeat_at, r.completed_at, r.version_ts, r.output_manifest, r.row_count,
       r.retryable,
       (SELECT jsonb_object_agg(l.dataset_id, l.update_id)
        FROM run_dataset_updates AS l WHERE l.run_id = r.id) AS lineage,
       m.code AS metric_code
FROM metric_runs AS r
JOIN metrics AS m ON m.id = r.metric_id
WHERE (%(statuses)s::text[] IS NULL OR r.status = ANY(%(statuses)s::text[]))
  AND (%(metric_code)s::text IS NULL OR m.code = %(metric_code)s::text)
  AND (%(since)s::timestamptz IS NULL OR r.created_at >= %(since)s::timestamptz)
  AND (%(until)s::timestamptz IS NULL OR r.created_at < %(until)s::timestamptz)
  AND (%(after_created_at)s::timestamptz IS NULL
       OR (r.created_at, r.id) < (%(after_created_at)s::timestamptz, %(after_id)s::uuid))
ORDER BY r.created_at DESC, r.id DESC
LIMIT %(limit)s

-- Every status write below changes a run only from the status the domain decided it for
-- (`from`, with the row locked or skipped if locked) and says which runs it changed; the
-- application checks that count (SPEC §5.5). Statuses come from domain/model.py LIFECYCLE.

-- name: record_start
-- started_at keeps the earliest start the worker reported; liveness counts from our receipt.
UPDATE metric_runs
SET status = %(to)s,
    started_at = least(started_at, %(started_at)s::timestamptz),
    last_seen_at = greatest(last_seen_at, %(seen_at)s::timestamptz),
    updated_at = %(now)s
WHERE id = %(id)s AND status = %(from)s

-- name: record_heartbeat
-- last_heartbeat_at never moves backwards; progress is taken from the newest heartbeat only.
UPDATE metric_runs
SET status = %(to)s,
    started_at = least(started_at, %(ts)s::timestamptz),
    progress = CASE
                   WHEN %(progress)s::double precision IS NOT NULL
                        AND (last_heartbeat_at IS NULL OR %(ts)s::timestamptz >= last_heartbeat_at)
                   THEN %(progress)s::double precision
                   ELSE progress
               END,
    last_heartbeat_at = greatest(last_heartbeat_at, %(ts)s::timestamptz),
    last_seen_at = greatest(last_seen_at, %(seen_at)s::timestamptz),
    updated_at = %(now)s
WHERE id = %(id)s AND status = %(from)s

-- name: record_completion
UPDATE metric_runs
SET status = %(to)s,
    completed_at = %(completed_at)s,
    version_ts = %(version_ts)s,
    output_manifest = %(output_manifest)s,
    row_count = %(row_count)s,
    error = %(error)s,
    status_reason = %(status_reason)s,
    retryable = %(retryable)s,
    data_time = %(data_time)s,
    progress = coalesce(%(progress)s::double precision, progress),
    updated_at = %(now)s
WHERE id = %(id)s AND status = %(from)s

-- name: cancel_run
UPDATE metric_runs
SET status = %(to)s,
    status_reason = %(reason)s,
    completed_at = %(now)s,
    updated_at = %(now)s
WHERE id = %(id)s AND status = %(from)s

-- name: lock_automatic_retry
-- The automatic retry of a run, if it has one; waits for a dispatcher that holds it.
SELECT id, status, attempt
FROM metric_runs
WHERE retry_of = %(id)s AND trigger = %(trigger)s
FOR UPDATE

-- name: latest_attempt
-- The newest attempt of the chain the run belongs to (metric_runs_one_attempt_per_chain).
SELECT latest.id, latest.attempt
FROM metric_runs AS r
CROSS JOIN LATERAL (
    SELECT c.id, c.attempt
    FROM metric_runs AS c
    WHERE coalesce(c.chain_root, c.id) = coalesce(r.chain_root, r.id)
    ORDER BY c.attempt DESC
    LIMIT 1
) AS latest
WHERE r.id = %(id)s

-- name: create_manual_retry
-- A manual re-run: same inputs and lineage, next attempt in the same chain, the request the
-- use case built for it (domain/messages/run_requested.py build_retry_request).
-- metric_runs_one_attempt_per_chain refuses a second run of one attempt number.
WITH created AS (
    INSERT INTO metric_runs (id, metric_id, status, trigger, attempt, retry_of, chain_root,
                             inputs_fingerprint, request_payload, not_before, created_at,
                             queued_at, updated_at)
    SELECT %(new_id)s::uuid, r.metric_id, %(status)s, %(trigger)s, r.attempt + 1, r.id,
           coalesce(r.chain_root, r.id),
           r.inputs_fingerprint,
           %(payload)s::jsonb,
           %(now)s, %(now)s, %(now)s, %(now)s
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

-- name: time_out_runs
-- Runs in `from` whose last sign of life *we* observed (the receipt of their latest started
-- or heartbeat event, else their dispatch) is older than the cutoff. Rows another
-- transaction holds (a feedback event in flight, another sweeper) are skipped.
WITH due AS (
    SELECT id
    FROM metric_runs
    WHERE status = %(from)s
      AND completed_at IS NULL
      AND coalesce(last_seen_at, dispatched_at) < %(cutoff)s
    ORDER BY coalesce(last_seen_at, dispatched_at)
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE metric_runs AS r
SET status = %(to)s,
    status_reason = %(reason)s,
    error = %(error)s,
    completed_at = %(now)s,
    updated_at = %(now)s
FROM due
WHERE r.id = due.id
  AND r.status = %(from)s
RETURNING r.id, r.metric_id, r.status_reason

-- name: retry_candidates
-- SPEC §5.6 facts: ended runs in a retryable status whose retry nobody has decided yet, with
-- what domain/retries.py needs to decide. Concurrent sweepers split them (SKIP LOCKED).
SELECT r.id, r.status, r.attempt, r.completed_at, m.max_attempts, m.enabled, r.retryable,
       r.request_payload, m.code AS metric_code, r.error,
       r.request_payload IS NOT NULL AND r.inputs_fingerprint IS NOT NULL AS has_request,
       NOT EXISTS (SELECT 1 FROM metric_runs AS newer
                   WHERE coalesce(newer.chain_root, newer.id) = coalesce(r.chain_root, r.id)
                     AND newer.attempt > r.attempt) AS latest_in_chain
FROM metric_runs AS r
JOIN metrics AS m ON m.id = r.metric_id
WHERE r.status = ANY(%(statuses)s)
  AND r.retry_decided_at IS NULL
  AND r.completed_at IS NOT NULL
ORDER BY r.completed_at, r.id
LIMIT %(limit)s
FOR UPDATE OF r SKIP LOCKED

-- name: insert_retries
-- Stores the retries the domain decided: same inputs and lineage, next attempt in the same
-- chain, the not_before it computed and the request the use case built for each. The unique indexes make a second impossible.
WITH decided AS (
    SELECT *
    FROM unnest(%(ids)s::uuid[], %(retry_ofs)s::uuid[], %(not_befores)s::timestamptz[],
                %(payloads)b::jsonb[])
         AS t(id, retry_of, not_before, request_payload)
),
created AS (
    INSERT INTO metric_runs (id, metric_id, status, trigger, attempt, retry_of, chain_root,
                             inputs_fingerprint, request_payload, not_before, created_at,
                             queued_at, updated_at)
    SELECT d.id, r.metric_id, %(status)s, %(trigger)s, r.attempt + 1, r.id,
           coalesce(r.chain_root, r.id),
           r.inputs_fingerprint,
           d.request_payload,
           d.not_before, %(now)s, %(now)s, %(now)s
    FROM decided AS d
    JOIN metric_runs AS r ON r.id = d.retry_of
    -- any unique index: metric_runs_one_retry_per_run, and metric_runs_one_attempt_per_chain
    -- should a manual retry of the same attempt commit between our read and this write
    ON CONFLICT DO NOTHING
    RETURNING id, retry_of, metric_id, attempt, not_before
),
copied_lineage AS (
    INSERT INTO run_dataset_updates (run_id, dataset_id, update_id)
    SELECT c.id, l.dataset_id, l.update_id
    FROM created AS c
    JOIN run_dataset_updates AS l ON l.run_id = c.retry_of
)
SELECT id, retry_of, metric_id, attempt, not_before FROM created

-- name: mark_retries_decided
UPDATE metric_runs SET retry_decided_at = %(now)s WHERE id = ANY(%(ids)s::uuid[])

-- name: notify_runs_queued
SELECT pg_notify(%(channel)s, '')

-- name: pending_inputs
SELECT p.dataset_id, u.id, u.event_key, u.bucket, u.version_manifest_path, u.projections_path,
       u.occurred_at, u.received_at, u.seq, u.run_id, u.formed_at
FROM metric_run_pending_datasets AS p
LEFT JOIN dataset_updates AS u ON u.id = p.update_id
WHERE p.run_id = %(id)s
ORDER BY p.dataset_id

-- name: lineage
SELECT l.dataset_id, u.id, u.event_key, u.bucket, u.version_manifest_path,
       u.projections_path, u.occurred_at, u.received_at, u.seq, u.run_id, u.formed_at
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
