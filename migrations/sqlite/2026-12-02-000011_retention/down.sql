DROP INDEX idempotency_keys_expiry;
DROP INDEX invocations_delivered;
