DELETE FROM revisions WHERE name IN ('triggers', 'subscriptions');
