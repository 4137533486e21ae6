-- Health: a subscription whose deliveries have failed since `failing_since`, with no success
-- since (the row goes with the first success), and a source failing since its first failed
-- fetch or connection after it last worked. No foreign key: outcomes are recorded without
-- waiting on a subscription being deleted; the health sweep removes rows left behind.
CREATE TABLE subscription_health (
    subscription_id TEXT PRIMARY KEY NOT NULL,
    failing_since TIMESTAMP NOT NULL,
    failures INTEGER NOT NULL,
    last_error TEXT
);

ALTER TABLE sources ADD COLUMN failing_since TIMESTAMP;
