-- GET /report's rollup (storage/report_rollup.py): per UTC day (first_seen / 86400 s) and
-- (alertname, namespace), the aggregates a report needs, computed from the day's rows by
-- `refresh`. A day is used only while it is not in report_dirty: the triggers below mark a day
-- dirty whenever a row of it, or of an episode with a row in it, is inserted, deleted or
-- changed, whoever writes (the service, imports, retention, COPY, plain SQL). A notify_count
-- change alone is added to the day's row instead. Existing days start dirty.
CREATE TABLE report_days (
    day                bigint           NOT NULL,
    alertname          text             NOT NULL,
    namespace          text,
    events             bigint           NOT NULL,
    firing             bigint           NOT NULL,
    resolved           bigint           NOT NULL,
    notifications      bigint           NOT NULL,
    first_seen         bigint           NOT NULL,  -- the key's first row of the day
    first_id           bigint           NOT NULL,
    first_status       text             NOT NULL,
    last_status        text             NOT NULL,
    flaps              bigint           NOT NULL,  -- status changes between the day's rows
    change_seen        bigint,                     -- the first of those changes
    change_id          bigint,
    -- episodes whose rows all lie in this day and key; the others are in report_multi
    episodes           bigint           NOT NULL,
    resolved_episodes  bigint           NOT NULL,
    quick_episodes     bigint           NOT NULL,
    resolved_ns        double precision NOT NULL
);
CREATE INDEX ix_report_days_day ON report_days (day, alertname);
CREATE TABLE report_multi (
    day          bigint NOT NULL,
    fingerprint  text   NOT NULL,
    starts_at    bigint NOT NULL,
    alertname    text   NOT NULL,
    namespace    text,
    status       text   NOT NULL,
    ends_at      bigint NOT NULL
);
CREATE INDEX ix_report_multi_day ON report_multi (day);
-- `gen` is the id of the last transaction that made the day dirty: a refresh computes a day
-- outside any writer's way and stores it only if `gen` is still what it read (never reused, so
-- a refresh racing another replica's cannot be fooled) (storage/report_rollup.py).
CREATE TABLE report_dirty (day bigint PRIMARY KEY, gen bigint NOT NULL DEFAULT 0);
INSERT INTO report_dirty (day) SELECT DISTINCT first_seen / 86400000000000 FROM alert_events;
-- The same per UTC hour, without the episodes: a report's partial days come from here.
CREATE TABLE report_hours (
    hour          bigint NOT NULL,
    alertname     text   NOT NULL,
    namespace     text,
    events        bigint NOT NULL,
    firing        bigint NOT NULL,
    resolved      bigint NOT NULL,
    notifications bigint NOT NULL,
    first_seen    bigint NOT NULL,
    first_id      bigint NOT NULL,
    first_status  text   NOT NULL,
    last_status   text   NOT NULL,
    flaps         bigint NOT NULL,
    change_seen   bigint,
    change_id     bigint
);
CREATE INDEX ix_report_hours_hour ON report_hours (hour, alertname);
CREATE TABLE report_dirty_hours (hour bigint PRIMARY KEY, gen bigint NOT NULL DEFAULT 0);
INSERT INTO report_dirty_hours (hour) SELECT DISTINCT first_seen / 3600000000000 FROM alert_events;

-- The statement-level triggers probe the unique index per changed row (LATERAL): the planner
-- knows nothing of a transition table's size and would otherwise scan alert_events.
CREATE FUNCTION report_events_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO report_dirty_hours (hour, gen)
    SELECT DISTINCT first_seen / 3600000000000, pg_current_xact_id()::text::bigint FROM new_rows ORDER BY 1
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
CREATE TRIGGER report_events_inserted AFTER INSERT ON alert_events
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION report_events_inserted();

CREATE FUNCTION report_events_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO report_dirty_hours (hour, gen)
    SELECT DISTINCT first_seen / 3600000000000, pg_current_xact_id()::text::bigint FROM old_rows ORDER BY 1
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
CREATE TRIGGER report_events_deleted AFTER DELETE ON alert_events
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION report_events_deleted();

CREATE FUNCTION report_events_updated() RETURNS trigger LANGUAGE plpgsql AS $$
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
    -- locks in the order a refresh takes them)
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
        SELECT n.first_seen / 86400000000000 AS day, n.alertname, n.namespace,
               sum(n.notify_count - o.notify_count) AS delta
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE n.notify_count <> o.notify_count AND n.first_seen = o.first_seen
          AND n.alertname = o.alertname AND n.namespace IS NOT DISTINCT FROM o.namespace
        GROUP BY 1, 2, 3
    ) AS d
    WHERE r.day = d.day AND r.alertname = d.alertname
      AND r.namespace IS NOT DISTINCT FROM d.namespace;
    UPDATE report_hours r SET notifications = r.notifications + d.delta
    FROM (
        SELECT n.first_seen / 3600000000000 AS hour, n.alertname, n.namespace,
               sum(n.notify_count - o.notify_count) AS delta
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE n.notify_count <> o.notify_count AND n.first_seen = o.first_seen
          AND n.alertname = o.alertname AND n.namespace IS NOT DISTINCT FROM o.namespace
        GROUP BY 1, 2, 3
    ) AS d
    WHERE r.hour = d.hour AND r.alertname = d.alertname
      AND r.namespace IS NOT DISTINCT FROM d.namespace;
    RETURN NULL;
END $$;
CREATE TRIGGER report_events_updated AFTER UPDATE ON alert_events
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION report_events_updated();
