-- GET /report's rollup keyed by small integers (storage/report_rollup.py): a report groups,
-- sorts and windows tens of thousands of rollup rows per (alertname, namespace), which costs
-- half as much on an integer as on two texts. report_keys numbers every (alertname, namespace)
-- of alert_events (the insert and update triggers add new ones; keys are never removed); the
-- rollup tables are rebuilt with `key_id` in place of the two texts, and every day and hour is
-- dirty again (the rollup actor recomputes them; reports read the rows meanwhile).
CREATE TABLE report_keys (
    id        INTEGER PRIMARY KEY,
    alertname TEXT NOT NULL,
    namespace TEXT
);
CREATE UNIQUE INDEX ux_report_keys ON report_keys (alertname, namespace);
CREATE UNIQUE INDEX ux_report_keys_no_namespace ON report_keys (alertname) WHERE namespace IS NULL;
INSERT INTO report_keys (alertname, namespace)
SELECT DISTINCT alertname, namespace FROM alert_events ORDER BY alertname, namespace;

DROP TRIGGER report_events_inserted;
DROP TRIGGER report_events_deleted;
DROP TRIGGER report_events_changed;
DROP TRIGGER report_events_counted;
DROP TABLE report_days;
DROP TABLE report_hours;
DELETE FROM report_multi;

CREATE TABLE report_days (
    day                INTEGER NOT NULL,
    key_id             INTEGER NOT NULL,  -- report_keys.id
    events             INTEGER NOT NULL,
    firing             INTEGER NOT NULL,
    resolved           INTEGER NOT NULL,
    notifications      INTEGER NOT NULL,
    first_seen         INTEGER NOT NULL,  -- the key's first row of the day: (first_seen, id)
    first_id           INTEGER NOT NULL,
    first_status       TEXT    NOT NULL,
    last_status        TEXT    NOT NULL,
    flaps              INTEGER NOT NULL,  -- status changes between the day's rows of the key
    change_seen        INTEGER,           -- the first of those changes: (first_seen, id)
    change_id          INTEGER,
    -- episodes whose rows all lie in this day and key ("single"); the others are in report_multi
    episodes           INTEGER NOT NULL,
    resolved_episodes  INTEGER NOT NULL,
    quick_episodes     INTEGER NOT NULL,
    resolved_ns        REAL    NOT NULL,
    PRIMARY KEY (day, key_id)
) WITHOUT ROWID;
CREATE TABLE report_hours (
    hour          INTEGER NOT NULL,
    key_id        INTEGER NOT NULL,
    events        INTEGER NOT NULL,
    firing        INTEGER NOT NULL,
    resolved      INTEGER NOT NULL,
    notifications INTEGER NOT NULL,
    first_seen    INTEGER NOT NULL,
    first_id      INTEGER NOT NULL,
    first_status  TEXT    NOT NULL,
    last_status   TEXT    NOT NULL,
    flaps         INTEGER NOT NULL,
    change_seen   INTEGER,
    change_id     INTEGER,
    PRIMARY KEY (hour, key_id)
) WITHOUT ROWID;
INSERT INTO report_dirty (day) SELECT DISTINCT first_seen / 86400000000000 FROM alert_events
WHERE true ON CONFLICT (day) DO UPDATE SET gen = gen + 1;
INSERT INTO report_dirty_hours (hour) SELECT DISTINCT first_seen / 3600000000000 FROM alert_events
WHERE true ON CONFLICT (hour) DO UPDATE SET gen = gen + 1;

CREATE TRIGGER report_events_inserted AFTER INSERT ON alert_events BEGIN
    INSERT INTO report_keys (alertname, namespace)
    SELECT NEW.alertname, NEW.namespace
    WHERE NOT EXISTS (
        SELECT 1 FROM report_keys WHERE alertname = NEW.alertname AND namespace IS NEW.namespace
    );
    INSERT INTO report_dirty_hours (hour) VALUES (NEW.first_seen / 3600000000000)
    ON CONFLICT (hour) DO UPDATE SET gen = gen + 1;
    INSERT INTO report_dirty (day)
    SELECT first_seen / 86400000000000 FROM alert_events
    WHERE fingerprint = NEW.fingerprint AND starts_at = NEW.starts_at
    ON CONFLICT (day) DO UPDATE SET gen = gen + 1;
END;
CREATE TRIGGER report_events_deleted AFTER DELETE ON alert_events BEGIN
    INSERT INTO report_dirty_hours (hour) VALUES (OLD.first_seen / 3600000000000)
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
    INSERT INTO report_dirty_hours (hour) VALUES (OLD.first_seen / 3600000000000), (NEW.first_seen / 3600000000000)
    ON CONFLICT (hour) DO UPDATE SET gen = gen + 1;
    INSERT INTO report_dirty (day) VALUES (OLD.first_seen / 86400000000000)
    ON CONFLICT (day) DO UPDATE SET gen = gen + 1;
    INSERT INTO report_dirty (day)
    SELECT first_seen / 86400000000000 FROM alert_events
    WHERE (fingerprint = OLD.fingerprint AND starts_at = OLD.starts_at)
       OR (fingerprint = NEW.fingerprint AND starts_at = NEW.starts_at)
    ON CONFLICT (day) DO UPDATE SET gen = gen + 1;
END;
CREATE TRIGGER report_events_counted AFTER UPDATE OF notify_count ON alert_events
WHEN NEW.notify_count IS NOT OLD.notify_count AND NEW.first_seen = OLD.first_seen
  AND NEW.alertname = OLD.alertname AND NEW.namespace IS OLD.namespace
BEGIN
    UPDATE report_dirty_hours SET gen = gen + 1 WHERE hour = NEW.first_seen / 3600000000000;
    UPDATE report_dirty SET gen = gen + 1 WHERE day = NEW.first_seen / 86400000000000;
    UPDATE report_days SET notifications = notifications + NEW.notify_count - OLD.notify_count
    WHERE day = NEW.first_seen / 86400000000000
      AND key_id = (SELECT id FROM report_keys
                    WHERE alertname = NEW.alertname AND namespace IS NEW.namespace);
    UPDATE report_hours SET notifications = notifications + NEW.notify_count - OLD.notify_count
    WHERE hour = NEW.first_seen / 3600000000000
      AND key_id = (SELECT id FROM report_keys
                    WHERE alertname = NEW.alertname AND namespace IS NEW.namespace);
END;
