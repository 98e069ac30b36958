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
