-- GET /report's trailing spans (storage/report_spans.py): a span from any hour to the end of a
-- day, merged right to left from the pieces a report would read for it (hours, aligned spans,
-- days), so that a report since a given hour reads its first day and the days after it as one
-- row per key. They are kept in report_spans and report_spans_built as the aligned spans are,
-- and named here too: a repeat notification adds to them (the trigger below, by range), and a
-- store of a day or hour drops those that overlap it (report_rollup.store).
CREATE TABLE report_spans_trailing (
    lo bigint NOT NULL,
    hi bigint NOT NULL,
    PRIMARY KEY (lo, hi)
);

-- as in 0011, and the trailing spans holding a repeat's hour likewise
CREATE OR REPLACE FUNCTION report_events_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- a change that moves a row in the report (never made by the service): its days and its
    -- episodes' days, before and after, are dirty
    IF EXISTS (
        SELECT 1 FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE (o.status, o.first_seen, o.alertname, o.fingerprint, o.starts_at, o.ends_at)
              IS DISTINCT FROM (n.status, n.first_seen, n.alertname, n.fingerprint,
                                n.starts_at, n.ends_at)
           OR o.namespace IS DISTINCT FROM n.namespace
    ) THEN
        INSERT INTO report_keys (alertname, namespace)
        SELECT DISTINCT n.alertname, n.namespace FROM new_rows n
        WHERE NOT EXISTS (
            SELECT 1 FROM report_keys k
            WHERE k.alertname = n.alertname AND k.namespace IS NOT DISTINCT FROM n.namespace
        )
        ORDER BY 1, 2
        ON CONFLICT DO NOTHING;
        INSERT INTO report_dirty_hours (hour, gen)
        SELECT hour, pg_current_xact_id()::text::bigint FROM (
            SELECT first_seen / 3600000000000 AS hour FROM old_rows
            UNION
            SELECT e.first_seen / 3600000000000
            FROM (SELECT fingerprint, starts_at FROM old_rows
                  UNION SELECT fingerprint, starts_at FROM new_rows) AS c,
                 LATERAL (
                     SELECT s.first_seen FROM alert_events s
                     WHERE s.fingerprint = c.fingerprint AND s.starts_at = c.starts_at
                 ) AS e
        ) AS h
        ORDER BY hour
        ON CONFLICT (hour) DO UPDATE SET gen = excluded.gen;
        INSERT INTO report_dirty (day, gen)
        SELECT day, pg_current_xact_id()::text::bigint FROM (
            SELECT first_seen / 86400000000000 AS day FROM old_rows
            UNION
            SELECT e.first_seen / 86400000000000
            FROM (SELECT fingerprint, starts_at FROM old_rows
                  UNION SELECT fingerprint, starts_at FROM new_rows) AS c,
                 LATERAL (
                     SELECT s.first_seen FROM alert_events s
                     WHERE s.fingerprint = c.fingerprint AND s.starts_at = c.starts_at
                 ) AS e
        ) AS d
        ORDER BY day
        ON CONFLICT (day) DO UPDATE SET gen = excluded.gen;
    END IF;
    -- a repeat notification only adds to notify_count: add it to the day's row (and tell a
    -- refresh of a dirty day or hour that its rows changed, before touching the rollup: the
    -- locks in the order a refresh takes them). The spans first wait for a span being built
    -- (report_spans.build), so that the statements below see its rows or it sees theirs.
    LOCK TABLE report_spans IN ROW EXCLUSIVE MODE;
    UPDATE report_dirty_hours SET gen = pg_current_xact_id()::text::bigint
    WHERE hour IN (
        SELECT n.first_seen / 3600000000000 FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE n.notify_count <> o.notify_count
    );
    UPDATE report_dirty SET gen = pg_current_xact_id()::text::bigint
    WHERE day IN (
        SELECT n.first_seen / 86400000000000 FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE n.notify_count <> o.notify_count
    );
    -- the added notifications per hour and key, then per day, hour and span holding it
    WITH d AS MATERIALIZED (
        SELECT n.first_seen / 3600000000000 AS hour, k.id AS key_id,
               sum(n.notify_count - o.notify_count) AS delta
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        JOIN report_keys k
          ON k.alertname = n.alertname AND k.namespace IS NOT DISTINCT FROM n.namespace
        WHERE n.notify_count <> o.notify_count AND n.first_seen = o.first_seen
          AND n.alertname = o.alertname AND n.namespace IS NOT DISTINCT FROM o.namespace
        GROUP BY 1, 2
    ), days AS (
        UPDATE report_days r SET notifications = r.notifications + x.delta
        FROM (SELECT hour / 24 AS day, key_id, sum(delta) AS delta FROM d GROUP BY 1, 2) AS x
        WHERE r.day = x.day AND r.key_id = x.key_id
    ), hours AS (
        UPDATE report_hours r SET notifications = r.notifications + d.delta
        FROM d
        WHERE r.hour = d.hour AND r.key_id = d.key_id
    )
    UPDATE report_spans r SET notifications = r.notifications + x.delta
    FROM (
        SELECT lo, lo + size - 1 AS hi, key_id, delta
        FROM (
            SELECT CASE WHEN s.size < 24 THEN d.hour / 24 * 24 + d.hour % 24 / s.size * s.size
                        ELSE d.hour / s.size * s.size END AS lo,
                   s.size, d.key_id, sum(d.delta) AS delta
            FROM d CROSS JOIN report_span_sizes s
            GROUP BY 1, 2, 3
        ) AS aligned
        UNION ALL
        SELECT t.lo, t.hi, d.key_id, sum(d.delta)
        FROM d JOIN report_spans_trailing t ON d.hour BETWEEN t.lo AND t.hi
        GROUP BY 1, 2, 3
    ) AS x
    WHERE r.lo = x.lo AND r.hi = x.hi AND r.key_id = x.key_id;
    RETURN NULL;
END $$;
