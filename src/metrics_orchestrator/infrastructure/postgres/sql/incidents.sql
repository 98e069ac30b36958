-- Incidents, freshness facts, channels and the notification outbox (SPEC §9).

-- name: record_occurrence
-- Opens the (kind, subject) incident, or adds to the open one; `opened` tells which.
INSERT INTO incidents AS i (kind, subject, summary, count, opened_at, last_seen_at)
VALUES (%(kind)s, %(subject)s, %(summary)s, 1, %(at)s, %(at)s)
ON CONFLICT (kind, subject) WHERE resolved_at IS NULL DO UPDATE
SET count = i.count + %(increment)s,
    last_seen_at = GREATEST(i.last_seen_at, EXCLUDED.last_seen_at),
    summary = CASE WHEN %(increment)s > 0 THEN EXCLUDED.summary ELSE i.summary END
RETURNING i.*, (xmax = 0) AS opened

-- name: add_occurrence
INSERT INTO incident_occurrences (incident_id, seq, occurred_at, run_id, event_key, detail)
VALUES (%(incident_id)s, %(seq)s, %(at)s, %(run_id)s, %(event_key)s, %(detail)s)
ON CONFLICT DO NOTHING

-- name: resolve_incidents
UPDATE incidents
SET resolved_at = %(at)s, resolution = %(resolution)s
WHERE kind = ANY(%(kinds)s::text[]) AND subject = ANY(%(subjects)s::text[])
  AND resolved_at IS NULL
RETURNING *

-- name: open_subjects
SELECT subject FROM incidents
WHERE kind = %(kind)s AND resolved_at IS NULL
  AND (%(subjects)s::text[] IS NULL OR subject = ANY(%(subjects)s::text[]))

-- name: dataset_objectives
SELECT d.id AS dataset_id, d.expected_every, d.grace, d.created_at AS registered_at,
       u.effective_at AS freshest_at
FROM datasets d
LEFT JOIN dataset_updates u ON u.id = d.freshest_update_id
WHERE d.enabled AND d.kind = 'projection' AND d.expected_every IS NOT NULL
  AND (%(ids)s::text[] IS NULL OR d.id = ANY(%(ids)s::text[]))

-- name: metric_objectives
SELECT m.code AS metric_code, m.max_data_age, m.created_at AS registered_at,
       (SELECT r.data_time FROM metric_runs r
        WHERE r.metric_id = m.id AND r.status = 'succeeded' AND r.data_time IS NOT NULL
        ORDER BY r.completed_at DESC, r.created_at DESC LIMIT 1) AS data_time
FROM metrics m
WHERE m.enabled AND m.max_data_age IS NOT NULL
  AND (%(codes)s::text[] IS NULL OR m.code = ANY(%(codes)s::text[]))

-- name: open_counts
SELECT kind, count(*) AS open FROM incidents WHERE resolved_at IS NULL GROUP BY kind

-- name: try_lock_freshness
-- One replica evaluates freshness at a time; the others skip their tick's evaluation.
SELECT pg_try_advisory_xact_lock(hashtext('metrics_orchestrator.freshness')) AS locked

-- name: list_incidents
SELECT * FROM incidents
WHERE (NOT %(open_only)s OR resolved_at IS NULL)
  AND (%(kind)s::text IS NULL OR kind = %(kind)s)
  AND (%(subject)s::text IS NULL OR subject = %(subject)s)
  AND (%(before)s::bigint IS NULL OR id < %(before)s)
ORDER BY id DESC
LIMIT %(limit)s

-- name: get_incident
SELECT * FROM incidents WHERE id = %(id)s

-- name: incident_occurrences
SELECT seq, occurred_at, run_id, event_key, detail FROM incident_occurrences
WHERE incident_id = %(id)s
ORDER BY seq DESC
LIMIT %(limit)s

-- name: upsert_channel
INSERT INTO notification_channels AS c
    (name, url, format, secret, kinds, metrics, enabled, created_at, updated_at)
VALUES (%(name)s, %(url)s, %(format)s, %(secret)s, %(kinds)s, %(metrics)s, %(enabled)s,
        %(at)s, %(at)s)
ON CONFLICT (name) DO UPDATE
SET url = EXCLUDED.url, format = EXCLUDED.format, secret = EXCLUDED.secret,
    kinds = EXCLUDED.kinds, metrics = EXCLUDED.metrics, enabled = EXCLUDED.enabled,
    updated_at = EXCLUDED.updated_at

-- name: disable_channel
UPDATE notification_channels SET enabled = false, updated_at = %(at)s
WHERE name = %(name)s

-- name: channels
SELECT c.name, c.url, c.format, c.secret IS NOT NULL AS has_secret, c.kinds, c.metrics,
       c.enabled, c.created_at, c.updated_at,
       (SELECT count(*) FROM notification_deliveries d
        WHERE d.channel = c.name AND d.state = 'pending') AS pending,
       (SELECT count(*) FROM notification_deliveries d
        WHERE d.channel = c.name AND d.state = 'undeliverable') AS undeliverable,
       last.last_attempt_at, last.state AS last_state, last.last_result
FROM notification_channels c
LEFT JOIN LATERAL (
    SELECT d.last_attempt_at, d.state, d.last_result FROM notification_deliveries d
    WHERE d.channel = c.name AND d.last_attempt_at IS NOT NULL
    ORDER BY d.last_attempt_at DESC LIMIT 1
) AS last ON true
ORDER BY c.name

-- name: channel_target
SELECT name, url, format, secret FROM notification_channels WHERE name = %(name)s

-- name: listening_channels
SELECT name, format, kinds, metrics FROM notification_channels WHERE enabled ORDER BY name

-- name: enqueue_deliveries
INSERT INTO notification_deliveries
    (id, channel, incident_id, change, body, created_at, next_attempt_at)
SELECT * , f.created_at
FROM unnest(%(ids)s::uuid[], %(channels)s::text[], %(incidents)s::bigint[], %(changes)s::text[],
            %(bodies)s::text[], %(created)s::timestamptz[])
     AS f(id, channel, incident_id, change, body, created_at)

-- name: claim_due_deliveries
-- The lease: `next_attempt_at` moves past this notifier's try, so a notifier that dies
-- mid-delivery leaves the row due again once the lease ends (at least once, never lost).
UPDATE notification_deliveries d
SET next_attempt_at = %(lease_until)s, attempts = d.attempts + 1, last_attempt_at = %(now)s
FROM notification_channels c
WHERE c.name = d.channel
  AND d.id IN (
      SELECT id FROM notification_deliveries
      WHERE state = 'pending' AND next_attempt_at <= %(now)s
      ORDER BY next_attempt_at, created_at
      LIMIT %(limit)s
      FOR UPDATE SKIP LOCKED
  )
RETURNING d.id, d.channel, c.url, c.secret, d.change, d.body, d.attempts, d.created_at

-- name: finish_delivery
UPDATE notification_deliveries
SET state = %(state)s, last_result = %(result)s, next_attempt_at = %(next_attempt_at)s,
    finished_at = CASE WHEN %(state)s = 'pending' THEN NULL ELSE %(at)s END
WHERE id = %(id)s AND attempts = %(attempts)s AND state = 'pending'

-- name: record_sent_delivery
INSERT INTO notification_deliveries
    (id, channel, incident_id, change, body, state, attempts, created_at, next_attempt_at,
     last_attempt_at, last_result, finished_at)
VALUES (%(id)s, %(channel)s, %(incident_id)s, %(change)s, %(body)s, %(state)s, 1,
        %(created_at)s, %(at)s, %(at)s, %(result)s, %(at)s)

-- name: deliveries
SELECT id, channel, incident_id, change, state, attempts, created_at, next_attempt_at,
       last_attempt_at, last_result
FROM notification_deliveries
WHERE (%(incident_id)s::bigint IS NULL OR incident_id = %(incident_id)s)
  AND (%(state)s::text IS NULL OR state = %(state)s)
ORDER BY created_at DESC, id
LIMIT %(limit)s

-- name: delivery_counts
-- For Prometheus: what waits and what was given up on. Delivered rows are history, not read.
SELECT state, count(*) AS deliveries FROM notification_deliveries
WHERE state IN ('pending', 'undeliverable')
GROUP BY state

-- name: notify_deliveries_queued
SELECT pg_notify(%(channel)s, '')
