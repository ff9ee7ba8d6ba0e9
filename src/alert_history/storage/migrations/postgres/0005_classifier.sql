-- What the classifier records beside a classification: the prompt version, the tokens the LLM
-- used, and whether it is the rule-based fallback (re-classified once the LLM is back).
ALTER TABLE classifications ADD COLUMN prompt_version text;
ALTER TABLE classifications ADD COLUMN tokens integer;
ALTER TABLE classifications ADD COLUMN fallback boolean NOT NULL DEFAULT false;
UPDATE classifications SET fallback = true WHERE source = 'fallback';
CREATE INDEX ix_classifications_fallback ON classifications (fallback, created_at);

-- Settings changed at run time and shared by every replica (the enrichment mode without Redis).
CREATE TABLE service_settings (
    key         text    PRIMARY KEY,
    value       text    NOT NULL,
    updated_at  bigint  NOT NULL
);
