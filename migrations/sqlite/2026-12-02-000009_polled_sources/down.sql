DROP TABLE source_seen;
ALTER TABLE sources DROP COLUMN state;
ALTER TABLE sources DROP COLUMN next_poll_at;
