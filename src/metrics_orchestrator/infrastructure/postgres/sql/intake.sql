-- Queries of the projection-update transaction (SPEC §5.1-§5.4). Each is set-based:
-- the number of statements per update does not depend on how many metrics it affects.
-- Arrays are passed in binary (%b): their text form is escaped element by element, which for
-- jsonb payloads cost more than the statements themselves (see docs/performance.md).

-- name: dataset_for_update
SELECT bucket, enabled FROM datasets WHERE id = %(dataset_id)s;

-- name: record_updates
-- Inserts the updates of known, enabled datasets in arrival order (their receipt sequence) and
-- reports, per update in that order: whether its dataset is known and enabled and whether it
-- was inserted. An update whose key exists, or repeats earlier in the batch, is not inserted:
-- it is a duplicate. `bucket` defaults to the dataset's.
WITH input AS (
    SELECT *
    FROM unnest(%(ids)b::uuid[], %(event_keys)b::text[], %(dataset_ids)b::text[],
                %(buckets)b::text[], %(manifests)b::text[], %(projections)b::text[],
                %(occurred_ats)b::timestamptz[], %(received_ats)b::timestamptz[],
                %(payloads)b::jsonb[])
         WITH ORDINALITY
         AS t(id, event_key, dataset_id, bucket, manifest, projections, occurred_at,
              received_at, payload, n)
), inserted AS (
    INSERT INTO dataset_updates (id, event_key, dataset_id, bucket, version_manifest_path,
                                 projections_path, occurred_at, received_at, effective_at,
                                 payload)
    SELECT i.id, i.event_key, i.dataset_id, coalesce(nullif(i.bucket, ''), d.bucket),
           i.manifest, i.projections, i.occurred_at, i.received_at,
           coalesce(i.occurred_at, i.received_at), i.payload
    FROM input i JOIN datasets d ON d.id = i.dataset_id AND d.enabled
    ORDER BY i.n
    ON CONFLICT (event_key) DO NOTHING
    RETURNING id
)
SELECT d.id IS NOT NULL, coalesce(d.enabled, false), ins.id IS NOT NULL
FROM input i
LEFT JOIN datasets d ON d.id = i.dataset_id
LEFT JOIN inserted ins ON ins.id = i.id
ORDER BY i.n;

-- name: lock_dependent_metrics
-- Row locks in id order serialise concurrent intakes per metric without deadlocks (§5.3.5).
-- A separate statement: the statements after it take their snapshots once the locks are held.
SELECT m.id, m.code, m.expression_type, m.expression_json, m.required_days, m.trigger_policy
FROM metrics m
WHERE m.enabled
  AND m.id IN (SELECT metric_id FROM metric_dependencies WHERE dataset_id = ANY(%(dataset_ids)b))
ORDER BY m.id
FOR UPDATE OF m;

-- name: input_facts
-- Per metric and required dataset: the series the metric reads from it (with their positions
-- in the expression), the freshest update (SPEC §5.2), the update of that dataset in the
-- metric's last automatic run, and the metric's open pending run. One statement for all the
-- metrics an update affects.
WITH required AS (
    SELECT metric_id, dataset_id, min(position) AS position,
           array_agg(series_code ORDER BY position) AS series_codes,
           array_agg(position ORDER BY position) AS positions
    FROM metric_dependencies
    WHERE metric_id = ANY(%(metric_ids)b)
    GROUP BY metric_id, dataset_id
), freshest AS (
    SELECT d.dataset_id, f.*
    FROM (SELECT DISTINCT dataset_id FROM required) d
    LEFT JOIN LATERAL (
        SELECT u.id, u.effective_at, u.received_at, u.seq, u.bucket, u.version_manifest_path,
               u.projections_path
        FROM dataset_updates u
        WHERE u.dataset_id = d.dataset_id
        ORDER BY u.effective_at DESC, u.received_at DESC, u.seq DESC
        LIMIT 1
    ) f ON true
)
SELECT r.metric_id, r.dataset_id,
       f.id, f.effective_at, f.received_at, f.seq, f.bucket, f.version_manifest_path,
       f.projections_path,
       lu.id, lu.effective_at, lu.received_at, lu.seq,
       r.series_codes, r.positions, pending.id
FROM required r
JOIN metrics m ON m.id = r.metric_id
JOIN freshest f ON f.dataset_id = r.dataset_id
LEFT JOIN run_dataset_updates used
       ON used.run_id = m.last_automatic_run_id AND used.dataset_id = r.dataset_id
LEFT JOIN dataset_updates lu ON lu.id = used.update_id
LEFT JOIN metric_runs pending
       ON pending.metric_id = r.metric_id AND pending.status = 'pending_dependencies'
ORDER BY r.metric_id, r.position;

-- name: existing_automatic_fingerprints
SELECT metric_id, inputs_fingerprint
FROM metric_runs
WHERE trigger = 'automatic'
  AND (metric_id, inputs_fingerprint) IN (
      SELECT * FROM unnest(%(metric_ids)b::text[], %(fingerprints)b::text[]));

-- name: insert_pending_runs
INSERT INTO metric_runs (id, metric_id, status, trigger, attempt, created_at, updated_at)
SELECT id, metric_id, 'pending_dependencies', 'automatic', 1, %(now)s, %(now)s
FROM unnest(%(run_ids)b::uuid[], %(metric_ids)b::text[]) AS t(id, metric_id);

-- name: replace_pending_rows_delete
DELETE FROM metric_run_pending_datasets WHERE run_id = ANY(%(run_ids)b);

-- name: replace_pending_rows_insert
INSERT INTO metric_run_pending_datasets (run_id, dataset_id, update_id, received_at)
SELECT * FROM unnest(%(run_ids)b::uuid[], %(dataset_ids)b::text[], %(update_ids)b::uuid[],
                     %(received_ats)b::timestamptz[]);

-- name: insert_queued_runs
INSERT INTO metric_runs (id, metric_id, status, trigger, attempt, inputs_fingerprint,
                         request_payload, created_at, queued_at, updated_at)
SELECT id, metric_id, 'queued', %(trigger)s, 1, fingerprint, payload, %(now)s, %(now)s, %(now)s
FROM unnest(%(run_ids)b::uuid[], %(metric_ids)b::text[], %(fingerprints)b::text[],
            %(payloads)b::jsonb[]) AS t(id, metric_id, fingerprint, payload);

-- name: promote_pending_runs
UPDATE metric_runs r
SET status = 'queued', inputs_fingerprint = t.fingerprint, request_payload = t.payload,
    queued_at = %(now)s, updated_at = %(now)s
FROM unnest(%(run_ids)b::uuid[], %(fingerprints)b::text[], %(payloads)b::jsonb[])
     AS t(id, fingerprint, payload)
WHERE r.id = t.id AND r.status = 'pending_dependencies';

-- name: insert_lineage
INSERT INTO run_dataset_updates (run_id, dataset_id, update_id)
SELECT * FROM unnest(%(run_ids)b::uuid[], %(dataset_ids)b::text[], %(update_ids)b::uuid[]);

-- name: fill_pending_rows_from_lineage
-- A pending run that became queued keeps its rows as the record of what it waited for,
-- now filled with the updates it consumed.
UPDATE metric_run_pending_datasets p
SET update_id = l.update_id, received_at = u.received_at
FROM run_dataset_updates l
JOIN dataset_updates u ON u.id = l.update_id
WHERE p.run_id = ANY(%(run_ids)b) AND l.run_id = p.run_id AND l.dataset_id = p.dataset_id;

-- name: set_last_automatic_runs
UPDATE metrics m SET last_automatic_run_id = t.run_id
FROM unnest(%(metric_ids)b::text[], %(run_ids)b::uuid[]) AS t(metric_id, run_id)
WHERE m.id = t.metric_id;

-- name: notify_queued
SELECT pg_notify('metric_run_queued', '');

-- name: dependent_metrics
SELECT m.id, m.code, m.expression_type, m.expression_json, m.required_days, m.trigger_policy
FROM metrics m
WHERE m.enabled
  AND m.id IN (SELECT metric_id FROM metric_dependencies WHERE dataset_id = %(dataset_id)s)
ORDER BY m.id;

-- name: lock_metric_by_code
SELECT m.id, m.code, m.expression_type, m.expression_json, m.required_days, m.trigger_policy
FROM metrics m
WHERE m.code = %(code)s
FOR UPDATE OF m;

-- name: metric_by_code
SELECT m.id, m.code, m.expression_type, m.expression_json, m.required_days, m.trigger_policy
FROM metrics m
WHERE m.code = %(code)s;
