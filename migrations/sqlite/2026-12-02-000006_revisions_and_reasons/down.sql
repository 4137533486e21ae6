ALTER TABLE invocations DROP COLUMN dead_reason;
DROP TABLE revisions;
