-- Set by a forced replay: deliver even though the subscription is disabled.
ALTER TABLE invocations ADD COLUMN deliver_when_disabled BOOLEAN NOT NULL DEFAULT FALSE;

-- Every replay of an invocation: who asked, and when.
CREATE TABLE replays (
    id TEXT PRIMARY KEY NOT NULL,
    invocation_id TEXT NOT NULL REFERENCES invocations (id) ON DELETE CASCADE,
    replayed_by TEXT NOT NULL,
    replayed_at TIMESTAMP NOT NULL,
    forced BOOLEAN NOT NULL
);
CREATE INDEX replays_invocation ON replays (invocation_id);
