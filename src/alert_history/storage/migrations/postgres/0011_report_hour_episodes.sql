-- GET /report's episodes per hour, as per day (storage/report_rollup.py): report_hours holds the
-- episodes whose rows all lie in the hour and key, report_multi_hours the rows of the others,
-- so that a report's partial days (its first day, today) read their episodes from the rollup
-- too, not from the rows. The triggers now mark the hours of every row of a changed episode
-- dirty (as the days); every hour is dirty again and the hours' spans are dropped (the rollup
-- actor computes them again; reports read the rows meanwhile).
ALTER TABLE report_hours ADD COLUMN episodes integer NOT NULL DEFAULT 0;
ALTER TABLE report_hours ADD COLUMN resolved_episodes integer NOT NULL DEFAULT 0;
ALTER TABLE report_hours ADD COLUMN quick_episodes integer NOT NULL DEFAULT 0;
ALTER TABLE report_hours ADD COLUMN resolved_ns double precision NOT NULL DEFAULT 0;
CREATE TABLE report_multi_hours (
    hour         bigint NOT NULL,
    fingerprint  text   NOT NULL,
    starts_at    bigint NOT NULL,
    alertname    text   NOT NULL,
    namespace    text,
    status       text   NOT NULL,
    ends_at      bigint NOT NULL
);
CREATE INDEX ix_report_multi_hours_hour ON report_multi_hours (hour);
INSERT INTO report_dirty_hours (hour, gen)
SELECT DISTINCT first_seen / 3600000000000, pg_current_xact_id()::text::bigint FROM alert_events
ON CONFLICT (hour) DO UPDATE SET gen = excluded.gen;
DELETE FROM report_spans WHERE hi - lo < 24;
DELETE FROM report_spans_built WHERE hi - lo < 24;

-- as in 0009 and 0010, the hours of every row of the episode likewise, and a repeat's added
-- notifications computed once for its day, hour and spans
CREATE OR REPLACE FUNCTION report_events_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO report_keys (alertname, namespace)
    SELECT DISTINCT n.alertname, n.namespace FROM new_rows n
    WHERE NOT EXISTS (
        SELECT 1 FROM report_keys k
        WHERE k.alertname = n.alertname AND k.namespace IS NOT DISTINCT FROM n.namespace
    )
    ORDER BY 1, 2
    ON CONFLICT DO NOTHING;
    INSERT INTO report_dirty_hours (hour, gen)
    SELECT DISTINCT e.first_seen / 3600000000000, pg_current_xact_id()::text::bigint
    FROM new_rows n, LATERAL (
        SELECT s.first_seen FROM alert_events s
        WHERE s.fingerprint = n.fingerprint AND s.starts_at = n.starts_at
    ) AS e
    ORDER BY 1
    ON CONFLICT (hour) DO UPDATE SET gen = excluded.gen;
    INSERT INTO report_dirty (day, gen)
    SELECT DISTINCT e.first_seen / 86400000000000, pg_current_xact_id()::text::bigint
    FROM new_rows n, LATERAL (
        SELECT s.first_seen FROM alert_events s
        WHERE s.fingerprint = n.fingerprint AND s.starts_at = n.starts_at
    ) AS e
    ORDER BY 1
    ON CONFLICT (day) DO UPDATE SET gen = excluded.gen;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION report_events_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO report_dirty_hours (hour, gen)
    SELECT hour, pg_current_xact_id()::text::bigint FROM (
        SELECT o.first_seen / 3600000000000 AS hour FROM old_rows o
        UNION
        SELECT e.first_seen / 3600000000000
        FROM old_rows o, LATERAL (
            SELECT s.first_seen FROM alert_events s
            WHERE s.fingerprint = o.fingerprint AND s.starts_at = o.starts_at
        ) AS e
    ) AS h
    ORDER BY hour
    ON CONFLICT (hour) DO UPDATE SET gen = excluded.gen;
    INSERT INTO report_dirty (day, gen)
    SELECT day, pg_current_xact_id()::text::bigint FROM (
        SELECT o.first_seen / 86400000000000 AS day FROM old_rows o
        UNION
        SELECT e.first_seen / 86400000000000
        FROM old_rows o, LATERAL (
            SELECT s.first_seen FROM alert_events s
            WHERE s.fingerprint = o.fingerprint AND s.starts_at = o.starts_at
        ) AS e
    ) AS d
    ORDER BY day
    ON CONFLICT (day) DO UPDATE SET gen = excluded.gen;
    RETURN NULL;
END $$;
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
        SELECT CASE WHEN s.size < 24 THEN d.hour / 24 * 24 + d.hour % 24 / s.size * s.size
                    ELSE d.hour / s.size * s.size END AS lo,
               s.size, d.key_id, sum(d.delta) AS delta
        FROM d CROSS JOIN report_span_sizes s
        GROUP BY 1, 2, 3
    ) AS x
    WHERE r.lo = x.lo AND r.hi = x.lo + x.size - 1 AND r.key_id = x.key_id;
    RETURN NULL;
END $$;
