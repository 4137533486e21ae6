-- The W3C traceparent an event was published with (or started with it), sent on its deliveries.
ALTER TABLE events ADD COLUMN traceparent TEXT;
