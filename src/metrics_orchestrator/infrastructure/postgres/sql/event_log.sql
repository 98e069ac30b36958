-- name: record_event
INSERT INTO event_log (event_key, event_type, source, payload, raw_body, status, error,
                       received_at, processed_at)
VALUES (%(event_key)s, %(event_type)s, %(source)s, %(payload)s, %(raw_body)s, %(status)s,
        %(error)s, %(received_at)s, %(processed_at)s)
RETURNING id;

-- name: record_events
-- Several rows in one statement, in the order given (their ids follow it).
INSERT INTO event_log (event_key, event_type, source, payload, raw_body, status, error,
                       received_at, processed_at)
SELECT event_key, event_type, source, payload, raw_body, status, error, received_at,
       processed_at
FROM unnest(%(event_keys)b::text[], %(event_types)b::text[], %(sources)b::text[],
            %(payloads)b::jsonb[], %(raw_bodies)b::text[], %(statuses)b::text[],
            %(errors)b::text[], %(received_ats)b::timestamptz[],
            %(processed_ats)b::timestamptz[]) WITH ORDINALITY
     AS t(event_key, event_type, source, payload, raw_body, status, error, received_at,
          processed_at, n)
ORDER BY n;

-- name: was_processed
SELECT EXISTS (SELECT 1 FROM event_log WHERE event_key = %(event_key)s AND status = 'processed') AS processed;

-- name: get_event
SELECT id, event_key, event_type, status, source, payload, raw_body,
       char_length(raw_body) AS raw_body_length, error, received_at,
       processed_at, replayed_at, replay_attempts, dismissed_at, dismiss_reason
FROM event_log WHERE id = %(id)s;

-- name: latest_with_key
SELECT id, event_key, event_type, status, source, payload, raw_body,
       char_length(raw_body) AS raw_body_length, error, received_at,
       processed_at, replayed_at, replay_attempts, dismissed_at, dismiss_reason
FROM event_log
WHERE event_key = %(event_key)s AND (%(status)s::text IS NULL OR status = %(status)s)
ORDER BY id DESC
LIMIT 1;

-- name: list_events
-- A page holds the first %(body_chars)s characters of each raw body and its whole length: a
-- page of rejected 256 KiB bodies is not read whole (GET /events/{key} has one in full).
SELECT id, event_key, event_type, status, source, payload,
       left(raw_body, %(body_chars)s) AS raw_body, char_length(raw_body) AS raw_body_length,
       error, received_at, processed_at, replayed_at, replay_attempts, dismissed_at,
       dismiss_reason
FROM event_log
WHERE (%(status)s::text IS NULL OR status = %(status)s)
  AND (%(before_id)s::bigint IS NULL OR id < %(before_id)s)
ORDER BY id DESC
LIMIT %(limit)s;

-- name: mark_replayed
UPDATE event_log SET replayed_at = %(at)s WHERE id = %(id)s;

-- name: record_rejected_again
-- A replay rejected again updates the inbox entry it came from: the new reason and time, one
-- more attempt. Only an entry still awaiting replay (rejected, not replayed) is changed.
UPDATE event_log
SET error = %(error)s, processed_at = %(processed_at)s, replay_attempts = replay_attempts + 1
WHERE id = %(replaces)s AND status = %(status)s AND replayed_at IS NULL
RETURNING id;

-- name: dismiss_event
UPDATE event_log
SET status = %(to)s, dismissed_at = %(at)s, dismiss_reason = %(reason)s
WHERE id = %(id)s AND status = %(from)s AND replayed_at IS NULL;
