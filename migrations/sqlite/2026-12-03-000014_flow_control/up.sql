-- Per-subscription flow control: the limits a subscription was given, and the state every
-- instance shares to keep them: the next start slot of its rate (a GCRA), the brake a 429 or
-- 503 put on it, and the requests each live instance holds permits for.
ALTER TABLE subscriptions ADD COLUMN rate_limit REAL;
ALTER TABLE subscriptions ADD COLUMN max_in_flight INTEGER;

CREATE TABLE subscription_flow (
    subscription_id TEXT PRIMARY KEY NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    next_slot TIMESTAMP NOT NULL,
    braked_rate REAL,
    braked_at TIMESTAMP
);

CREATE TABLE flow_permits (
    subscription_id TEXT NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    owner TEXT NOT NULL,
    permits INTEGER NOT NULL,
    PRIMARY KEY (subscription_id, owner)
);
