-- Call detail records and agents' SIP secrets (SQLite).
CREATE TABLE call_records (
    id INTEGER PRIMARY KEY,
    call_id TEXT NOT NULL UNIQUE,
    direction TEXT NOT NULL CHECK (direction IN ('inbound','outbound')),
    from_user TEXT NOT NULL,
    to_user TEXT NOT NULL,
    caller_e164 TEXT,
    party_id INTEGER REFERENCES parties(id),
    agent_id INTEGER REFERENCES users(id),
    started_at INTEGER NOT NULL,
    ringing_at INTEGER,
    answered_at INTEGER,
    ended_at INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    sip_status INTEGER,
    recording TEXT,
    bridged_with TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL
);
CREATE INDEX call_records_party ON call_records(party_id);
CREATE INDEX call_records_started ON call_records(started_at);

CREATE TABLE sip_secrets (
    user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    secret TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
