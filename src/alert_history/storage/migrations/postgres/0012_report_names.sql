-- GET /report's sums per alertname (storage/report_rollup.py): per day, hour and span, what
-- report_days, report_hours and report_spans hold for it summed over the alertname's keys: rows,
-- firing rows, the first row's time and the episodes. A report reads them for its totals, v2 by
-- alertname and the time to resolve per alertname (~2,000 rows a week) instead of summing its
-- ~9,000 keys by name. No notifications: a repeat changes none of this. A store of a day or hour
-- writes its rows from the keys' (report_rollup.store), a span's are its halves' added up
-- (report_spans.build), and dropping a span drops them. Filled here in primary key order, so
-- that a unit's rows lie together as the service writes them (a unit at a time).
CREATE TABLE report_names_days (
    day                bigint  NOT NULL,
    alertname          text    NOT NULL,
    events             integer NOT NULL,
    firing             integer NOT NULL,
    first_seen         bigint  NOT NULL,
    episodes           integer NOT NULL,
    resolved_episodes  integer NOT NULL,
    quick_episodes     integer NOT NULL,
    resolved_ns        double precision NOT NULL,
    PRIMARY KEY (day, alertname)
);
CREATE TABLE report_names_hours (
    hour               bigint  NOT NULL,
    alertname          text    NOT NULL,
    events             integer NOT NULL,
    firing             integer NOT NULL,
    first_seen         bigint  NOT NULL,
    episodes           integer NOT NULL,
    resolved_episodes  integer NOT NULL,
    quick_episodes     integer NOT NULL,
    resolved_ns        double precision NOT NULL,
    PRIMARY KEY (hour, alertname)
);
CREATE TABLE report_names_spans (
    lo                 bigint  NOT NULL,
    hi                 bigint  NOT NULL,
    alertname          text    NOT NULL,
    events             integer NOT NULL,
    firing             integer NOT NULL,
    first_seen         bigint  NOT NULL,
    episodes           integer NOT NULL,
    resolved_episodes  integer NOT NULL,
    quick_episodes     integer NOT NULL,
    resolved_ns        double precision NOT NULL,
    PRIMARY KEY (lo, hi, alertname)
);
INSERT INTO report_names_days
SELECT r.day, k.alertname, sum(r.events), sum(r.firing), min(r.first_seen), sum(r.episodes),
       sum(r.resolved_episodes), sum(r.quick_episodes), sum(r.resolved_ns)
FROM report_days r JOIN report_keys k ON k.id = r.key_id
GROUP BY r.day, k.alertname
ORDER BY r.day, k.alertname;
INSERT INTO report_names_hours
SELECT r.hour, k.alertname, sum(r.events), sum(r.firing), min(r.first_seen), sum(r.episodes),
       sum(r.resolved_episodes), sum(r.quick_episodes), sum(r.resolved_ns)
FROM report_hours r JOIN report_keys k ON k.id = r.key_id
GROUP BY r.hour, k.alertname
ORDER BY r.hour, k.alertname;
INSERT INTO report_names_spans
SELECT r.lo, r.hi, k.alertname, sum(r.events), sum(r.firing), min(r.first_seen),
       sum(r.episodes), sum(r.resolved_episodes), sum(r.quick_episodes), sum(r.resolved_ns)
FROM report_spans r JOIN report_keys k ON k.id = r.key_id
GROUP BY r.lo, r.hi, k.alertname
ORDER BY r.lo, r.hi, k.alertname;
