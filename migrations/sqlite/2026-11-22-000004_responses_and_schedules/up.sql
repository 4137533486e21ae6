-- The output a REQUEST_RESPONSE subscriber answered (SYNC) or completed with (ASYNC, DYNAMIC).
ALTER TABLE invocations ADD COLUMN output TEXT;

-- A trigger may fire on a 6-field cron schedule, read in a time zone (UTC when absent).
ALTER TABLE triggers ADD COLUMN schedule TEXT;
ALTER TABLE triggers ADD COLUMN timezone TEXT;

-- One row per fired tick: the primary key makes a tick fire once across all instances.
CREATE TABLE schedule_ticks (
    trigger_id TEXT NOT NULL,
    tick TIMESTAMP NOT NULL,
    event_id TEXT,
    created TIMESTAMP NOT NULL,
    PRIMARY KEY (trigger_id, tick)
);
