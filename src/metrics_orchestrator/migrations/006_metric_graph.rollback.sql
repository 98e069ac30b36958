-- Undo 006. Metric-over-metric inputs and the versions of metric outputs cannot be kept
-- without it: runs that consumed them lose those lineage rows, and metrics reading another
-- metric lose that input (their expressions still name it: reload the catalog after).
DROP TRIGGER IF EXISTS metrics_output_dataset ON metrics;
DROP FUNCTION IF EXISTS metric_output_dataset();
DELETE FROM metric_dependencies WHERE dataset_id LIKE 'metric:%';
DELETE FROM metric_run_pending_datasets WHERE dataset_id LIKE 'metric:%';
DELETE FROM run_dataset_updates WHERE dataset_id LIKE 'metric:%';
UPDATE datasets SET freshest_update_id = NULL WHERE kind = 'metric_output';
DELETE FROM dataset_updates WHERE run_id IS NOT NULL;
DELETE FROM datasets WHERE kind = 'metric_output';
ALTER TABLE metrics DROP COLUMN IF EXISTS definition_version;
ALTER TABLE metric_runs DROP COLUMN IF EXISTS definition_version, DROP COLUMN IF EXISTS data_time;
DROP INDEX IF EXISTS dataset_updates_one_version_per_run;
ALTER TABLE dataset_updates DROP CONSTRAINT IF EXISTS dataset_updates_output_of_a_run,
    DROP COLUMN IF EXISTS formed_at, DROP COLUMN IF EXISTS run_id;
ALTER TABLE metric_dependencies
    DROP CONSTRAINT IF EXISTS metric_dependencies_dataset_id_fkey,
    DROP CONSTRAINT IF EXISTS metric_dependencies_dataset_id_series_code_fkey,
    DROP CONSTRAINT IF EXISTS metric_dependencies_series_code_fkey,
    DROP COLUMN IF EXISTS provided_series,
    ADD CONSTRAINT metric_dependencies_series_code_fkey
        FOREIGN KEY (series_code) REFERENCES series (code),
    ADD CONSTRAINT metric_dependencies_dataset_id_series_code_fkey
        FOREIGN KEY (dataset_id, series_code) REFERENCES dataset_series (dataset_id, series_code);
ALTER TABLE datasets
    DROP CONSTRAINT IF EXISTS datasets_id_identifier,
    DROP COLUMN IF EXISTS metric_id,
    DROP COLUMN IF EXISTS kind,
    ADD CONSTRAINT datasets_id_identifier CHECK (id ~ '^[A-Za-z0-9_.-]{1,128}$');
