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
CREATE TABLE report_dirty (day bigint PRIMARY KEY);
INSERT INTO report_dirty (day) SELECT DISTINCT first_seen / 86400000000000 FROM alert_events;

CREATE FUNCTION report_events_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO report_dirty (day)
    SELECT DISTINCT e.first_seen / 86400000000000
    FROM alert_events e JOIN new_rows n
      ON e.fingerprint = n.fingerprint AND e.starts_at = n.starts_at
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER report_events_inserted AFTER INSERT ON alert_events
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION report_events_inserted();

CREATE FUNCTION report_events_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO report_dirty (day)
    SELECT o.first_seen / 86400000000000 FROM old_rows o
    UNION
    SELECT e.first_seen / 86400000000000
    FROM alert_events e JOIN old_rows o
      ON e.fingerprint = o.fingerprint AND e.starts_at = o.starts_at
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER report_events_deleted AFTER DELETE ON alert_events
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION report_events_deleted();

CREATE FUNCTION report_events_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- a change that moves a row in the report: its days and its episodes' days are dirty
    WITH changed AS (
        SELECT o.first_seen AS old_seen, o.fingerprint AS old_fp, o.starts_at AS old_starts,
               n.fingerprint AS new_fp, n.starts_at AS new_starts
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE (o.status, o.first_seen, o.alertname, o.fingerprint, o.starts_at, o.ends_at)
              IS DISTINCT FROM (n.status, n.first_seen, n.alertname, n.fingerprint,
                                n.starts_at, n.ends_at)
           OR o.namespace IS DISTINCT FROM n.namespace
    )
    INSERT INTO report_dirty (day)
    SELECT old_seen / 86400000000000 FROM changed
    UNION
    SELECT e.first_seen / 86400000000000 FROM alert_events e JOIN changed c
      ON (e.fingerprint = c.old_fp AND e.starts_at = c.old_starts)
      OR (e.fingerprint = c.new_fp AND e.starts_at = c.new_starts)
    ON CONFLICT DO NOTHING;
    -- a repeat notification only adds to notify_count: add it to the day's row
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
    RETURN NULL;
END $$;
CREATE TRIGGER report_events_updated AFTER UPDATE ON alert_events
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION report_events_updated();
