-- What the classifier records beside a classification: the prompt version, the tokens the LLM
-- used, and whether it is the rule-based fallback (re-classified once the LLM is back).
ALTER TABLE classifications ADD COLUMN prompt_version TEXT;
ALTER TABLE classifications ADD COLUMN tokens INTEGER;
ALTER TABLE classifications ADD COLUMN fallback INTEGER NOT NULL DEFAULT 0;
UPDATE classifications SET fallback = 1 WHERE source = 'fallback';
CREATE INDEX ix_classifications_fallback ON classifications (fallback, created_at);

-- Settings changed at run time and shared by every replica (the enrichment mode without Redis).
CREATE TABLE service_settings (
    key         TEXT    PRIMARY KEY,
    value       TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL
);
