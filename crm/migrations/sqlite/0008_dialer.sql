-- Outbound dialer: campaigns, imported do-not-call numbers, the lead hopper,
-- dial attempts and questionnaire answers (SQLite).
CREATE TABLE dialer_campaigns (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    config TEXT NOT NULL,
    running INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE dialer_dnc (
    e164 TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    added_at INTEGER NOT NULL
);

CREATE TABLE dialer_leads (
    id INTEGER PRIMARY KEY,
    campaign_id INTEGER NOT NULL REFERENCES dialer_campaigns(id) ON DELETE CASCADE,
    party_id INTEGER REFERENCES parties(id) ON DELETE SET NULL,
    raw_number TEXT NOT NULL,
    e164 TEXT,
    tz TEXT,
    state TEXT NOT NULL CHECK (state IN ('ready','in_flight','done','invalid','dnc','exhausted')),
    priority INTEGER NOT NULL DEFAULT 0,
    due_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    busy_count INTEGER NOT NULL DEFAULT 0,
    no_answer_count INTEGER NOT NULL DEFAULT 0,
    machine_count INTEGER NOT NULL DEFAULT 0,
    last_result TEXT,
    last_abandon_at INTEGER,
    callback_agent INTEGER REFERENCES users(id),
    node_id TEXT,
    claimed_at INTEGER,
    problem TEXT,
    updated_at INTEGER NOT NULL
);
CREATE INDEX dialer_leads_queue ON dialer_leads(campaign_id, state, priority, due_at);
CREATE INDEX dialer_leads_node ON dialer_leads(node_id, state);

CREATE TABLE dialer_attempts (
    id INTEGER PRIMARY KEY,
    campaign_id INTEGER NOT NULL REFERENCES dialer_campaigns(id) ON DELETE CASCADE,
    lead_id INTEGER NOT NULL REFERENCES dialer_leads(id) ON DELETE CASCADE,
    node_id TEXT NOT NULL,
    call_id TEXT,
    agent_id INTEGER REFERENCES users(id),
    started_at INTEGER NOT NULL,
    answered_at INTEGER,
    bridged_at INTEGER,
    ended_at INTEGER,
    result TEXT,
    abandoned INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX dialer_attempts_lead ON dialer_attempts(lead_id);
CREATE INDEX dialer_attempts_open ON dialer_attempts(node_id, ended_at);

CREATE TABLE dialer_answers (
    attempt_id INTEGER NOT NULL REFERENCES dialer_attempts(id) ON DELETE CASCADE,
    question TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (attempt_id, question)
);
