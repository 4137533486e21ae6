-- The attempt that succeeded is kept on the invocation itself; the attempts table holds only
-- attempts that failed (and successes moved there when an invocation is replayed).
ALTER TABLE invocations ADD COLUMN success_started TIMESTAMP;
ALTER TABLE invocations ADD COLUMN success_duration_ms INTEGER;
ALTER TABLE invocations ADD COLUMN success_status INTEGER;
ALTER TABLE invocations ADD COLUMN success_response TEXT;

-- Ordered delivery: a subscription delivers in publish order, per subscription or per key.
-- An invocation's order_key names its stream ('' for the whole subscription); NULL is unordered.
ALTER TABLE subscriptions ADD COLUMN ordering TEXT NOT NULL DEFAULT 'NONE';
ALTER TABLE subscriptions ADD COLUMN ordering_key TEXT;
ALTER TABLE invocations ADD COLUMN order_key TEXT;

-- Partial indexes hold only the rows a delivery loop looks for: each query for due work reads
-- its index in order and stops after the batch, whatever the size of the backlog, and finished
-- invocations leave these indexes.
DROP INDEX invocations_due;
DROP INDEX invocations_lease;
CREATE INDEX invocations_pending ON invocations (next_attempt_at)
    WHERE state = 'PENDING' AND order_key IS NULL;
CREATE INDEX invocations_pending_ordered ON invocations (next_attempt_at)
    WHERE state = 'PENDING' AND order_key IS NOT NULL;
-- The unfinished invocations of each ordered stream, oldest first: the head is the one with none
-- before it.
CREATE INDEX invocations_ordered ON invocations (subscription_id, order_key, created, id)
    WHERE order_key IS NOT NULL AND state IN ('PENDING', 'IN_FLIGHT', 'AWAITING');
CREATE INDEX invocations_leased ON invocations (lease_expires_at) WHERE state = 'IN_FLIGHT';
CREATE INDEX invocations_awaiting ON invocations (next_attempt_at) WHERE state = 'AWAITING';
CREATE INDEX invocations_dead ON invocations (created) WHERE state = 'DEAD';

-- Every delivering instance, with its last heartbeat: work leased to one that has gone silent
-- is taken over at once instead of after its leases expire.
CREATE TABLE instances (
    id TEXT PRIMARY KEY NOT NULL,
    started TIMESTAMP NOT NULL,
    heartbeat_at TIMESTAMP NOT NULL
);
