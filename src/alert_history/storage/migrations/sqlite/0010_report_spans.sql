-- GET /report's spans (storage/report_spans.py): the rollup of aligned runs of hours (2, 4, 8 and
-- 16 hours from the start of a UTC day) and of days (2, 4, 8, 16 and 32 days, aligned on the day
-- number), each merged from its two halves, so that a report reads a week in a few rows per key
-- instead of one per day and hour. A span is named by its first and last hour (inclusive); its
-- rows hold what report_days holds for it (an hours' span no episodes, as report_hours), and
-- report_spans_built names the spans whose rows are complete. A store of a day or hour deletes
-- the spans holding it (report_rollup.store), a repeat notification adds to them as to its day
-- and hour (the trigger below), and a report uses a span only while none of its days (hours) is
-- dirty. report_span_sizes lists the sizes in hours (report_spans.SIZES).
CREATE TABLE report_spans (
    lo                 INTEGER NOT NULL,  -- first hour (hours since the epoch)
    hi                 INTEGER NOT NULL,  -- last hour
    key_id             INTEGER NOT NULL,
    events             INTEGER NOT NULL,
    firing             INTEGER NOT NULL,
    resolved           INTEGER NOT NULL,
    notifications      INTEGER NOT NULL,
    first_seen         INTEGER NOT NULL,
    first_id           INTEGER NOT NULL,
    first_status       TEXT    NOT NULL,
    last_status        TEXT    NOT NULL,
    flaps              INTEGER NOT NULL,
    change_seen        INTEGER,
    change_id          INTEGER,
    episodes           INTEGER NOT NULL,
    resolved_episodes  INTEGER NOT NULL,
    quick_episodes     INTEGER NOT NULL,
    resolved_ns        REAL    NOT NULL,
    PRIMARY KEY (lo, hi, key_id)
) WITHOUT ROWID;
CREATE TABLE report_spans_built (
    lo INTEGER NOT NULL,
    hi INTEGER NOT NULL,
    PRIMARY KEY (lo, hi)
) WITHOUT ROWID;
CREATE TABLE report_span_sizes (size INTEGER PRIMARY KEY);
INSERT INTO report_span_sizes (size) VALUES (2), (4), (8), (16), (48), (96), (192), (384), (768);

-- as in 0009, and the spans holding the row's hour likewise
DROP TRIGGER report_events_counted;
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
    UPDATE report_spans SET notifications = notifications + NEW.notify_count - OLD.notify_count
    WHERE (lo, hi, key_id) IN (
        SELECT s.lo, s.lo + s.size - 1, k.id
        FROM (SELECT size, CASE WHEN size < 24 THEN NEW.first_seen / 3600000000000 / 24 * 24 + NEW.first_seen / 3600000000000 % 24 / size * size ELSE NEW.first_seen / 3600000000000 / size * size END AS lo
              FROM report_span_sizes) AS s,
             report_keys k
        WHERE k.alertname = NEW.alertname AND k.namespace IS NEW.namespace
    );
END;
