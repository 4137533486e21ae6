-- The purge reads delivered invocations in the order they finished, and expired idempotency
-- keys, each from its own index, so a batch costs what it removes, not the table's size.
CREATE INDEX invocations_delivered ON invocations (completed) WHERE state = 'DELIVERED';
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
