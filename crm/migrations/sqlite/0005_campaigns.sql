-- Campaign messaging: campaigns, their messages, the durable outbox (one
-- row per message and recipient), delivery/engagement events and the
-- address-level suppression list.
CREATE TABLE campaigns (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    objectives TEXT NOT NULL DEFAULT '',
    budget_cents INTEGER NOT NULL DEFAULT 0,
    owner_id INTEGER REFERENCES users(id),
    state TEXT NOT NULL DEFAULT 'active',
    created_at INTEGER NOT NULL
);

CREATE TABLE campaign_messages (
    id INTEGER PRIMARY KEY,
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    channel TEXT NOT NULL,
    subject TEXT NOT NULL DEFAULT '',
    body_text TEXT NOT NULL DEFAULT '',
    body_html TEXT NOT NULL DEFAULT '',
    list_id INTEGER REFERENCES lists(id),
    state TEXT NOT NULL DEFAULT 'draft',
    launched_at INTEGER,
    created_at INTEGER NOT NULL
);

-- state: queued -> sending (lease_until set) -> sent | failed | suppressed.
-- message_key is fixed at launch and reused on every retry (Message-ID).
CREATE TABLE campaign_outbox (
    id INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL REFERENCES campaign_messages(id) ON DELETE CASCADE,
    party_id INTEGER NOT NULL REFERENCES parties(id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    message_key TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued',
    lease_until INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    detail TEXT,
    updated_at INTEGER NOT NULL,
    UNIQUE (message_id, party_id)
);
CREATE INDEX campaign_outbox_claim ON campaign_outbox(message_id, state, id);
CREATE INDEX campaign_outbox_address ON campaign_outbox(address);

CREATE TABLE campaign_events (
    id INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL REFERENCES campaign_messages(id) ON DELETE CASCADE,
    outbox_id INTEGER REFERENCES campaign_outbox(id) ON DELETE CASCADE,
    party_id INTEGER,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    machine INTEGER NOT NULL DEFAULT 0,
    at INTEGER NOT NULL
);
CREATE INDEX campaign_events_message ON campaign_events(message_id, kind);
CREATE INDEX campaign_events_party ON campaign_events(party_id, at);

CREATE TABLE suppressions (
    address TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
