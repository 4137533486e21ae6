-- Triggers and subscriptions (with their signing secrets) are cached too: publishing keeps the
-- triggers it checks input against, the dispatcher the subscriptions it delivers to. A change
-- raises their counter, so every instance drops what it kept.
INSERT INTO revisions (name, value) VALUES ('triggers', 0), ('subscriptions', 0);
