-- Chained triggers: a TRIGGER subscription publishes on another trigger instead of sending HTTP.
-- Its target trigger and the JSONPath that picks the new events' input from the payload.
ALTER TABLE subscriptions ADD COLUMN chain_trigger_id TEXT;
ALTER TABLE subscriptions ADD COLUMN chain_input_path TEXT;
CREATE INDEX subscriptions_chain_trigger ON subscriptions (chain_trigger_id);

-- How many chained deliveries led to an event: 0 for a published, scheduled or inbound one.
ALTER TABLE events ADD COLUMN depth INTEGER NOT NULL DEFAULT 0;
