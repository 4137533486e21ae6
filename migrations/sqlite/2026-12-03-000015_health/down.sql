ALTER TABLE sources DROP COLUMN failing_since;
DROP TABLE subscription_health;
