-- The attempt that succeeded is kept on the invocation itself; the attempts table holds only
-- attempts that failed (and successes moved there when an invocation is replayed).
ALTER TABLE invocations ADD COLUMN success_started TIMESTAMP;
ALTER TABLE invocations ADD COLUMN success_duration_ms INTEGER;
ALTER TABLE invocations ADD COLUMN success_status INTEGER;
ALTER TABLE invocations ADD COLUMN success_response TEXT;

-- Partial indexes hold only the rows a delivery loop looks for: each query for due work reads
-- its index in order and stops after the batch, whatever the size of the backlog, and finished
-- invocations leave these indexes.
DROP INDEX invocations_due;
DROP INDEX invocations_lease;
CREATE INDEX invocations_pending ON invocations (next_attempt_at) WHERE state = 'PENDING';
CREATE INDEX invocations_leased ON invocations (lease_expires_at) WHERE state = 'IN_FLIGHT';
CREATE INDEX invocations_awaiting ON invocations (next_attempt_at) WHERE state = 'AWAITING';
CREATE INDEX invocations_dead ON invocations (created) WHERE state = 'DEAD';
