-- GET /report's trailing spans (storage/report_spans.py): a span from any hour to the end of a
-- day, merged right to left from the pieces a report would read for it (hours, aligned spans,
-- days), so that a report since a given hour reads its first day and the days after it as one
-- row per key. They are kept in report_spans and report_spans_built as the aligned spans are,
-- and named here too: a repeat notification adds to them (the trigger below, by range), and a
-- store of a day or hour drops those that overlap it (report_rollup.store).
CREATE TABLE report_spans_trailing (
    lo INTEGER NOT NULL,
    hi INTEGER NOT NULL,
    PRIMARY KEY (lo, hi)
) WITHOUT ROWID;

-- as in 0010, and the trailing spans holding the row's hour likewise
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
    UPDATE report_spans SET notifications = notifications + NEW.notify_count - OLD.notify_count
    WHERE key_id = (SELECT id FROM report_keys
                    WHERE alertname = NEW.alertname AND namespace IS NEW.namespace)
      AND (lo, hi) IN (SELECT lo, hi FROM report_spans_trailing
                       WHERE lo <= NEW.first_seen / 3600000000000
                         AND hi >= NEW.first_seen / 3600000000000);
END;
