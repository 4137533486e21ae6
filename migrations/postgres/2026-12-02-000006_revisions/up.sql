-- A counter per kind of cached data, raised in the transaction that changes it. Every instance
-- reads these counters a few times a second and empties its caches of that kind when one moved,
-- so a change made elsewhere (another instance, or the CLI on the same database) is seen
-- promptly. 'clients': API clients and their tokens.
CREATE TABLE revisions (
    name TEXT PRIMARY KEY NOT NULL,
    value BIGINT NOT NULL
);
INSERT INTO revisions (name, value) VALUES ('clients', 0);
