-- Core CRM schema (SQLite). Timestamps are unix milliseconds (INTEGER),
-- booleans are 0/1 integers, so the same row decoding works on PostgreSQL.
CREATE TABLE teams (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    parent_id INTEGER REFERENCES teams(id),
    lead_user_id INTEGER,
    created_at INTEGER NOT NULL
);

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('agent','support','marketer','supervisor','admin')),
    team_id INTEGER REFERENCES teams(id),
    active INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE commercial_states (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    position INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE parties (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('company','person')),
    name TEXT NOT NULL,
    first_name TEXT,
    last_name TEXT,
    company_id INTEGER REFERENCES parties(id),
    stage TEXT NOT NULL CHECK (stage IN ('lead','suspect','prospect','customer')),
    commercial_state_id INTEGER REFERENCES commercial_states(id),
    owner_id INTEGER REFERENCES users(id),
    city TEXT,
    zone TEXT,
    do_not_call INTEGER NOT NULL DEFAULT 0,
    notes TEXT,
    merged_into INTEGER REFERENCES parties(id),
    version INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX parties_owner ON parties(owner_id);
CREATE INDEX parties_city ON parties(city);
CREATE INDEX parties_name ON parties(name);

CREATE TABLE party_phones (
    id INTEGER PRIMARY KEY,
    party_id INTEGER NOT NULL REFERENCES parties(id) ON DELETE CASCADE,
    e164 TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'other',
    position INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX party_phones_e164 ON party_phones(e164);
CREATE INDEX party_phones_party ON party_phones(party_id);

CREATE TABLE party_emails (
    id INTEGER PRIMARY KEY,
    party_id INTEGER NOT NULL REFERENCES parties(id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'other',
    position INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX party_emails_email ON party_emails(email);
CREATE INDEX party_emails_party ON party_emails(party_id);

CREATE TABLE party_sites (
    id INTEGER PRIMARY KEY,
    party_id INTEGER NOT NULL REFERENCES parties(id) ON DELETE CASCADE,
    label TEXT NOT NULL,
    street TEXT,
    city TEXT,
    province TEXT,
    postcode TEXT,
    country TEXT
);
CREATE INDEX party_sites_party ON party_sites(party_id);

CREATE TABLE party_chars (
    party_id INTEGER NOT NULL REFERENCES parties(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (party_id, key)
);

CREATE TABLE party_consents (
    party_id INTEGER NOT NULL REFERENCES parties(id) ON DELETE CASCADE,
    channel TEXT NOT NULL CHECK (channel IN ('email','sms','phone','fax')),
    granted INTEGER NOT NULL,
    at INTEGER NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (party_id, channel)
);

CREATE TABLE oplog (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor_id INTEGER,
    entity TEXT NOT NULL,
    entity_id INTEGER NOT NULL,
    action TEXT NOT NULL,
    changes TEXT NOT NULL
);
CREATE INDEX oplog_entity ON oplog(entity, entity_id);
