-- A client certificate a subscription presents to its subscriber (mTLS): the certificate as
-- PEM, and its private key sealed like the other subscriber credentials.
ALTER TABLE subscriptions ADD COLUMN client_certificate TEXT;
ALTER TABLE subscriptions ADD COLUMN client_key TEXT;
