DROP TABLE idempotency_keys;
DROP TABLE attempts;
DROP TABLE invocations;
DROP TABLE events;
ALTER TABLE subscriptions DROP COLUMN disabled_reason;
