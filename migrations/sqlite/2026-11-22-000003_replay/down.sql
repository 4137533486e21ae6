DROP TABLE replays;
ALTER TABLE invocations DROP COLUMN deliver_when_disabled;
