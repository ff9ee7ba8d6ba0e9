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
    lo                 bigint           NOT NULL,  -- first hour (hours since the epoch)
    hi                 bigint           NOT NULL,  -- last hour
    key_id             integer          NOT NULL,
    events             integer          NOT NULL,
    firing             integer          NOT NULL,
    resolved           integer          NOT NULL,
    notifications      integer          NOT NULL,
    first_seen         bigint           NOT NULL,
    first_id           bigint           NOT NULL,
    first_status       text             NOT NULL,
    last_status        text             NOT NULL,
    flaps              integer          NOT NULL,
    change_seen        bigint,
    change_id          bigint,
    episodes           integer          NOT NULL,
    resolved_episodes  integer          NOT NULL,
    quick_episodes     integer          NOT NULL,
    resolved_ns        double precision NOT NULL,
    PRIMARY KEY (lo, hi, key_id)
);
CREATE TABLE report_spans_built (
    lo bigint NOT NULL,
    hi bigint NOT NULL,
    PRIMARY KEY (lo, hi)
);
CREATE TABLE report_span_sizes (size bigint PRIMARY KEY);
INSERT INTO report_span_sizes (size) VALUES (2), (4), (8), (16), (48), (96), (192), (384), (768);

-- as in 0009, and the spans holding the row's hour likewise
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
            UNION SELECT first_seen / 3600000000000 FROM new_rows
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
    UPDATE report_days r SET notifications = r.notifications + d.delta
    FROM (
        SELECT n.first_seen / 86400000000000 AS day, k.id AS key_id,
               sum(n.notify_count - o.notify_count) AS delta
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        JOIN report_keys k
          ON k.alertname = n.alertname AND k.namespace IS NOT DISTINCT FROM n.namespace
        WHERE n.notify_count <> o.notify_count AND n.first_seen = o.first_seen
          AND n.alertname = o.alertname AND n.namespace IS NOT DISTINCT FROM o.namespace
        GROUP BY 1, 2
    ) AS d
    WHERE r.day = d.day AND r.key_id = d.key_id;
    UPDATE report_hours r SET notifications = r.notifications + d.delta
    FROM (
        SELECT n.first_seen / 3600000000000 AS hour, k.id AS key_id,
               sum(n.notify_count - o.notify_count) AS delta
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        JOIN report_keys k
          ON k.alertname = n.alertname AND k.namespace IS NOT DISTINCT FROM n.namespace
        WHERE n.notify_count <> o.notify_count AND n.first_seen = o.first_seen
          AND n.alertname = o.alertname AND n.namespace IS NOT DISTINCT FROM o.namespace
        GROUP BY 1, 2
    ) AS d
    WHERE r.hour = d.hour AND r.key_id = d.key_id;
    UPDATE report_spans r SET notifications = r.notifications + d.delta
    FROM (
        SELECT CASE WHEN s.size < 24 THEN d.hour / 24 * 24 + d.hour % 24 / s.size * s.size
                    ELSE d.hour / s.size * s.size END AS lo,
               s.size, d.key_id, sum(d.delta) AS delta
        FROM (
            SELECT n.first_seen / 3600000000000 AS hour, k.id AS key_id,
                   sum(n.notify_count - o.notify_count) AS delta
            FROM old_rows o JOIN new_rows n ON n.id = o.id
            JOIN report_keys k
              ON k.alertname = n.alertname AND k.namespace IS NOT DISTINCT FROM n.namespace
            WHERE n.notify_count <> o.notify_count AND n.first_seen = o.first_seen
              AND n.alertname = o.alertname AND n.namespace IS NOT DISTINCT FROM o.namespace
            GROUP BY 1, 2
        ) AS d CROSS JOIN report_span_sizes s
        GROUP BY 1, 2, 3
    ) AS d
    WHERE r.lo = d.lo AND r.hi = d.lo + d.size - 1 AND r.key_id = d.key_id;
    RETURN NULL;
END $$;
