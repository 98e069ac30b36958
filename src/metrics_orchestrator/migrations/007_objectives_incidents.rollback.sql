-- Undo 007: objectives, incidents and the notification outbox are dropped with their history.
DROP TABLE IF EXISTS notification_deliveries;
DROP TABLE IF EXISTS notification_channels;
DROP TABLE IF EXISTS incident_occurrences;
DROP TABLE IF EXISTS incidents;
ALTER TABLE metrics DROP COLUMN IF EXISTS max_data_age;
ALTER TABLE datasets DROP COLUMN IF EXISTS grace, DROP COLUMN IF EXISTS expected_every;
