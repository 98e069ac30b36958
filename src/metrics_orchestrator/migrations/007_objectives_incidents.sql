-- 007: freshness objectives, incidents and notifications (SPEC §9, issue 24).
-- Objectives are optional columns of the catalog; incidents are what the control plane opened
-- and resolved; notification_channels and notification_deliveries are the channels and the
-- outbox a notifier in every replica delivers from (FOR UPDATE SKIP LOCKED).

-- A dataset is late when its freshest update is older than expected_every + grace; a metric is
-- overdue when its latest success's data time is older than max_data_age. Bounds as in §9.
ALTER TABLE datasets ADD COLUMN expected_every interval
    CHECK (expected_every BETWEEN interval '1 second' AND interval '366 days');
ALTER TABLE datasets ADD COLUMN grace interval NOT NULL DEFAULT interval '0'
    CHECK (grace BETWEEN interval '0' AND interval '366 days');
ALTER TABLE metrics ADD COLUMN max_data_age interval
    CHECK (max_data_age BETWEEN interval '1 second' AND interval '366 days');

CREATE TABLE incidents (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN (
                     'run_failed', 'dispatch_failed', 'metric_overdue', 'dataset_late',
                     'event_rejected')),
    -- the metric code, dataset id or event key the incident is about
    subject      text NOT NULL CHECK (subject <> ''),
    summary      text NOT NULL,
    count        integer NOT NULL DEFAULT 1 CHECK (count >= 1),
    opened_at    timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    resolved_at  timestamptz,
    resolution   text,
    CHECK ((resolved_at IS NULL) = (resolution IS NULL))
);
-- At most one open incident per (kind, subject): a metric failing fifty times is one incident.
CREATE UNIQUE INDEX incidents_one_open ON incidents (kind, subject) WHERE resolved_at IS NULL;
CREATE INDEX incidents_newest ON incidents (opened_at DESC, id DESC);

-- Each occurrence of an incident's cause: the run or event involved (links for people).
CREATE TABLE incident_occurrences (
    incident_id bigint NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    seq         integer NOT NULL,
    occurred_at timestamptz NOT NULL,
    run_id      uuid REFERENCES metric_runs (id) ON DELETE SET NULL,
    event_key   text,
    detail      text NOT NULL DEFAULT '',
    PRIMARY KEY (incident_id, seq)
);

CREATE TABLE notification_channels (
    name       text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.-]{1,128}$'),
    url        text NOT NULL CHECK (url ~ '^https?://' AND length(url) <= 2048),
    format     text NOT NULL CHECK (format IN ('json', 'slack')),
    -- used to sign bodies (HMAC-SHA256); never read back by any API
    secret     text,
    kinds      text[],
    metrics    text[],
    enabled    boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The outbox: one row per (incident change, matching channel), written in the transaction of
-- the change. `id` is the delivery id receivers see, stable across retries; `body` is the exact
-- text posted. `next_attempt_at` doubles as the lease of the notifier that claimed the row.
CREATE TABLE notification_deliveries (
    id              uuid PRIMARY KEY,
    channel         text NOT NULL REFERENCES notification_channels (name) ON DELETE CASCADE,
    -- NULL only for a test notification (`notify test CHANNEL`)
    incident_id     bigint REFERENCES incidents (id) ON DELETE CASCADE,
    change          text NOT NULL CHECK (change IN ('incident.opened', 'incident.resolved',
                                                    'test')),
    body            text NOT NULL,
    state           text NOT NULL DEFAULT 'pending'
                        CHECK (state IN ('pending', 'delivered', 'undeliverable')),
    attempts        integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    last_attempt_at timestamptz,
    last_result     text,
    finished_at     timestamptz,
    CHECK ((change = 'test') = (incident_id IS NULL))
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX notification_deliveries_by_channel
    ON notification_deliveries (channel, created_at DESC);
