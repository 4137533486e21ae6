DROP TABLE schedule_ticks;
ALTER TABLE triggers DROP COLUMN timezone;
ALTER TABLE triggers DROP COLUMN schedule;
ALTER TABLE invocations DROP COLUMN output;
