-- Queries of the projection-update transaction (SPEC §5.1-§5.4). Each is set-based:
-- the number of statements per update does not depend on how many metrics it affects.
-- Arrays are passed in binary (%b): their text form is escaped element by element, which for
-- jsonb payloads cost more than the statements themselves (see docs/performance.md).

-- name: dataset_for_update
SELECT bucket, enabled FROM datasets WHERE id = %(dataset_id)s;

-- name: lock_datasets
-- The datasets a batch of updates names, locked in id order: concurrent intakes of one
-- dataset take turns choosing its next freshest update (§5.2). NO KEY UPDATE: it does not
-- block the foreign-key checks of other inserts. No join here: a row re-checked after
-- waiting for a lock would be joined with what the statement's snapshot saw before the wait.
SELECT id FROM datasets WHERE id = ANY(%(dataset_ids)b) ORDER BY id FOR NO KEY UPDATE;

-- name: freshest_updates
-- A statement of its own, after lock_datasets: its snapshot sees the last committed choice.
SELECT d.id AS dataset_id, f.id AS freshest_id, f.event_key AS freshest_event_key,
       f.bucket AS freshest_bucket, f.version_manifest_path AS freshest_version_manifest_path,
       f.projections_path AS freshest_projections_path, f.occurred_at AS freshest_occurred_at,
       f.received_at AS freshest_received_at, f.seq AS freshest_seq,
       f.run_id AS freshest_run_id, f.formed_at AS freshest_formed_at
FROM datasets d
JOIN dataset_updates f ON f.id = d.freshest_update_id
WHERE d.id = ANY(%(dataset_ids)b);

-- name: record_updates
-- Inserts the updates of known, enabled datasets in arrival order (their receipt sequence) and
-- reports, per update in that order: whether its dataset is known and enabled, and the
-- receipt sequence it got if it was inserted. An update whose key exists, or repeats earlier
-- in the batch, is not inserted: it is a duplicate. `bucket` defaults to the dataset's.
WITH input AS (
    SELECT *
    FROM unnest(%(ids)b::uuid[], %(event_keys)b::text[], %(dataset_ids)b::text[],
                %(buckets)b::text[], %(manifests)b::text[], %(projections)b::text[],
                %(occurred_ats)b::timestamptz[], %(received_ats)b::timestamptz[],
                %(effective_ats)b::timestamptz[], %(payloads)b::jsonb[], %(run_ids)b::uuid[],
                %(formed_ats)b::timestamptz[])
         WITH ORDINALITY
         AS t(id, event_key, dataset_id, bucket, manifest, projections, occurred_at,
              received_at, effective_at, payload, run_id, formed_at, n)
), inserted AS (
    INSERT INTO dataset_updates (id, event_key, dataset_id, bucket, version_manifest_path,
                                 projections_path, occurred_at, received_at, effective_at,
                                 payload, run_id, formed_at)
    SELECT i.id, i.event_key, i.dataset_id, coalesce(nullif(i.bucket, ''), d.bucket),
           i.manifest, i.projections, i.occurred_at, i.received_at, i.effective_at, i.payload,
           i.run_id, i.formed_at
    FROM input i JOIN datasets d ON d.id = i.dataset_id AND d.enabled
    ORDER BY i.n
    ON CONFLICT (event_key) DO NOTHING
    RETURNING id, seq, bucket
)
SELECT d.id IS NOT NULL AS known, coalesce(d.enabled, false) AS enabled, ins.seq, ins.bucket
FROM input i
LEFT JOIN datasets d ON d.id = i.dataset_id
LEFT JOIN inserted ins ON ins.id = i.id
ORDER BY i.n;

-- name: set_freshest_updates
UPDATE datasets d SET freshest_update_id = t.update_id
FROM unnest(%(dataset_ids)b::text[], %(update_ids)b::uuid[]) AS t(dataset_id, update_id)
WHERE d.id = t.dataset_id;

-- name: lock_dependent_metrics
-- Row locks in id order serialise concurrent intakes per metric without deadlocks (§5.3.5).
-- A separate statement: the statements after it take their snapshots once the locks are held.
SELECT m.id, m.code, m.expression_type, m.expression_json, m.required_days, m.frequency,
       m.unit, m.description, m.trigger_policy, m.max_attempts, m.enabled, m.definition_version,
       m.max_data_age
FROM metrics m
WHERE m.enabled
  AND m.id IN (SELECT metric_id FROM metric_dependencies WHERE dataset_id = ANY(%(dataset_ids)b))
ORDER BY m.id
FOR UPDATE OF m;

-- name: input_facts
-- Per metric and required dataset: the series the metric reads from it (with their positions
-- in the expression), the freshest update (SPEC §5.2, as intake recorded it), the update of
-- that dataset in the metric's last automatic run, and the metric's open pending run. One
-- statement for the given metrics and the enabled dependents of the given datasets (what a
-- batch of updates of those datasets can affect).
WITH chosen AS (
    SELECT unnest(%(metric_ids)b::text[]) AS metric_id
    UNION
    SELECT md.metric_id
    FROM metric_dependencies md
    JOIN metrics m ON m.id = md.metric_id AND m.enabled
    WHERE md.dataset_id = ANY(%(dataset_ids)b)
), required AS (
    SELECT metric_id, dataset_id, min(position) AS position,
           array_agg(series_code ORDER BY position) AS series_codes,
           array_agg(position ORDER BY position) AS positions
    FROM metric_dependencies
    WHERE metric_id IN (SELECT metric_id FROM chosen)
    GROUP BY metric_id, dataset_id
), freshest AS (
    SELECT d.id AS dataset_id, u.id, u.event_key, u.bucket, u.version_manifest_path,
           u.projections_path, u.occurred_at, u.received_at, u.seq, u.run_id, u.formed_at
    FROM datasets d
    LEFT JOIN dataset_updates u ON u.id = d.freshest_update_id
    WHERE d.id IN (SELECT dataset_id FROM required)
)
SELECT r.metric_id, r.dataset_id,
       f.id AS freshest_id, f.event_key AS freshest_event_key, f.bucket AS freshest_bucket,
       f.version_manifest_path AS freshest_version_manifest_path,
       f.projections_path AS freshest_projections_path, f.occurred_at AS freshest_occurred_at,
       f.received_at AS freshest_received_at, f.seq AS freshest_seq,
       f.run_id AS freshest_run_id, f.formed_at AS freshest_formed_at,
       lu.id AS used_id, lu.event_key AS used_event_key, lu.bucket AS used_bucket,
       lu.version_manifest_path AS used_version_manifest_path,
       lu.projections_path AS used_projections_path, lu.occurred_at AS used_occurred_at,
       lu.received_at AS used_received_at, lu.seq AS used_seq,
       lu.run_id AS used_run_id, lu.formed_at AS used_formed_at,
       r.series_codes, r.positions, pending.id AS pending_run_id
FROM required r
JOIN metrics m ON m.id = r.metric_id
JOIN freshest f ON f.dataset_id = r.dataset_id
LEFT JOIN run_dataset_updates used
       ON used.run_id = m.last_automatic_run_id AND used.dataset_id = r.dataset_id
LEFT JOIN dataset_updates lu ON lu.id = used.update_id
-- the literal matches the partial index metric_runs_one_pending_per_metric; LATERAL makes
-- it a probe per metric under any plan
LEFT JOIN LATERAL (
    SELECT p.id FROM metric_runs p
    WHERE p.metric_id = r.metric_id AND p.status = 'pending_dependencies'
    LIMIT 1  -- at most one by that index; also keeps the probe from being flattened
) pending ON true
ORDER BY r.metric_id, r.position;

-- name: lock_pending_runs
-- After the metrics: a pending run canceled meanwhile is not returned (and not promoted);
-- one locked here cannot be canceled until this transaction ends (SPEC §5.5). The literal
-- matches the partial index metric_runs_one_pending_per_metric; the metric ids as an array
-- make it a probe per metric under any plan.
SELECT r.id, r.metric_id
FROM metric_runs r
WHERE r.metric_id = ANY(ARRAY(
        SELECT md.metric_id
        FROM metric_dependencies md
        JOIN metrics m ON m.id = md.metric_id AND m.enabled
        WHERE md.dataset_id = ANY(%(dataset_ids)b)))
  AND r.status = 'pending_dependencies'
ORDER BY r.metric_id
FOR UPDATE OF r;

-- name: existing_automatic_fingerprints
-- Probes the unique index per candidate: its cost does not grow with the run history, even
-- under a generic plan made while the table was empty.
SELECT t.metric_id, t.fingerprint
FROM unnest(%(metric_ids)b::text[], %(fingerprints)b::text[]) AS t(metric_id, fingerprint)
CROSS JOIN LATERAL (
    SELECT 1 FROM metric_runs r
    WHERE r.metric_id = t.metric_id AND r.inputs_fingerprint = t.fingerprint
      AND r.trigger = 'automatic'
    LIMIT 1
) found;

-- name: insert_pending_runs
INSERT INTO metric_runs (id, metric_id, status, trigger, attempt, created_at, updated_at)
SELECT id, metric_id, %(status)s, %(trigger)s, 1, created_at, created_at
FROM unnest(%(run_ids)b::uuid[], %(metric_ids)b::text[], %(created_ats)b::timestamptz[])
     AS t(id, metric_id, created_at);

-- name: still_pending_runs
-- What a waiting run holds changes only while it is still pending (lock_pending_runs holds
-- it); the caller checks that every one is.
SELECT id FROM metric_runs WHERE id = ANY(%(run_ids)b) AND status = %(status)s;

-- name: replace_pending_rows_delete
DELETE FROM metric_run_pending_datasets WHERE run_id = ANY(%(run_ids)b);

-- name: replace_pending_rows_insert
INSERT INTO metric_run_pending_datasets (run_id, dataset_id, update_id, received_at)
SELECT * FROM unnest(%(run_ids)b::uuid[], %(dataset_ids)b::text[], %(update_ids)b::uuid[],
                     %(received_ats)b::timestamptz[]);

-- name: insert_queued_runs
-- A run that waited earlier in the same transaction is inserted queued, with the moment it
-- was created.
INSERT INTO metric_runs (id, metric_id, status, trigger, attempt, inputs_fingerprint,
                         request_payload, not_before, created_at, queued_at, updated_at,
                         definition_version)
SELECT id, metric_id, %(status)s, trigger, 1, fingerprint, payload, queued_at, created_at,
       queued_at, queued_at, definition_version
FROM unnest(%(run_ids)b::uuid[], %(metric_ids)b::text[], %(triggers)b::text[],
            %(fingerprints)b::text[], %(payloads)b::jsonb[], %(created_ats)b::timestamptz[],
            %(queued_ats)b::timestamptz[], %(definition_versions)b::text[])
     AS t(id, metric_id, trigger, fingerprint, payload, created_at, queued_at,
          definition_version);

-- name: promote_pending_runs
UPDATE metric_runs r
SET status = %(to)s, inputs_fingerprint = t.fingerprint, request_payload = t.payload,
    not_before = t.queued_at, queued_at = t.queued_at, updated_at = t.queued_at,
    definition_version = t.definition_version
FROM unnest(%(run_ids)b::uuid[], %(fingerprints)b::text[], %(payloads)b::jsonb[],
            %(queued_ats)b::timestamptz[], %(definition_versions)b::text[])
     AS t(id, fingerprint, payload, queued_at, definition_version)
WHERE r.id = t.id AND r.status = %(from)s
RETURNING r.id;

-- name: insert_lineage
INSERT INTO run_dataset_updates (run_id, dataset_id, update_id)
SELECT * FROM unnest(%(run_ids)b::uuid[], %(dataset_ids)b::text[], %(update_ids)b::uuid[]);

-- name: fill_pending_rows_from_lineage
-- A pending run that became queued keeps its rows as the record of what it waited for,
-- now filled with the updates it consumed.
-- Driven from the run ids, so the plan never scans the lineage table.
UPDATE metric_run_pending_datasets p
SET update_id = l.update_id, received_at = u.received_at
FROM unnest(%(run_ids)b::uuid[]) AS t(run_id)
JOIN run_dataset_updates l ON l.run_id = t.run_id
JOIN dataset_updates u ON u.id = l.update_id
WHERE p.run_id = t.run_id AND p.dataset_id = l.dataset_id;

-- name: set_last_automatic_runs
UPDATE metrics m SET last_automatic_run_id = t.run_id
FROM unnest(%(metric_ids)b::text[], %(run_ids)b::uuid[]) AS t(metric_id, run_id)
WHERE m.id = t.metric_id;

-- name: dependent_metrics
SELECT m.id, m.code, m.expression_type, m.expression_json, m.required_days, m.frequency,
       m.unit, m.description, m.trigger_policy, m.max_attempts, m.enabled, m.definition_version,
       m.max_data_age
FROM metrics m
WHERE m.enabled
  AND m.id IN (SELECT metric_id FROM metric_dependencies WHERE dataset_id = %(dataset_id)s)
ORDER BY m.id;

-- name: lock_metric_by_code
SELECT m.id, m.code, m.expression_type, m.expression_json, m.required_days, m.frequency,
       m.unit, m.description, m.trigger_policy, m.max_attempts, m.enabled, m.definition_version,
       m.max_data_age
FROM metrics m
WHERE m.code = %(code)s
FOR UPDATE OF m;

-- name: metric_by_code
SELECT m.id, m.code, m.expression_type, m.expression_json, m.required_days, m.frequency,
       m.unit, m.description, m.trigger_policy, m.max_attempts, m.enabled, m.definition_version,
       m.max_data_age
FROM metrics m
WHERE m.code = %(code)s;

-- name: run_output
-- A run's output as the dataset `metric:X` of its metric (SPEC §8): the request's output base
-- path and when the run's chain was formed (its first attempt's creation).
SELECT d.id AS dataset_id, r.request_payload -> 'output' ->> 'basePath' AS base_path,
       root.created_at AS formed_at
FROM metric_runs r
JOIN datasets d ON d.metric_id = r.metric_id
JOIN metric_runs root ON root.id = coalesce(r.chain_root, r.id)
WHERE r.id = %(run_id)s;

-- name: inputs_behind
-- The updates a run consumed: each one's effective time and, for a metric's output, the data
-- time of the run that wrote it.
SELECT u.effective_at, u.run_id IS NOT NULL AS from_metric, producer.data_time
FROM run_dataset_updates l
JOIN dataset_updates u ON u.id = l.update_id
LEFT JOIN metric_runs producer ON producer.id = u.run_id
WHERE l.run_id = %(run_id)s;
