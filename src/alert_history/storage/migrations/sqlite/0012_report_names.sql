-- GET /report's sums per alertname (storage/report_rollup.py): per day, hour and span, what
-- report_days, report_hours and report_spans hold for it summed over the alertname's keys: rows,
-- firing rows, the first row's time and the episodes. A report reads them for its totals, v2 by
-- alertname and the time to resolve per alertname (~2,000 rows a week) instead of summing its
-- ~9,000 keys by name. No notifications: a repeat changes none of this. A store of a day or hour
-- writes its rows from the keys' (report_rollup.store), a span's are its halves' added up
-- (report_spans.build), and dropping a span drops them.
CREATE TABLE report_names_days (
    day                INTEGER NOT NULL,
    alertname          TEXT    NOT NULL,
    events             INTEGER NOT NULL,
    firing             INTEGER NOT NULL,
    first_seen         INTEGER NOT NULL,
    episodes           INTEGER NOT NULL,
    resolved_episodes  INTEGER NOT NULL,
    quick_episodes     INTEGER NOT NULL,
    resolved_ns        REAL    NOT NULL,
    PRIMARY KEY (day, alertname)
) WITHOUT ROWID;
CREATE TABLE report_names_hours (
    hour               INTEGER NOT NULL,
    alertname          TEXT    NOT NULL,
    events             INTEGER NOT NULL,
    firing             INTEGER NOT NULL,
    first_seen         INTEGER NOT NULL,
    episodes           INTEGER NOT NULL,
    resolved_episodes  INTEGER NOT NULL,
    quick_episodes     INTEGER NOT NULL,
    resolved_ns        REAL    NOT NULL,
    PRIMARY KEY (hour, alertname)
) WITHOUT ROWID;
CREATE TABLE report_names_spans (
    lo                 INTEGER NOT NULL,
    hi                 INTEGER NOT NULL,
    alertname          TEXT    NOT NULL,
    events             INTEGER NOT NULL,
    firing             INTEGER NOT NULL,
    first_seen         INTEGER NOT NULL,
    episodes           INTEGER NOT NULL,
    resolved_episodes  INTEGER NOT NULL,
    quick_episodes     INTEGER NOT NULL,
    resolved_ns        REAL    NOT NULL,
    PRIMARY KEY (lo, hi, alertname)
) WITHOUT ROWID;
INSERT INTO report_names_days
SELECT r.day, k.alertname, sum(r.events), sum(r.firing), min(r.first_seen), sum(r.episodes),
       sum(r.resolved_episodes), sum(r.quick_episodes), sum(r.resolved_ns)
FROM report_days r JOIN report_keys k ON k.id = r.key_id
GROUP BY r.day, k.alertname;
INSERT INTO report_names_hours
SELECT r.hour, k.alertname, sum(r.events), sum(r.firing), min(r.first_seen), sum(r.episodes),
       sum(r.resolved_episodes), sum(r.quick_episodes), sum(r.resolved_ns)
FROM report_hours r JOIN report_keys k ON k.id = r.key_id
GROUP BY r.hour, k.alertname;
INSERT INTO report_names_spans
SELECT r.lo, r.hi, k.alertname, sum(r.events), sum(r.firing), min(r.first_seen),
       sum(r.episodes), sum(r.resolved_episodes), sum(r.quick_episodes), sum(r.resolved_ns)
FROM report_spans r JOIN report_keys k ON k.id = r.key_id
GROUP BY r.lo, r.hi, k.alertname;
