-- Every alert state ever received: one row per (fingerprint, starts_at, status, ends_at).
-- Times are integer nanoseconds since the epoch (UTC); ends_at 0 means "none".
CREATE TABLE alert_events (
    id                   INTEGER PRIMARY KEY,
    fingerprint          TEXT    NOT NULL,
    status               TEXT    NOT NULL CHECK (status IN ('firing', 'resolved')),
    starts_at            INTEGER NOT NULL,
    ends_at              INTEGER NOT NULL DEFAULT 0,
    alertname            TEXT    NOT NULL,
    namespace            TEXT,
    severity             TEXT,
    labels               TEXT    NOT NULL,
    annotations          TEXT    NOT NULL,
    generator_url        TEXT    NOT NULL DEFAULT '',
    receiver             TEXT    NOT NULL DEFAULT '',
    group_key            TEXT    NOT NULL DEFAULT '',
    source               TEXT    NOT NULL DEFAULT 'alertmanager',
    fingerprint_computed INTEGER NOT NULL DEFAULT 0,
    first_seen           INTEGER NOT NULL,
    last_seen            INTEGER NOT NULL,
    notify_count         INTEGER NOT NULL DEFAULT 1,
    UNIQUE (fingerprint, starts_at, status, ends_at)
);
CREATE INDEX ix_alert_events_alertname ON alert_events (alertname, id);
CREATE INDEX ix_alert_events_namespace ON alert_events (namespace, id);
-- status and severity have a handful of values: a backward scan of the primary key filtered
-- on them fills a page sooner than an index would, and every index costs each insert.
CREATE INDEX ix_alert_events_first_seen ON alert_events (first_seen);
CREATE INDEX ix_alert_events_starts_at ON alert_events (starts_at);

-- The current state per fingerprint, updated in place.
CREATE TABLE alert_current (
    fingerprint   TEXT    PRIMARY KEY,
    status        TEXT    NOT NULL,
    starts_at     INTEGER NOT NULL,
    ends_at       INTEGER NOT NULL,
    alertname     TEXT    NOT NULL,
    namespace     TEXT,
    severity      TEXT,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX ix_alert_current_status ON alert_current (status, alertname);
