-- Campaign messaging, second slice: idempotent event keys (tracking events
-- are replayed from a write-ahead file after a crash), a not-before time on
-- outbox rows (throttles defer a recipient without another attempt), the
-- campaign's settings (the tracking secret) and compliance alarms.
ALTER TABLE campaign_events ADD COLUMN event_key TEXT;
CREATE UNIQUE INDEX campaign_events_key ON campaign_events(event_key);
CREATE INDEX campaign_events_outbox ON campaign_events(outbox_id, kind);
ALTER TABLE campaign_outbox ADD COLUMN not_before INTEGER NOT NULL DEFAULT 0;
ALTER TABLE campaign_outbox ADD COLUMN sent_at INTEGER;

CREATE TABLE campaign_settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE campaign_alarms (
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, kind)
);
