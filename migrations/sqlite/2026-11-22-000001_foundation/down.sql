DROP TABLE api_tokens;
DROP TABLE api_clients;
DROP TABLE subscription_secrets;
DROP TABLE subscriptions;
DROP TABLE triggers;
DROP TABLE meta;
