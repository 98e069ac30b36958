-- Undo 005. A dismissed entry goes back to the inbox as rejected (its reason is dropped with
-- the column; the error and raw body stay), and replay attempts are no longer counted.
ALTER TABLE event_log DROP CONSTRAINT IF EXISTS event_log_replay_attempts_bound;
ALTER TABLE event_log DROP CONSTRAINT IF EXISTS event_log_dismiss_reason_length;
ALTER TABLE event_log DROP CONSTRAINT IF EXISTS event_log_dismissal;
UPDATE event_log SET status = 'rejected' WHERE status = 'dismissed';
ALTER TABLE event_log DROP COLUMN IF EXISTS replay_attempts;
ALTER TABLE event_log DROP COLUMN IF EXISTS dismiss_reason;
ALTER TABLE event_log DROP COLUMN IF EXISTS dismissed_at;
ALTER TABLE event_log DROP CONSTRAINT IF EXISTS event_log_status_check;
ALTER TABLE event_log ADD CONSTRAINT event_log_status_check
    CHECK (status IN ('processed', 'duplicate', 'rejected'));
