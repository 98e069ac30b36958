-- 005: the rejected-events inbox (issue 19). An entry an operator dismisses (an event that can
-- never be valid) leaves the inbox with status 'dismissed', keeping its error and raw body and
-- recording when and why; a replay that is rejected again updates the entry it came from
-- (its error and time) and counts the attempt, instead of adding a second entry.

ALTER TABLE event_log DROP CONSTRAINT IF EXISTS event_log_status_check;
ALTER TABLE event_log ADD CONSTRAINT event_log_status_check
    CHECK (status IN ('processed', 'duplicate', 'rejected', 'dismissed'));
ALTER TABLE event_log ADD COLUMN dismissed_at timestamptz;
ALTER TABLE event_log ADD COLUMN dismiss_reason text;
ALTER TABLE event_log ADD COLUMN replay_attempts integer NOT NULL DEFAULT 0;
-- a dismissed entry always says when and why; no other entry does
ALTER TABLE event_log ADD CONSTRAINT event_log_dismissal CHECK (
    (status = 'dismissed') = (dismissed_at IS NOT NULL AND dismiss_reason IS NOT NULL)
);
-- the bound of domain/events.py MAX_DISMISS_REASON
ALTER TABLE event_log ADD CONSTRAINT event_log_dismiss_reason_length
    CHECK (char_length(dismiss_reason) BETWEEN 1 AND 500);
ALTER TABLE event_log ADD CONSTRAINT event_log_replay_attempts_bound
    CHECK (replay_attempts >= 0);
