-- 003: the limits of SPEC §2, §4 and §5.8 as CHECK constraints (issue 10), so that no stored
-- value can break a read: identifiers, the application-level bounds of metrics, path lengths
-- and timestamps that psycopg can read back (years 1970-9999 in UTC).
-- Existing rows are never rewritten: if any violates a new constraint the migration stops
-- with the list of them (at most 50), for the operator to fix before migrating again.
-- The identifier pattern equals domain/identifiers.py IDENTIFIER_PATTERN.

DO $$
DECLARE
    identifier CONSTANT text := '^[A-Za-z0-9_.-]{1,128}$';
    upper_bound CONSTANT timestamptz := '10000-01-01 00:00:00+00';
    problems text;
BEGIN
    SELECT string_agg(problem, '; ') INTO problems FROM (
        SELECT format('datasets.id %s', quote_literal(left(id, 80))) AS problem
            FROM datasets WHERE id !~ identifier
        UNION ALL
        SELECT format('series.code %s', quote_literal(left(code, 80)))
            FROM series WHERE code !~ identifier
        UNION ALL
        SELECT format('metrics.id %s', quote_literal(left(id, 80)))
            FROM metrics WHERE id !~ identifier
        UNION ALL
        SELECT format('metrics.code %s', quote_literal(left(code, 80)))
            FROM metrics WHERE code !~ identifier
        UNION ALL
        SELECT format('metrics %s: required_days %s > 36500', id, required_days)
            FROM metrics WHERE required_days > 36500
        UNION ALL
        SELECT format('metrics %s: max_attempts %s > 100', id, max_attempts)
            FROM metrics WHERE max_attempts > 100
        UNION ALL
        SELECT format('dataset_updates %s: a path over 1024 characters', id)
            FROM dataset_updates
            WHERE length(version_manifest_path) > 1024 OR length(projections_path) > 1024
        UNION ALL
        SELECT format('dataset_updates %s: a timestamp outside 1970-9999', id)
            FROM dataset_updates
            WHERE occurred_at < '1970-01-01 00:00:00+00' OR occurred_at >= upper_bound
               OR received_at >= upper_bound OR effective_at >= upper_bound
        UNION ALL
        SELECT format('metric_runs %s: a timestamp after year 9999', id)
            FROM metric_runs
            WHERE greatest(created_at, queued_at, dispatched_at, started_at, last_heartbeat_at,
                           completed_at, updated_at, not_before) >= upper_bound
        LIMIT 50
    ) AS found;
    IF problems IS NOT NULL THEN
        RAISE EXCEPTION 'migration 003_bounds: existing rows violate the new limits (fix them, '
                        'then migrate again): %', problems;
    END IF;
END
$$;

ALTER TABLE datasets ADD CONSTRAINT datasets_id_identifier
    CHECK (id ~ '^[A-Za-z0-9_.-]{1,128}$');
ALTER TABLE series ADD CONSTRAINT series_code_identifier
    CHECK (code ~ '^[A-Za-z0-9_.-]{1,128}$');
ALTER TABLE metrics ADD CONSTRAINT metrics_id_identifier
    CHECK (id ~ '^[A-Za-z0-9_.-]{1,128}$');
ALTER TABLE metrics ADD CONSTRAINT metrics_code_identifier
    CHECK (code ~ '^[A-Za-z0-9_.-]{1,128}$');
ALTER TABLE metrics ADD CONSTRAINT metrics_required_days_bound
    CHECK (required_days <= 36500);
ALTER TABLE metrics ADD CONSTRAINT metrics_max_attempts_bound
    CHECK (max_attempts <= 100);

ALTER TABLE dataset_updates ADD CONSTRAINT dataset_updates_path_lengths
    CHECK (length(version_manifest_path) <= 1024 AND length(projections_path) <= 1024);
ALTER TABLE dataset_updates ADD CONSTRAINT dataset_updates_readable_times
    CHECK (occurred_at >= '1970-01-01 00:00:00+00' AND occurred_at < '10000-01-01 00:00:00+00'
           AND received_at < '10000-01-01 00:00:00+00'
           AND effective_at < '10000-01-01 00:00:00+00');

ALTER TABLE metric_runs ADD CONSTRAINT metric_runs_readable_times
    CHECK (greatest(created_at, queued_at, dispatched_at, started_at, last_heartbeat_at,
                    completed_at, updated_at, not_before) < '10000-01-01 00:00:00+00');
