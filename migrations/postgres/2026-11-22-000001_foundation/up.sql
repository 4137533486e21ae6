-- JSON documents are stored as TEXT on both backends: payloads are kept as the exact bytes received.
CREATE TABLE meta (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE triggers (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    description TEXT,
    input_schema TEXT NOT NULL,
    example_input TEXT NOT NULL,
    output_schema TEXT,
    example_output TEXT,
    params TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    created TIMESTAMP NOT NULL,
    updated TIMESTAMP NOT NULL
);

CREATE TABLE subscriptions (
    id TEXT PRIMARY KEY NOT NULL,
    trigger_id TEXT NOT NULL REFERENCES triggers (id),
    name TEXT NOT NULL,
    description TEXT,
    type TEXT NOT NULL,
    response_deadline TEXT NOT NULL,
    url TEXT NOT NULL,
    dispatch_mode TEXT NOT NULL,
    auth_type TEXT NOT NULL,
    basic_user TEXT,
    basic_password TEXT,
    bearer_token TEXT,
    enabled BOOLEAN NOT NULL,
    filter TEXT,
    created TIMESTAMP NOT NULL,
    updated TIMESTAMP NOT NULL
);
CREATE INDEX subscriptions_trigger_id ON subscriptions (trigger_id);

CREATE TABLE subscription_secrets (
    id TEXT PRIMARY KEY NOT NULL,
    subscription_id TEXT NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    secret TEXT NOT NULL,
    created TIMESTAMP NOT NULL,
    expires_at TIMESTAMP
);
CREATE INDEX subscription_secrets_subscription_id ON subscription_secrets (subscription_id);

CREATE TABLE api_clients (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP
);

CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL REFERENCES api_clients (id) ON DELETE CASCADE,
    scopes TEXT NOT NULL,
    created TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX api_tokens_client_id ON api_tokens (client_id);
