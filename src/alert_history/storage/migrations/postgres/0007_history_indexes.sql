-- History at scale (bench/RESULTS.md, "History at scale").
-- namespace + status, the usual pair: the capped count behind `total` reads this index alone,
-- and the page walks it back by id.
CREATE INDEX ix_alert_events_namespace_status ON alert_events (namespace, status, id);
-- A startsAt range: its ids come from this index alone (index-only), sorted, then the page is
-- fetched by id; it replaces the index on starts_at alone.
CREATE INDEX ix_alert_events_starts_at_id ON alert_events (starts_at, id);
DROP INDEX ix_alert_events_starts_at;
