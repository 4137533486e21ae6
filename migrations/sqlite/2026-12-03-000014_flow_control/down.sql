DROP TABLE flow_permits;
DROP TABLE subscription_flow;
ALTER TABLE subscriptions DROP COLUMN max_in_flight;
ALTER TABLE subscriptions DROP COLUMN rate_limit;
