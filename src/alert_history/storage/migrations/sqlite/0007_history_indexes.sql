-- History at scale (bench/RESULTS.md, "History at scale").
-- namespace + status, the usual pair: the capped count behind `total` reads this index alone,
-- and the page walks it back by id (the rowid ends every SQLite index).
CREATE INDEX ix_alert_events_namespace_status ON alert_events (namespace, status);
