-- 001: the whole data model of SPEC §2-§5.
-- Names are part of the product's operator interface: do not rename columns.

CREATE TABLE datasets (
    id          text PRIMARY KEY CHECK (id <> ''),
    name        text NOT NULL DEFAULT '',
    description text NOT NULL DEFAULT '',
    bucket      text NOT NULL DEFAULT '',
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE series (
    code        text PRIMARY KEY CHECK (code <> ''),
    name        text NOT NULL DEFAULT '',
    description text NOT NULL DEFAULT '',
    unit        text NOT NULL DEFAULT '',
    frequency   text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE dataset_series (
    dataset_id  text NOT NULL REFERENCES datasets (id),
    series_code text NOT NULL REFERENCES series (code),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dataset_id, series_code)
);
CREATE INDEX dataset_series_by_series ON dataset_series (series_code);

CREATE TABLE metrics (
    id               text PRIMARY KEY CHECK (id <> ''),
    code             text NOT NULL UNIQUE CHECK (code <> ''),
    expression_type  text NOT NULL
                     CHECK (expression_type IN ('series_math', 'window_op', 'composite')),
    expression_json  jsonb NOT NULL,
    frequency        text NOT NULL DEFAULT '',
    unit             text NOT NULL DEFAULT '',
    description      text NOT NULL DEFAULT '',
    required_days    integer NOT NULL CHECK (required_days >= 1),
    trigger_policy   text NOT NULL DEFAULT 'all_new'
                     CHECK (trigger_policy IN ('all_new', 'any_new')),
    max_attempts     integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    enabled          boolean NOT NULL DEFAULT true,
    -- The last run this metric got automatically (SPEC §5.3 "M's last automatic run"),
    -- kept here so that intake cost does not grow with run history. FK added below.
    last_automatic_run_id uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE metric_dependencies (
    metric_id   text NOT NULL REFERENCES metrics (id) ON DELETE CASCADE,
    series_code text NOT NULL REFERENCES series (code),
    dataset_id  text NOT NULL,
    -- first-seen order of the series in the expression: the order of the request's `inputs`
    position    integer NOT NULL CHECK (position >= 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (metric_id, series_code),
    -- a metric may only depend on a dataset for a series that dataset provides
    FOREIGN KEY (dataset_id, series_code) REFERENCES dataset_series (dataset_id, series_code)
);
CREATE INDEX metric_dependencies_by_dataset ON metric_dependencies (dataset_id, metric_id);

CREATE TABLE dataset_updates (
    id                    uuid PRIMARY KEY,
    -- receipt order, the final tie-breaker of "freshest wins" (SPEC §5.2)
    seq                   bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    event_key             text NOT NULL UNIQUE,
    dataset_id            text NOT NULL REFERENCES datasets (id),
    bucket                text NOT NULL,
    version_manifest_path text NOT NULL CHECK (version_manifest_path <> ''),
    projections_path      text NOT NULL CHECK (projections_path <> ''),
    occurred_at           timestamptz,
    received_at           timestamptz NOT NULL,
    effective_at          timestamptz NOT NULL,
    payload               jsonb NOT NULL,
    CHECK (effective_at = coalesce(occurred_at, received_at))
);
CREATE INDEX dataset_updates_freshest
    ON dataset_updates (dataset_id, effective_at DESC, received_at DESC, seq DESC);

CREATE TABLE metric_runs (
    id                  uuid PRIMARY KEY,
    metric_id           text NOT NULL REFERENCES metrics (id),
    status              text NOT NULL CHECK (status IN (
                            'pending_dependencies', 'queued', 'dispatched', 'running',
                            'succeeded', 'failed', 'timed_out', 'canceled')),
    trigger             text NOT NULL CHECK (trigger IN ('automatic', 'manual', 'retry')),
    attempt             integer NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    retry_of            uuid REFERENCES metric_runs (id),
    inputs_fingerprint  text,
    request_payload     jsonb,
    not_before          timestamptz,
    progress            double precision CHECK (progress >= 0 AND progress <= 1),
    dispatch_attempts   integer NOT NULL DEFAULT 0 CHECK (dispatch_attempts >= 0),
    last_dispatch_error text,
    status_reason       text,
    error               text,
    version_ts          text,
    output_manifest     text,
    row_count           bigint CHECK (row_count >= 0),
    created_at          timestamptz NOT NULL,
    queued_at           timestamptz,
    dispatched_at       timestamptz,
    started_at          timestamptz,
    last_heartbeat_at   timestamptz,
    completed_at        timestamptz,
    updated_at          timestamptz NOT NULL,
    -- automatic retries always chain to the run they retry; a manual retry may too
    CHECK (trigger <> 'retry' OR retry_of IS NOT NULL),
    CHECK (retry_of IS NOT NULL OR attempt = 1),
    -- past pending_dependencies a run always carries its outbox payload and inputs
    CHECK (status IN ('pending_dependencies', 'canceled')
           OR (request_payload IS NOT NULL AND inputs_fingerprint IS NOT NULL
               AND queued_at IS NOT NULL)),
    CHECK (status <> 'pending_dependencies' OR trigger = 'automatic')
);
-- SPEC §5.3.5: at most one open pending run per metric
CREATE UNIQUE INDEX metric_runs_one_pending_per_metric
    ON metric_runs (metric_id) WHERE status = 'pending_dependencies';
-- SPEC §5.3: a metric never runs automatically twice on the same input set
CREATE UNIQUE INDEX metric_runs_automatic_fingerprint
    ON metric_runs (metric_id, inputs_fingerprint)
    WHERE trigger = 'automatic' AND inputs_fingerprint IS NOT NULL;
CREATE INDEX metric_runs_dispatchable ON metric_runs (not_before, created_at)
    WHERE status = 'queued';
CREATE INDEX metric_runs_awaiting_start ON metric_runs (dispatched_at)
    WHERE status = 'dispatched';
CREATE INDEX metric_runs_awaiting_heartbeat ON metric_runs (last_heartbeat_at)
    WHERE status = 'running';
CREATE INDEX metric_runs_retry_due ON metric_runs (completed_at)
    WHERE status IN ('failed', 'timed_out');
CREATE INDEX metric_runs_by_metric ON metric_runs (metric_id, created_at DESC, id DESC);
CREATE INDEX metric_runs_by_created ON metric_runs (created_at DESC, id DESC);
CREATE INDEX metric_runs_by_status ON metric_runs (status, created_at DESC, id DESC);
CREATE UNIQUE INDEX metric_runs_one_retry_per_run ON metric_runs (retry_of)
    WHERE retry_of IS NOT NULL AND trigger = 'retry';

ALTER TABLE metrics ADD CONSTRAINT metrics_last_automatic_run_fk
    FOREIGN KEY (last_automatic_run_id) REFERENCES metric_runs (id);

CREATE TABLE metric_run_pending_datasets (
    run_id      uuid NOT NULL REFERENCES metric_runs (id) ON DELETE CASCADE,
    dataset_id  text NOT NULL REFERENCES datasets (id),
    update_id   uuid REFERENCES dataset_updates (id),
    received_at timestamptz,
    PRIMARY KEY (run_id, dataset_id),
    CHECK ((update_id IS NULL) = (received_at IS NULL))
);

-- Lineage: exactly the dataset updates a queued run consumed (SPEC §5.4).
CREATE TABLE run_dataset_updates (
    run_id     uuid NOT NULL REFERENCES metric_runs (id) ON DELETE CASCADE,
    dataset_id text NOT NULL REFERENCES datasets (id),
    update_id  uuid NOT NULL REFERENCES dataset_updates (id),
    PRIMARY KEY (run_id, dataset_id)
);
CREATE INDEX run_dataset_updates_by_update ON run_dataset_updates (update_id);

CREATE TABLE event_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_key    text NOT NULL,
    event_type   text NOT NULL,
    source       text NOT NULL DEFAULT '',
    payload      jsonb,
    raw_body     text,
    status       text NOT NULL CHECK (status IN ('processed', 'duplicate', 'rejected')),
    error        text,
    received_at  timestamptz NOT NULL,
    processed_at timestamptz NOT NULL,
    replayed_at  timestamptz,
    CHECK (status <> 'rejected' OR error IS NOT NULL)
);
CREATE INDEX event_log_by_key ON event_log (event_key, status);
CREATE INDEX event_log_by_status ON event_log (status, id DESC);
