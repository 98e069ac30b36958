-- Read-only queries of the API and the metrics endpoint (SPEC §6.3, §6.4).

-- name: recent_dataset_updates
-- Freshest first (SPEC §5.2 order), served by the dataset_updates_freshest index.
SELECT id, event_key, dataset_id, bucket, version_manifest_path, projections_path,
       occurred_at, received_at, seq
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

-- name: latest_run_status_by_metric
-- Each metric's newest run status (NULL when it never ran), through metric_runs_by_metric.
SELECT m.code, latest.status
FROM metrics m
LEFT JOIN LATERAL (
    SELECT r.status FROM metric_runs r
    WHERE r.metric_id = m.id
    ORDER BY r.created_at DESC, r.id DESC
    LIMIT 1
) latest ON true
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
