-- What a sender's format adds beyond Alertmanager's fields (Grafana's orgId, title, state,
-- message, silenceURL, dashboardURL, panelURL, values, valueString, imageURL), as sent.
ALTER TABLE alert_events ADD COLUMN extra TEXT;
