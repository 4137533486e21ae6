-- Sources: where events come from besides `start`. `config` holds the type's settings as JSON
-- (a webhook's verification, secret, methods, response mode); `routes` picks the trigger per
-- message. The counters are added to by each instance about once a second.
CREATE TABLE sources (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    trigger_id TEXT NOT NULL REFERENCES triggers (id),
    enabled BOOLEAN NOT NULL,
    input_path TEXT,
    routes TEXT,
    config TEXT NOT NULL,
    hook_token TEXT,
    received BIGINT NOT NULL DEFAULT 0,
    fired BIGINT NOT NULL DEFAULT 0,
    rejected BIGINT NOT NULL DEFAULT 0,
    last_event_at TIMESTAMP,
    last_error TEXT,
    created TIMESTAMP NOT NULL,
    updated TIMESTAMP NOT NULL
);
CREATE INDEX sources_trigger_id ON sources (trigger_id);

-- The last messages each source refused, with why: nothing vanishes silently. At most 100 are
-- kept per source.
CREATE TABLE source_rejections (
    id TEXT PRIMARY KEY NOT NULL,
    source_id TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    at TIMESTAMP NOT NULL,
    reason TEXT NOT NULL,
    message TEXT NOT NULL,
    excerpt TEXT NOT NULL
);
CREATE INDEX source_rejections_source ON source_rejections (source_id, at);

INSERT INTO revisions (name, value) VALUES ('sources', 0);
