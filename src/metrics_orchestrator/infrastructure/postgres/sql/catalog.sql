-- Catalog queries (SPEC §2). Upserts are set-based and only touch rows whose values differ,
-- so RETURNING tells created (xmax = 0) from updated, and a missing row means unchanged.
-- Rows are written in key order so that concurrent loads lock them in the same order.

-- name: existing_series
SELECT code FROM series WHERE code = ANY(%(codes)s::text[]);

-- name: existing_datasets
SELECT id FROM datasets WHERE id = ANY(%(ids)s::text[]) AND kind = 'projection';

-- name: providers
SELECT series_code, dataset_id
FROM dataset_series
WHERE series_code = ANY(%(codes)s::text[])
ORDER BY series_code, dataset_id;

-- name: lock_datasets
-- NO KEY UPDATE does not block intake, whose update rows only KEY SHARE-lock the dataset.
SELECT id, name, description, bucket, enabled, expected_every, grace
FROM datasets
WHERE id = ANY(%(ids)s::text[])
ORDER BY id
FOR NO KEY UPDATE;

-- name: dataset_series_of
SELECT dataset_id, series_code
FROM dataset_series
WHERE dataset_id = ANY(%(ids)s::text[])
ORDER BY dataset_id, series_code;

-- name: dependents
SELECT d.metric_id, d.dataset_id, d.series_code
FROM metric_dependencies d
JOIN unnest(%(dataset_ids)s::text[], %(series_codes)s::text[]) AS p(dataset_id, series_code)
  ON p.dataset_id = d.dataset_id AND p.series_code = d.series_code
ORDER BY d.dataset_id, d.series_code, d.metric_id;

-- name: metric_ids_by_code
SELECT code, id FROM metrics WHERE code = ANY(%(codes)s::text[]);

-- name: lock_metrics
-- Same lock order as intake (metrics by id), so the two never deadlock on metric rows.
SELECT id, code, expression_type, expression_json, frequency, unit, description,
       required_days, trigger_policy, max_attempts, enabled, definition_version,
       max_data_age
FROM metrics
WHERE id = ANY(%(ids)s::text[])
ORDER BY id
FOR UPDATE;

-- name: upsert_series
INSERT INTO series AS s (code, name, description, unit, frequency, created_at, updated_at)
SELECT t.code, t.name, t.description, t.unit, t.frequency, %(now)s, %(now)s
FROM unnest(%(codes)s::text[], %(names)s::text[], %(descriptions)s::text[],
            %(units)s::text[], %(frequencies)s::text[])
     WITH ORDINALITY AS t(code, name, description, unit, frequency, ord)
ORDER BY t.ord
ON CONFLICT (code) DO UPDATE
SET name = EXCLUDED.name, description = EXCLUDED.description, unit = EXCLUDED.unit,
    frequency = EXCLUDED.frequency, updated_at = EXCLUDED.updated_at
WHERE (s.name, s.description, s.unit, s.frequency)
      IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.description, EXCLUDED.unit, EXCLUDED.frequency)
RETURNING s.code, (s.xmax = 0) AS created;

-- name: upsert_datasets
-- A NULL `enabled` keeps the stored value (rows were locked by lock_datasets).
INSERT INTO datasets AS d (id, name, description, bucket, enabled, expected_every, grace,
                           created_at, updated_at)
SELECT t.id, t.name, t.description, t.bucket, coalesce(t.enabled, cur.enabled, true),
       t.expected_every, coalesce(t.grace, interval '0'), %(now)s, %(now)s
FROM unnest(%(ids)s::text[], %(names)s::text[], %(descriptions)s::text[],
            %(buckets)s::text[], %(enabled)s::boolean[], %(expected_every)s::interval[],
            %(graces)s::interval[])
     WITH ORDINALITY AS t(id, name, description, bucket, enabled, expected_every, grace, ord)
LEFT JOIN datasets cur ON cur.id = t.id
ORDER BY t.ord
ON CONFLICT (id) DO UPDATE
SET name = EXCLUDED.name, description = EXCLUDED.description, bucket = EXCLUDED.bucket,
    enabled = EXCLUDED.enabled, expected_every = EXCLUDED.expected_every,
    grace = EXCLUDED.grace, updated_at = EXCLUDED.updated_at
WHERE (d.name, d.description, d.bucket, d.enabled, d.expected_every, d.grace)
      IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.description, EXCLUDED.bucket, EXCLUDED.enabled,
                        EXCLUDED.expected_every, EXCLUDED.grace)
RETURNING d.id, (d.xmax = 0) AS created;

-- name: add_dataset_series
INSERT INTO dataset_series (dataset_id, series_code, created_at)
SELECT t.dataset_id, t.series_code, %(now)s
FROM unnest(%(dataset_ids)s::text[], %(series_codes)s::text[])
     WITH ORDINALITY AS t(dataset_id, series_code, ord)
ORDER BY t.ord
ON CONFLICT (dataset_id, series_code) DO NOTHING;

-- name: remove_dataset_series
DELETE FROM dataset_series ds
USING unnest(%(dataset_ids)s::text[], %(series_codes)s::text[]) AS p(dataset_id, series_code)
WHERE ds.dataset_id = p.dataset_id AND ds.series_code = p.series_code;

-- name: upsert_metrics
-- A NULL `enabled` keeps the stored value (rows were locked by lock_metrics).
INSERT INTO metrics AS m (id, code, expression_type, expression_json, frequency, unit,
                          description, required_days, trigger_policy, max_attempts, enabled,
                          definition_version, max_data_age, created_at, updated_at)
SELECT t.id, t.code, t.expression_type, t.expression_json, t.frequency, t.unit,
       t.description, t.required_days, t.trigger_policy, t.max_attempts,
       coalesce(t.enabled, cur.enabled, true), t.definition_version, t.max_data_age,
       %(now)s, %(now)s
FROM unnest(%(ids)s::text[], %(codes)s::text[], %(expression_types)s::text[],
            %(expressions)s::jsonb[], %(frequencies)s::text[], %(units)s::text[],
            %(descriptions)s::text[], %(required_days)s::integer[],
            %(trigger_policies)s::text[], %(max_attempts)s::integer[], %(enabled)s::boolean[],
            %(definition_versions)s::text[], %(max_data_ages)s::interval[])
     WITH ORDINALITY AS t(id, code, expression_type, expression_json, frequency, unit,
                          description, required_days, trigger_policy, max_attempts, enabled,
                          definition_version, max_data_age, ord)
LEFT JOIN metrics cur ON cur.id = t.id
ORDER BY t.ord
ON CONFLICT (id) DO UPDATE
SET code = EXCLUDED.code, expression_type = EXCLUDED.expression_type,
    expression_json = EXCLUDED.expression_json, frequency = EXCLUDED.frequency,
    unit = EXCLUDED.unit, description = EXCLUDED.description,
    required_days = EXCLUDED.required_days, trigger_policy = EXCLUDED.trigger_policy,
    max_attempts = EXCLUDED.max_attempts, enabled = EXCLUDED.enabled,
    definition_version = EXCLUDED.definition_version, max_data_age = EXCLUDED.max_data_age,
    updated_at = EXCLUDED.updated_at
WHERE (m.code, m.expression_type, m.expression_json, m.frequency, m.unit, m.description,
       m.required_days, m.trigger_policy, m.max_attempts, m.enabled, m.definition_version,
       m.max_data_age)
      IS DISTINCT FROM
      (EXCLUDED.code, EXCLUDED.expression_type, EXCLUDED.expression_json, EXCLUDED.frequency,
       EXCLUDED.unit, EXCLUDED.description, EXCLUDED.required_days, EXCLUDED.trigger_policy,
       EXCLUDED.max_attempts, EXCLUDED.enabled, EXCLUDED.definition_version,
       EXCLUDED.max_data_age)
RETURNING m.id, (m.xmax = 0) AS created;

-- name: metric_graph
-- Every metric with the codes of the metrics whose outputs (`metric:X`) it reads (SPEC §8).
SELECT m.id, m.code,
       coalesce(array_agg(substr(md.dataset_id, length('metric:') + 1) ORDER BY md.position)
                    FILTER (WHERE md.dataset_id LIKE 'metric:%%'), '{}') AS upstream
FROM metrics m
LEFT JOIN metric_dependencies md ON md.metric_id = m.id
GROUP BY m.id, m.code
ORDER BY m.id;

-- name: dependencies
SELECT metric_id, series_code, dataset_id
FROM metric_dependencies
WHERE metric_id = ANY(%(ids)s::text[])
ORDER BY metric_id, position;

-- name: delete_dependencies
DELETE FROM metric_dependencies WHERE metric_id = ANY(%(ids)s::text[]);

-- name: insert_dependencies
INSERT INTO metric_dependencies (metric_id, series_code, dataset_id, position, created_at)
SELECT t.metric_id, t.series_code, t.dataset_id, t.position, %(now)s
FROM unnest(%(metric_ids)s::text[], %(series_codes)s::text[], %(dataset_ids)s::text[],
            %(positions)s::integer[]) AS t(metric_id, series_code, dataset_id, position);

-- name: cancel_pending_runs
-- SPEC §2: a changed definition cancels the open pending run; the next update starts afresh.
-- `from` is the pending status: the literal of metric_runs_one_pending_per_metric cannot be
-- matched by a parameter, so the lookup goes by metric and the status is checked after it.
UPDATE metric_runs
SET status = %(to)s, status_reason = %(reason)s, completed_at = %(now)s,
    updated_at = %(now)s
WHERE metric_id = ANY(%(ids)s::text[]) AND status = %(from)s
RETURNING metric_id;

-- name: metric_by_code
SELECT id, code, expression_type, expression_json, frequency, unit, description,
       required_days, trigger_policy, max_attempts, enabled, definition_version,
       max_data_age
FROM metrics
WHERE code = %(code)s;

-- name: metric_by_id
SELECT id, code, expression_type, expression_json, frequency, unit, description,
       required_days, trigger_policy, max_attempts, enabled, definition_version,
       max_data_age
FROM metrics
WHERE id = %(id)s;

-- name: all_metrics
SELECT id, code, expression_type, expression_json, frequency, unit, description,
       required_days, trigger_policy, max_attempts, enabled, definition_version,
       max_data_age
FROM metrics
ORDER BY code;

-- name: all_dependencies
SELECT metric_id, series_code, dataset_id
FROM metric_dependencies
ORDER BY metric_id, position;

-- name: dataset_by_id
-- The catalog's datasets are those of projections; a metric's output (`metric:X`, SPEC §8) is
-- its metric's, and changes with it.
SELECT id, name, description, bucket, enabled, expected_every, grace FROM datasets
WHERE id = %(id)s AND kind = 'projection';

-- name: all_datasets
SELECT id, name, description, bucket, enabled, expected_every, grace FROM datasets
WHERE kind = 'projection'
ORDER BY id;

-- name: all_dataset_series
SELECT dataset_id, series_code FROM dataset_series ORDER BY dataset_id, series_code;

-- name: series_by_code
SELECT code, name, description, unit, frequency FROM series WHERE code = %(code)s;

-- name: all_series
SELECT code, name, description, unit, frequency FROM series ORDER BY code;

-- name: update_metric_settings
UPDATE metrics
SET enabled = coalesce(%(enabled)s, enabled),
    required_days = coalesce(%(required_days)s, required_days),
    max_attempts = coalesce(%(max_attempts)s, max_attempts),
    trigger_policy = coalesce(%(trigger_policy)s, trigger_policy),
    max_data_age = CASE WHEN %(remove_max_data_age)s THEN NULL
                        ELSE coalesce(%(max_data_age)s, max_data_age) END,
    updated_at = %(now)s
WHERE code = %(code)s
RETURNING id;

-- name: update_dataset_settings
-- A NULL keeps the stored value; `grace: null` resets the grace, and removing the objective
-- removes its grace unless the same PATCH gives one, which the use case then refuses (a grace
-- left without an objective) rather than drop silently.
UPDATE datasets
SET enabled = coalesce(%(enabled)s, enabled),
    expected_every = CASE WHEN %(remove_objective)s THEN NULL
                          ELSE coalesce(%(expected_every)s, expected_every) END,
    grace = CASE WHEN %(reset_grace)s THEN interval '0'
                 WHEN %(remove_objective)s THEN coalesce(%(grace)s, interval '0')
                 ELSE coalesce(%(grace)s, grace) END,
    updated_at = %(now)s
WHERE id = %(id)s AND kind = 'projection'
RETURNING id, expected_every, grace;

-- name: set_dataset_enabled
UPDATE datasets SET enabled = %(enabled)s, updated_at = %(now)s
WHERE id = %(id)s
RETURNING id;
