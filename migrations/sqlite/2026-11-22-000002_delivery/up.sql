-- Why a subscription stopped receiving events (set when a subscriber answers 410 Gone).
ALTER TABLE subscriptions ADD COLUMN disabled_reason TEXT;

-- One firing of a trigger: the exact payload bytes every subscriber receives.
CREATE TABLE events (
    id TEXT PRIMARY KEY NOT NULL,
    trigger_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    input TEXT NOT NULL,
    content_json TEXT NOT NULL,
    payload TEXT NOT NULL,
    created TIMESTAMP NOT NULL
);

-- One event for one subscription: what is delivered, retried and dead-lettered.
CREATE TABLE invocations (
    id TEXT PRIMARY KEY NOT NULL,
    event_id TEXT NOT NULL REFERENCES events (id),
    subscription_id TEXT NOT NULL,
    trigger_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL,
    lease_owner TEXT,
    lease_expires_at TIMESTAMP,
    secret TEXT NOT NULL,
    last_error TEXT,
    created TIMESTAMP NOT NULL,
    updated TIMESTAMP NOT NULL,
    completed TIMESTAMP
);
CREATE INDEX invocations_due ON invocations (state, next_attempt_at);
CREATE INDEX invocations_lease ON invocations (state, lease_expires_at);
CREATE INDEX invocations_subscription ON invocations (subscription_id, created);
CREATE INDEX invocations_event ON invocations (event_id);

-- Every HTTP request made for an invocation.
CREATE TABLE attempts (
    id TEXT PRIMARY KEY NOT NULL,
    invocation_id TEXT NOT NULL REFERENCES invocations (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    started TIMESTAMP NOT NULL,
    duration_ms INTEGER NOT NULL,
    status INTEGER,
    response TEXT,
    error TEXT
);
CREATE INDEX attempts_invocation ON attempts (invocation_id);

-- Publish requests already answered, by Idempotency-Key.
CREATE TABLE idempotency_keys (
    key TEXT PRIMARY KEY NOT NULL,
    request_hash TEXT NOT NULL,
    response TEXT NOT NULL,
    created TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
