ALTER TABLE subscriptions DROP COLUMN client_key;
ALTER TABLE subscriptions DROP COLUMN client_certificate;
