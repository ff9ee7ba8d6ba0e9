-- Filter rules (legacy B§8), kept here so they survive restarts and are shared by replicas.
-- Global rules have target_name '' (not NULL), so one primary key covers both kinds.
-- Not named `filter_rules`: that is the legacy v2 table, and a legacy database may be this
-- service's database too. Times are bigint ns since the epoch (UTC), as on SQLite.
CREATE TABLE alert_filter_rules (
    name           text    NOT NULL,
    target_name    text    NOT NULL DEFAULT '',
    action         text    NOT NULL CHECK (action IN ('allow', 'deny', 'delay')),
    conditions     jsonb   NOT NULL DEFAULT '{}',
    priority       integer NOT NULL DEFAULT 100,
    enabled        boolean NOT NULL DEFAULT true,
    delay_seconds  integer,
    created_at     bigint  NOT NULL,
    updated_at     bigint  NOT NULL,
    PRIMARY KEY (name, target_name)
);

-- The legacy default rules (domain.filter_rules.DEFAULT_RULES): seeded once, so a rule deleted
-- or changed through the API stays so.
INSERT INTO alert_filter_rules (name, action, conditions, priority, enabled, created_at, updated_at)
SELECT name, action, conditions::jsonb, priority, enabled, now_ns, now_ns
FROM (SELECT (extract(epoch FROM now()) * 1000000000)::bigint AS now_ns) AS t,
    (VALUES
        ('allow_critical_alerts', 'allow', '{"llm_severity":"critical"}', 1, true),
        ('high_confidence_only', 'allow',
         '{"has_llm_classification":true,"llm_confidence_above":0.7}', 5, false),
        ('block_false_positives', 'deny', '{"llm_severity":"false_positive"}', 8, true),
        ('block_noise_alerts', 'deny', '{"llm_severity":"noise"}', 10, true),
        ('block_low_confidence', 'deny',
         '{"has_llm_classification":true,"llm_confidence_below":0.5}', 15, true),
        ('min_confidence_threshold', 'deny',
         '{"has_llm_classification":true,"llm_confidence_below":0.3}', 20, true),
        ('block_test_namespaces', 'deny',
         '{"namespace_pattern":".*test.*|.*dev.*|.*staging.*"}', 30, false)
    ) AS seed (name, action, conditions, priority, enabled);

-- The global rules' decision about each event when it was stored: {"action", "rule", "reason"};
-- NULL when none was made (events stored before this migration, imports).
ALTER TABLE alert_events ADD COLUMN filter_decision jsonb;
