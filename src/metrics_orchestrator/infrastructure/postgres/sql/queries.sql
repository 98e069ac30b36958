-- Read-only queries of the API and the metrics endpoint (SPEC §6.3, §6.4).

-- name: freshest_update_by_dataset
-- Each dataset's freshest update (SPEC §5.2), as intake records it in datasets.freshest_update_id.
SELECT u.id, u.event_key, u.dataset_id, u.bucket, u.version_manifest_path, u.projections_path,
       u.occurred_at, u.received_at, u.seq, u.run_id, u.formed_at
FROM datasets d
JOIN dataset_updates u ON u.id = d.freshest_update_id
WHERE d.kind = 'projection'
ORDER BY d.id

-- name: recent_dataset_updates
-- Freshest first (SPEC §5.2 order), served by the dataset_updates_freshest index.
SELECT id, event_key, dataset_id, bucket, version_manifest_path, projections_path,
       occurred_at, received_at, seq, run_id, formed_at
FROM dataset_updates
WHERE dataset_id = %(dataset_id)s
ORDER BY effective_at DESC, received_at DESC, seq DESC
LIMIT %(limit)s

-- name: run_gauges
-- Both counts are served by partial or status indexes; neither grows with finished runs.
SELECT
    (SELECT count(*) FROM metric_runs WHERE status = 'pending_dependencies') AS pending_runs,
    (SELECT count(*) FROM metric_runs
     WHERE status = 'queued' AND (not_before IS NULL OR not_before <= %(now)s))
        AS dispatcher_backlog

-- name: runs_by_status
-- The dashboard's overview: every run by status (one scan of the status index).
SELECT status, count(*) FROM metric_runs GROUP BY status

-- name: runs_by_hour_and_status
-- Runs created since %(since)s, by hour of creation and current status
-- (metric_runs_by_created serves the range).
SELECT date_trunc('hour', created_at, 'UTC') AS hour, status, count(*)
FROM metric_runs
WHERE created_at >= %(since)s
GROUP BY 1, 2
ORDER BY 1, 2

-- name: run_waits
-- The oldest pending run's creation (how long the longest wait is) and the dispatcher backlog.
SELECT
    (SELECT min(created_at) FROM metric_runs WHERE status = 'pending_dependencies')
        AS oldest_pending,
    (SELECT count(*) FROM metric_runs
     WHERE status = 'queued' AND (not_before IS NULL OR not_before <= %(now)s))
        AS dispatcher_backlog,
    (SELECT count(*) FROM event_log WHERE status = 'rejected' AND replayed_at IS NULL)
        AS rejected_events

-- name: metric_state_facts
-- What domain/metric_state.py needs of each metric (every metric when %(codes)s is NULL), in
-- one statement: its settings, its newest %(recent)s runs (metric_runs_by_metric), and each
-- required dataset's freshest version (datasets.freshest_update_id) and whether the metric's
-- pending run holds a new version of it.
SELECT m.code, m.enabled, m.max_attempts, m.required_days,
       coalesce(recent.runs, '[]'::jsonb) AS runs,
       coalesce(inputs.inputs, '[]'::jsonb) AS inputs
FROM metrics AS m
LEFT JOIN LATERAL (
    SELECT jsonb_agg(jsonb_build_object(
               'id', r.id, 'retry_of', r.retry_of, 'status', r.status, 'attempt', r.attempt,
               'created_at', r.created_at, 'not_before', r.not_before,
               'completed_at', r.completed_at, 'message', coalesce(r.error, r.status_reason),
               'retry_decided', r.retry_decided_at IS NOT NULL)) AS runs
    FROM (SELECT * FROM metric_runs
          WHERE metric_id = m.id
          ORDER BY created_at DESC, id DESC
          LIMIT %(recent)s) AS r
) AS recent ON true
LEFT JOIN LATERAL (
    SELECT jsonb_agg(jsonb_build_object(
               'dataset_id', d.id, 'freshest_effective_at', u.effective_at,
               'held', p.update_id IS NOT NULL) ORDER BY d.id) AS inputs
    FROM (SELECT DISTINCT dataset_id FROM metric_dependencies WHERE metric_id = m.id) AS dep
    JOIN datasets AS d ON d.id = dep.dataset_id
    LEFT JOIN dataset_updates AS u ON u.id = d.freshest_update_id
    LEFT JOIN metric_runs AS pending
      ON pending.metric_id = m.id AND pending.status = 'pending_dependencies'
    LEFT JOIN metric_run_pending_datasets AS p
      ON p.run_id = pending.id AND p.dataset_id = d.id
) AS inputs ON true
WHERE %(codes)s::text[] IS NULL OR m.code = ANY(%(codes)s::text[])
ORDER BY m.code

-- name: runs_in_id_range
-- The runs whose id starts with a typed prefix (domain/run_ids.py gives the range): an index
-- range scan of the primary key, bounded by the limit.
SELECT r.id, m.code AS metric_code, r.status, r.attempt, r.created_at
FROM metric_runs AS r
JOIN metrics AS m ON m.id = r.metric_id
WHERE r.id BETWEEN %(lowest)s AND %(highest)s
ORDER BY r.id
LIMIT %(limit)s

-- name: last_run_by_metric
-- Each metric's newest run (metrics that never ran are left out), through metric_runs_by_metric.
SELECT m.code, latest.status, latest.created_at, latest.completed_at
FROM metrics m
JOIN LATERAL (
    SELECT r.status, r.created_at, r.completed_at FROM metric_runs r
    WHERE r.metric_id = m.id
    ORDER BY r.created_at DESC, r.id DESC
    LIMIT 1
) latest ON true
ORDER BY m.code

-- name: metric_data_facts
-- SPEC §8, for every metric in one statement (staleness is transitive, so a metric is judged
-- with its whole upstream): its definition version; its latest succeeded run's definition
-- version ('' when not recorded) and data time; the inputs whose freshest version is not the
-- one that run consumed; whether a run is on its way (pending, queued, dispatched, running:
-- it will consume what is newest); and the metrics whose outputs it reads.
SELECT m.code, m.definition_version,
       CASE WHEN last.id IS NOT NULL THEN coalesce(last.definition_version, '') END
           AS last_success_definition,
       last.data_time,
       coalesce(newer.inputs, '{}') AS newer_inputs,
       EXISTS (SELECT 1 FROM metric_runs AS o
               WHERE o.metric_id = m.id
                 AND o.status IN ('pending_dependencies', 'queued', 'dispatched', 'running'))
           AS run_on_its_way,
       coalesce(up.codes, '{}') AS upstream
FROM metrics AS m
LEFT JOIN LATERAL (
    SELECT r.id, r.definition_version, r.data_time FROM metric_runs AS r
    WHERE r.metric_id = m.id AND r.status = 'succeeded'
    ORDER BY r.created_at DESC, r.id DESC
    LIMIT 1
) AS last ON true
LEFT JOIN LATERAL (
    -- an input whose freshest version no succeeded run consumed: runs may complete, and even
    -- be formed, out of the order of their versions, so "the latest run" is not asked here
    SELECT array_agg(d.id ORDER BY d.id) AS inputs
    FROM (SELECT DISTINCT dataset_id FROM metric_dependencies WHERE metric_id = m.id) AS dep
    JOIN datasets AS d ON d.id = dep.dataset_id
    WHERE last.id IS NOT NULL AND d.freshest_update_id IS NOT NULL
      AND NOT EXISTS (
          SELECT 1 FROM run_dataset_updates AS used
          JOIN metric_runs AS r ON r.id = used.run_id
          WHERE used.update_id = d.freshest_update_id AND used.dataset_id = d.id
            AND r.metric_id = m.id AND r.status = 'succeeded')
) AS newer ON true
LEFT JOIN LATERAL (
    SELECT array_agg(DISTINCT upstream.code ORDER BY upstream.code) AS codes
    FROM metric_dependencies AS dep
    JOIN datasets AS d ON d.id = dep.dataset_id AND d.kind = 'metric_output'
    JOIN metrics AS upstream ON upstream.id = d.metric_id
    WHERE dep.metric_id = m.id
) AS up ON true
ORDER BY m.code

-- name: metric_upstream
-- The stored graph of metrics over metrics (SPEC §8): each metric reading another's output
-- (`metric:X`, linked to X by datasets.metric_id), with the codes of the metrics it reads.
SELECT m.code, array_agg(DISTINCT upstream.code ORDER BY upstream.code) AS upstream
FROM metric_dependencies AS dep
JOIN metrics AS m ON m.id = dep.metric_id
JOIN datasets AS d ON d.id = dep.dataset_id AND d.kind = 'metric_output'
JOIN metrics AS upstream ON upstream.id = d.metric_id
GROUP BY m.code
ORDER BY m.code

-- name: run_data
-- What SPEC §8 adds to a run: its data time (succeeded runs) and its definition version.
SELECT data_time, definition_version FROM metric_runs WHERE id = %(id)s

-- name: metric_run_summaries
-- What the metrics list says of each of %(codes)s's runs: the newest run (status, creation)
-- and, over the %(recent)s newest succeeded runs, the latest one's completion (the run the
-- data time is from: same order as metric_data_facts) and the median started-to-completed
-- duration. Both are short index ranges of metric_runs_by_metric, whatever the history.
SELECT m.code, latest.status AS last_status, latest.created_at AS last_run_at,
       ok.last_success_at, ok.p50_duration_seconds
FROM metrics AS m
LEFT JOIN LATERAL (
    SELECT r.status, r.created_at FROM metric_runs AS r
    WHERE r.metric_id = m.id
    ORDER BY r.created_at DESC, r.id DESC
    LIMIT 1
) AS latest ON true
LEFT JOIN LATERAL (
    SELECT (array_agg(s.completed_at ORDER BY s.created_at DESC, s.id DESC))[1]
               AS last_success_at,
           percentile_cont(0.5) WITHIN GROUP (
               ORDER BY extract(epoch FROM s.completed_at - s.started_at)::float8)
               FILTER (WHERE s.started_at IS NOT NULL AND s.completed_at IS NOT NULL)
               AS p50_duration_seconds
    FROM (SELECT r.created_at, r.id, r.started_at, r.completed_at FROM metric_runs AS r
          WHERE r.metric_id = m.id AND r.status = 'succeeded'
          ORDER BY r.created_at DESC, r.id DESC
          LIMIT %(recent)s) AS s
) AS ok ON true
WHERE m.code = ANY(%(codes)s::text[])
ORDER BY m.code

-- name: run_grid
-- The history grid (docs/ui.md): the metrics whose code is ILIKE %(code_like)s (all when NULL)
-- and sorts after %(after)s (byte order, as the dashboard's other lists), each with its newest
-- %(runs)s runs created since %(since)s (no bound when NULL) plus one, which only says there
-- are more. Each metric's runs are one range of metric_runs_by_metric cut by the limit, so the
-- cost follows the cells shown, not the run history; row_number() numbers them from the
-- newest (1). A metric is kept when its newest run in view has %(status)s (any when NULL) and,
-- with %(failing)s, when a run in view failed or timed out; the first %(metrics)s kept are
-- returned in code order, a metric with no run in view as one row of NULLs.
WITH picked AS (
    SELECT m.id, m.code FROM metrics AS m
    WHERE (%(code_like)s::text IS NULL OR m.code ILIKE %(code_like)s::text ESCAPE '\')
      AND (%(after)s::text IS NULL OR m.code COLLATE "C" > %(after)s::text)
),
numbered AS (
    SELECT p.code, r.id, r.status, r.created_at, r.started_at, r.completed_at,
           row_number() OVER (PARTITION BY p.id ORDER BY r.created_at DESC, r.id DESC)
               AS position
    FROM picked AS p
    LEFT JOIN LATERAL (
        SELECT r.id, r.status, r.created_at, r.started_at, r.completed_at
        FROM metric_runs AS r
        WHERE r.metric_id = p.id
          AND r.created_at >= coalesce(%(since)s::timestamptz, '-infinity')
        ORDER BY r.created_at DESC, r.id DESC
        LIMIT %(runs)s + 1
    ) AS r ON true
),
judged AS (
    SELECT n.*,
           max(n.status) FILTER (WHERE n.position = 1) OVER (PARTITION BY n.code)
               AS newest_status,
           coalesce(bool_or(n.status IN ('failed', 'timed_out'))
                        FILTER (WHERE n.position <= %(runs)s) OVER (PARTITION BY n.code),
                    false) AS any_failed
    FROM numbered AS n
),
kept AS (
    SELECT j.code FROM judged AS j
    WHERE (%(status)s::text IS NULL OR j.newest_status = %(status)s::text)
      AND (NOT %(failing)s::boolean OR j.any_failed)
    GROUP BY j.code
    ORDER BY j.code COLLATE "C"
    LIMIT %(metrics)s
)
SELECT j.code, j.id, j.status, j.created_at, j.started_at, j.completed_at, j.position
FROM judged AS j
JOIN kept ON kept.code = j.code
ORDER BY j.code COLLATE "C", j.position

-- name: dataset_version
-- One version of a dataset (issue 25: versions at the centre): its facts, whether it is the
-- dataset's freshest, and for a version of a metric's output (`metric:X`, SPEC §8) the run
-- that wrote it. The primary key finds it; the dataset id must match, so a version is only
-- ever shown under its own dataset.
SELECT u.id, u.event_key, u.dataset_id, u.bucket, u.version_manifest_path, u.projections_path,
       u.occurred_at, u.received_at, u.seq, u.run_id, u.formed_at,
       d.freshest_update_id = u.id AS is_freshest,
       producer.code AS producer_metric_code, r.status AS producer_status
FROM dataset_updates AS u
JOIN datasets AS d ON d.id = u.dataset_id
LEFT JOIN metric_runs AS r ON r.id = u.run_id
LEFT JOIN metrics AS producer ON producer.id = r.metric_id
WHERE u.id = %(update_id)s AND u.dataset_id = %(dataset_id)s

-- name: version_consumers
-- The runs whose lineage holds this version, newest first (run_dataset_updates_by_update),
-- at most %(limit)s, each with what it produced: its output manifest and, when its success
-- made a version of its metric's output, that version (dataset_updates_one_version_per_run).
SELECT r.id, m.code AS metric_code, r.status, r.trigger, r.attempt, r.created_at,
       r.completed_at, r.output_manifest, r.row_count,
       output.id AS output_update_id, output.dataset_id AS output_dataset_id
FROM run_dataset_updates AS used
JOIN metric_runs AS r ON r.id = used.run_id
JOIN metrics AS m ON m.id = r.metric_id
LEFT JOIN dataset_updates AS output ON output.run_id = r.id
WHERE used.update_id = %(update_id)s
ORDER BY r.created_at DESC, r.id DESC
LIMIT %(limit)s

-- name: search
-- The search box (issue 25): what a typed text names, in one statement, each part through a
-- unique or leading index: a metric by its exact code, a dataset by its exact id (a metric's
-- output only while it names a metric), the newest logged event with this key, and up to
-- %(limit)s runs whose id starts with it (%(lowest)s..%(highest)s, NULL when the text cannot
-- be a run id prefix).
SELECT
    (SELECT code FROM metrics WHERE code = %(text)s) AS metric_code,
    (SELECT id FROM datasets
     WHERE id = %(text)s AND (kind = 'projection' OR metric_id IS NOT NULL)) AS dataset_id,
    (SELECT max(id) FROM event_log WHERE event_key = %(text)s) AS event_id,
    (SELECT coalesce(jsonb_agg(jsonb_build_object(
                'id', r.id, 'metric_code', m.code, 'status', r.status, 'attempt', r.attempt,
                'created_at', r.created_at) ORDER BY r.id), '[]'::jsonb)
     FROM (SELECT id, metric_id, status, attempt, created_at FROM metric_runs
           WHERE id BETWEEN %(lowest)s::uuid AND %(highest)s::uuid
           ORDER BY id
           LIMIT %(limit)s) AS r
     JOIN metrics AS m ON m.id = r.metric_id) AS runs
