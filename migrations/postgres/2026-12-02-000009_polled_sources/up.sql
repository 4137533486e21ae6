-- Polled sources (HTTP_POLL, MONITOR): when a source is next fetched, taken by one instance at a
-- time by moving it forward, and what a monitor last read (JSON: {"state", "value"}).
ALTER TABLE sources ADD COLUMN next_poll_at TIMESTAMP;
ALTER TABLE sources ADD COLUMN state TEXT;

-- The item ids each HTTP_POLL source has fired (at most 10,000 per source, the newest kept), so
-- a restart or another instance never fires an item twice.
CREATE TABLE source_seen (
    source_id TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    item_id TEXT NOT NULL,
    seen_at TIMESTAMP NOT NULL,
    PRIMARY KEY (source_id, item_id)
);
CREATE INDEX source_seen_age ON source_seen (source_id, seen_at);
