ALTER TABLE events DROP COLUMN depth;
DROP INDEX subscriptions_chain_trigger;
ALTER TABLE subscriptions DROP COLUMN chain_input_path;
ALTER TABLE subscriptions DROP COLUMN chain_trigger_id;
