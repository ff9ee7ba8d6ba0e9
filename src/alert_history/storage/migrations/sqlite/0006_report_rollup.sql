-- GET /report's rollup (storage/report_rollup.py): per UTC day (first_seen / 86400 s) and
-- (alertname, namespace), the aggregates a report needs, computed from the day's rows by
-- `refresh`. A day is used only while it is not in report_dirty: the triggers below mark a day
-- dirty whenever a row of it, or of an episode with a row in it, is inserted, deleted or
-- changed, whoever writes (the service, imports, retention, bulk loads, plain SQL). A
-- notify_count change alone is added to the day's row instead. Existing days start dirty.
CREATE TABLE report_days (
    day                INTEGER NOT NULL,
    alertname          TEXT    NOT NULL,
    namespace          TEXT,
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
    resolved_ns        REAL    NOT NULL
);
CREATE INDEX ix_report_days_day ON report_days (day, alertname);
-- The rows of episodes with rows in more than one day or key.
CREATE TABLE report_multi (
    day          INTEGER NOT NULL,
    fingerprint  TEXT    NOT NULL,
    starts_at    INTEGER NOT NULL,
    alertname    TEXT    NOT NULL,
    namespace    TEXT,
    status       TEXT    NOT NULL,
    ends_at      INTEGER NOT NULL
);
CREATE INDEX ix_report_multi_day ON report_multi (day);
-- `gen` counts the changes since the day got dirty: a refresh computes a day outside the
-- writer's transaction and stores it only if `gen` is still what it read (storage/report_rollup.py).
CREATE TABLE report_dirty (day INTEGER PRIMARY KEY, gen INTEGER NOT NULL DEFAULT 0);
INSERT INTO report_dirty (day) SELECT DISTINCT first_seen / 86400000000000 FROM alert_events;
-- The same per UTC hour, without the episodes: a report's partial days come from here.
CREATE TABLE report_hours (
    hour          INTEGER NOT NULL,
    alertname     TEXT    NOT NULL,
    namespace     TEXT,
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
    change_id     INTEGER
);
CREATE INDEX ix_report_hours_hour ON report_hours (hour, alertname);
CREATE TABLE report_dirty_hours (hour INTEGER PRIMARY KEY, gen INTEGER NOT NULL DEFAULT 0);
INSERT INTO report_dirty_hours (hour) SELECT DISTINCT first_seen / 3600000000000 FROM alert_events;

CREATE TRIGGER report_events_inserted AFTER INSERT ON alert_events BEGIN
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
    WHERE day = NEW.first_seen / 86400000000000 AND alertname = NEW.alertname
      AND namespace IS NEW.namespace;
    UPDATE report_hours SET notifications = notifications + NEW.notify_count - OLD.notify_count
    WHERE hour = NEW.first_seen / 3600000000000 AND alertname = NEW.alertname
      AND namespace IS NEW.namespace;
END;
