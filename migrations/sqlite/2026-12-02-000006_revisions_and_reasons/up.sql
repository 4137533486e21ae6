-- A counter per kind of cached data, raised in the transaction that changes it. Every instance
-- reads these counters a few times a second and empties its caches of that kind when one moved,
-- so a change made elsewhere (another instance, or the CLI on the same database) is seen
-- promptly. 'clients': API clients and their tokens.
CREATE TABLE revisions (
    name TEXT PRIMARY KEY NOT NULL,
    value BIGINT NOT NULL
);
INSERT INTO revisions (name, value) VALUES ('clients', 0);

-- Why a dead invocation died, as a code (FAILED, DEADLINE_PASSED, SUBSCRIBER_ERROR, HELD);
-- last_error keeps the text shown to people.
ALTER TABLE invocations ADD COLUMN dead_reason TEXT;
UPDATE invocations SET dead_reason = CASE
    WHEN last_error = 'no complete callback arrived before the response deadline' THEN 'DEADLINE_PASSED'
    WHEN last_error LIKE 'the subscriber reported: %' THEN 'SUBSCRIBER_ERROR'
    WHEN last_error LIKE 'not sent: %' THEN 'HELD'
    ELSE 'FAILED' END
WHERE state = 'DEAD';
