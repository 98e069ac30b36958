-- 006: metrics over metrics (SPEC §8, issue 23).
-- Every metric X has a pseudo-dataset `metric:X` (kind 'metric_output') whose versions are the
-- outputs of X's succeeded runs: the intake's tables and rules serve it like any dataset.
-- A trigger keeps it beside its metric whatever inserts or renames the metric (catalog load,
-- the API, an operator's SQL). A renamed metric gets the pseudo-dataset of its new code; the
-- old one keeps its versions (lineage stays exact) and no longer names a metric.

ALTER TABLE datasets ADD COLUMN kind text NOT NULL DEFAULT 'projection'
    CHECK (kind IN ('projection', 'metric_output'));
ALTER TABLE datasets ADD COLUMN metric_id text UNIQUE REFERENCES metrics (id) ON DELETE SET NULL;
ALTER TABLE datasets DROP CONSTRAINT datasets_id_identifier;
ALTER TABLE datasets ADD CONSTRAINT datasets_id_identifier CHECK (
    CASE kind
        WHEN 'projection' THEN id ~ '^[A-Za-z0-9_.-]{1,128}$' AND metric_id IS NULL
        ELSE id ~ '^metric:[A-Za-z0-9_.-]{1,128}$'
    END
);

-- A metric's input on `metric:X` names the series `X` (the run request's seriesCode, §8); a
-- dataset input keeps both foreign keys through `provided_series`, which is NULL (and so
-- checked by neither) for a metric output.
ALTER TABLE metric_dependencies DROP CONSTRAINT metric_dependencies_series_code_fkey;
ALTER TABLE metric_dependencies DROP CONSTRAINT metric_dependencies_dataset_id_series_code_fkey;
ALTER TABLE metric_dependencies ADD COLUMN provided_series text
    GENERATED ALWAYS AS (CASE WHEN dataset_id LIKE 'metric:%' THEN NULL ELSE series_code END)
    STORED;
ALTER TABLE metric_dependencies ADD CONSTRAINT metric_dependencies_series_code_fkey
    FOREIGN KEY (provided_series) REFERENCES series (code);
ALTER TABLE metric_dependencies ADD CONSTRAINT metric_dependencies_dataset_id_series_code_fkey
    FOREIGN KEY (dataset_id, provided_series) REFERENCES dataset_series (dataset_id, series_code);
ALTER TABLE metric_dependencies ADD CONSTRAINT metric_dependencies_dataset_id_fkey
    FOREIGN KEY (dataset_id) REFERENCES datasets (id);

-- A version of `metric:X` is the output of one run: `run_id`, and `formed_at`, when that run's
-- chain was formed, which orders the versions of a metric output ("freshest wins" among them is
-- decided by formation: a late success of an older run never replaces a newer run's output).
ALTER TABLE dataset_updates ADD COLUMN run_id uuid REFERENCES metric_runs (id);
ALTER TABLE dataset_updates ADD COLUMN formed_at timestamptz;
ALTER TABLE dataset_updates ADD CONSTRAINT dataset_updates_output_of_a_run
    CHECK ((run_id IS NULL) = (formed_at IS NULL));
CREATE UNIQUE INDEX dataset_updates_one_version_per_run ON dataset_updates (run_id)
    WHERE run_id IS NOT NULL;

-- Data time (§8): the oldest effective time of the external versions behind a succeeded run.
-- Definition version: the digest of a metric's canonical expression and resolved inputs, kept
-- on the metric and recorded on each run formed with it.
ALTER TABLE metric_runs ADD COLUMN data_time timestamptz;
ALTER TABLE metric_runs ADD COLUMN definition_version text;
ALTER TABLE metrics ADD COLUMN definition_version text NOT NULL DEFAULT '';

CREATE FUNCTION metric_output_dataset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.code IS NOT DISTINCT FROM OLD.code THEN
        RETURN NEW;
    END IF;
    UPDATE datasets SET metric_id = NULL
    WHERE metric_id = NEW.id AND id <> 'metric:' || NEW.code;
    INSERT INTO datasets (id, name, kind, metric_id)
    VALUES ('metric:' || NEW.code, NEW.code, 'metric_output', NEW.id)
    ON CONFLICT (id) DO UPDATE SET metric_id = EXCLUDED.metric_id, enabled = true;
    RETURN NEW;
END
$$;
CREATE TRIGGER metrics_output_dataset AFTER INSERT OR UPDATE OF code ON metrics
    FOR EACH ROW EXECUTE FUNCTION metric_output_dataset();

INSERT INTO datasets (id, name, kind, metric_id)
SELECT 'metric:' || code, code, 'metric_output', id FROM metrics;
