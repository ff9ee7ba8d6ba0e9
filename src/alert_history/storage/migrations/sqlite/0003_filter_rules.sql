-- Filter rules (legacy B§8), kept here so they survive restarts and are shared by replicas.
-- Global rules have target_name '' (not NULL), so one primary key covers both kinds.
-- Not named `filter_rules`: that is the legacy v2 table, and a legacy database may be this
-- service's database too. conditions is a JSON object; times are integer ns since the epoch.
CREATE TABLE alert_filter_rules (
    name           TEXT    NOT NULL,
    target_name    TEXT    NOT NULL DEFAULT '',
    action         TEXT    NOT NULL CHECK (action IN ('allow', 'deny', 'delay')),
    conditions     TEXT    NOT NULL DEFAULT '{}',
    priority       INTEGER NOT NULL DEFAULT 100,
    enabled        INTEGER NOT NULL DEFAULT 1,
    delay_seconds  INTEGER,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (name, target_name)
);

-- The legacy default rules (domain.filter_rules.DEFAULT_RULES): seeded once, so a rule deleted
-- or changed through the API stays so.
INSERT INTO alert_filter_rules (name, action, conditions, priority, enabled, created_at, updated_at)
VALUES
    ('allow_critical_alerts', 'allow', '{"llm_severity":"critical"}', 1, 1, 0, 0),
    ('high_confidence_only', 'allow',
     '{"has_llm_classification":true,"llm_confidence_above":0.7}', 5, 0, 0, 0),
    ('block_false_positives', 'deny', '{"llm_severity":"false_positive"}', 8, 1, 0, 0),
    ('block_noise_alerts', 'deny', '{"llm_severity":"noise"}', 10, 1, 0, 0),
    ('block_low_confidence', 'deny',
     '{"has_llm_classification":true,"llm_confidence_below":0.5}', 15, 1, 0, 0),
    ('min_confidence_threshold', 'deny',
     '{"has_llm_classification":true,"llm_confidence_below":0.3}', 20, 1, 0, 0),
    ('block_test_namespaces', 'deny', '{"namespace_pattern":".*test.*|.*dev.*|.*staging.*"}',
     30, 0, 0, 0);
UPDATE alert_filter_rules
SET created_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000000000,
    updated_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000000000;

-- The global rules' decision about each event when it was stored: {"action", "rule", "reason"}
-- as JSON; NULL when none was made (events stored before this migration, imports).
ALTER TABLE alert_events ADD COLUMN filter_decision TEXT;
