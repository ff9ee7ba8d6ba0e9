-- GET /report's episodes per hour, as per day (storage/report_rollup.py): report_hours holds the
-- episodes whose rows all lie in the hour and key, report_multi_hours the rows of the others,
-- so that a report's partial days (its first day, today) read their episodes from the rollup
-- too, not from the rows. The triggers now mark the hours of every row of a changed episode
-- dirty (as the days); every hour is dirty again and the hours' spans are dropped (the rollup
-- actor computes them again; reports read the rows meanwhile).
ALTER TABLE report_hours ADD COLUMN episodes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE report_hours ADD COLUMN resolved_episodes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE report_hours ADD COLUMN quick_episodes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE report_hours ADD COLUMN resolved_ns REAL NOT NULL DEFAULT 0;
CREATE TABLE report_multi_hours (
    hour         INTEGER NOT NULL,
    fingerprint  TEXT    NOT NULL,
    starts_at    INTEGER NOT NULL,
    alertname    TEXT    NOT NULL,
    namespace    TEXT,
    status       TEXT    NOT NULL,
    ends_at      INTEGER NOT NULL
);
CREATE INDEX ix_report_multi_hours_hour ON report_multi_hours (hour);
INSERT INTO report_dirty_hours (hour) SELECT DISTINCT first_seen / 3600000000000 FROM alert_events
WHERE true ON CONFLICT (hour) DO UPDATE SET gen = gen + 1;
DELETE FROM report_spans WHERE hi - lo < 24;
DELETE FROM report_spans_built WHERE hi - lo < 24;

DROP TRIGGER report_events_inserted;
DROP TRIGGER report_events_deleted;
DROP TRIGGER report_events_changed;
CREATE TRIGGER report_events_inserted AFTER INSERT ON alert_events BEGIN
    INSERT INTO report_keys (alertname, namespace)
    SELECT NEW.alertname, NEW.namespace
    WHERE NOT EXISTS (
        SELECT 1 FROM report_keys WHERE alertname = NEW.alertname AND namespace IS NEW.namespace
    );
    INSERT INTO report_dirty_hours (hour)
    SELECT first_seen / 3600000000000 FROM alert_events
    WHERE fingerprint = NEW.fingerprint AND starts_at = NEW.starts_at
    ON CONFLICT (hour) DO UPDATE SET gen = gen + 1;
    INSERT INTO report_dirty (day)
    SELECT first_seen / 86400000000000 FROM alert_events
    WHERE fingerprint = NEW.fingerprint AND starts_at = NEW.starts_at
    ON CONFLICT (day) DO UPDATE SET gen = gen + 1;
END;
CREATE TRIGGER report_events_deleted AFTER DELETE ON alert_events BEGIN
    INSERT INTO report_dirty_hours (hour) VALUES (OLD.first_seen / 3600000000000)
    ON CONFLICT (hour) DO UPDATE SET gen = gen + 1;
    INSERT INTO report_dirty_hours (hour)
    SELECT first_seen / 3600000000000 FROM alert_events
    WHERE fingerprint = OLD.fingerprint AND starts_at = OLD.starts_at
    ON CONFLICT (hour) DO UPDATE SET gen = gen + 1;
    INSERT INTO report_dirty (day) VALUES (OLD.first_seen / 86400000000000)
    ON CONFLICT (day) DO UPDATE SET gen = gen + 1;
    INSERT INTO report_dirty (day)
    SELECT first_seen / 86400000000000 FROM alert_events
    WHERE fingerprint = OLD.fingerprint AND starts_at = OLD.starts_at
    ON CONFLICT (day) DO UPDATE SET gen = gen + 1;
END;
CREATE TRIGGER report_events_changed AFTER UPDATE ON alert_events
WHEN NEW.status IS NOT OLD.status OR NEW.first_seen IS NOT OLD.first_seen
  OR NEW.alertname IS NOT OLD.alertname OR NEW.namespace IS NOT OLD.namespace
  OR NEW.fingerprint IS NOT OLD.fingerprint OR NEW.starts_at IS NOT OLD.starts_at
  OR NEW.ends_at IS NOT OLD.ends_at OR NEW.id IS NOT OLD.id
BEGIN
    INSERT INTO report_keys (alertname, namespace)
    SELECT NEW.alertname, NEW.namespace
    WHERE NOT EXISTS (
        SELECT 1 FROM report_keys WHERE alertname = NEW.alertname AND namespace IS NEW.namespace
    );
    INSERT INTO report_dirty_hours (hour) VALUES (OLD.first_seen / 3600000000000)
    ON CONFLICT (hour) DO UPDATE SET gen = gen + 1;
    INSERT INTO report_dirty_hours (hour)
    SELECT first_seen / 3600000000000 FROM alert_events
    WHERE (fingerprint = OLD.fingerprint AND starts_at = OLD.starts_at)
       OR (fingerprint = NEW.fingerprint AND starts_at = NEW.starts_at)
    ON CONFLICT (hour) DO UPDATE SET gen = gen + 1;
    INSERT INTO report_dirty (day) VALUES (OLD.first_seen / 86400000000000)
    ON CONFLICT (day) DO UPDATE SET gen = gen + 1;
    INSERT INTO report_dirty (day)
    SELECT first_seen / 86400000000000 FROM alert_events
    WHERE (fingerprint = OLD.fingerprint AND starts_at = OLD.starts_at)
       OR (fingerprint = NEW.fingerprint AND starts_at = NEW.starts_at)
    ON CONFLICT (day) DO UPDATE SET gen = gen + 1;
END;
