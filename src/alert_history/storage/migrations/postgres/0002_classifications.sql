-- The latest classification per fingerprint: LLM, rule-based fallback, or imported from the
-- legacy service. A newer one replaces an older one. Times are bigint ns since the epoch (UTC).
-- Not named `alert_classifications`: that is the legacy v2 table, and a legacy database may be
-- this service's database too (switching in place, `import-legacy` from the same database).
CREATE TABLE classifications (
    fingerprint      text             PRIMARY KEY,
    severity         text             NOT NULL,
    confidence       double precision NOT NULL,
    reasoning        text             NOT NULL DEFAULT '',
    recommendations  jsonb            NOT NULL DEFAULT '[]',
    processing_time  double precision,
    metadata         jsonb            NOT NULL DEFAULT '{}',
    model            text,
    source           text             NOT NULL,
    created_at       bigint           NOT NULL
);
CREATE INDEX ix_classifications_created_at ON classifications (created_at);
