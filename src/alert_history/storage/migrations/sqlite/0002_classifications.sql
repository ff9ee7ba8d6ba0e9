-- The latest classification per fingerprint: LLM, rule-based fallback, or imported from the
-- legacy service. A newer one replaces an older one. Times are integer ns since the epoch (UTC).
-- Not named `alert_classifications`: that is the legacy v2 table, and a legacy database may be
-- this service's database too (switching in place, `import-legacy` from the same database).
CREATE TABLE classifications (
    fingerprint      TEXT    PRIMARY KEY,
    severity         TEXT    NOT NULL,
    confidence       REAL    NOT NULL,
    reasoning        TEXT    NOT NULL DEFAULT '',
    recommendations  TEXT    NOT NULL DEFAULT '[]',  -- JSON array of strings
    processing_time  REAL,                           -- seconds
    metadata         TEXT    NOT NULL DEFAULT '{}',  -- JSON object
    model            TEXT,
    source           TEXT    NOT NULL,
    created_at       INTEGER NOT NULL
);
CREATE INDEX ix_classifications_created_at ON classifications (created_at);
