-- Leases on alerts being classified, so replicas sharing one database never send the same
-- alert to the LLM at once: a replica classifies an alert only while it holds the lease
-- (`until`, ns since the epoch, about LLM_TIMEOUT ahead); an expired lease may be taken over.
CREATE TABLE classification_claims (
    fingerprint  TEXT    PRIMARY KEY,
    owner        TEXT    NOT NULL,
    until        BIGINT  NOT NULL
);
CREATE INDEX ix_classification_claims_until ON classification_claims (until);
