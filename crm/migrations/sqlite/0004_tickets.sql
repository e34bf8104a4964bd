-- Support desk schema (SQLite): service centres and their mailboxes,
-- business-hours calendars and SLA policies, tickets with their messages,
-- attachments and event history, reason codes, rules, the raw inbound mail
-- store, the outbound mail outbox, SLA events, the knowledge base and
-- customer feedback. Same conventions as 0001: unix-millisecond INTEGER
-- timestamps, 0/1 booleans, JSON documents as TEXT.

-- A business-hours calendar: an IANA time zone, the weekly opening hours
-- (JSON: [[weekday 0=Mon..6=Sun, start minute, end minute], ...]) and the
-- holidays (JSON: ["YYYY-MM-DD", ...]).
CREATE TABLE business_calendars (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    tz TEXT NOT NULL,
    weekly TEXT NOT NULL,
    holidays TEXT NOT NULL DEFAULT '[]',
    created_at INTEGER NOT NULL
);

-- A service centre: public (anyone may write) or reserved (only known
-- customers); its default group (team), its head, its calendar.
CREATE TABLE service_centres (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    public INTEGER NOT NULL DEFAULT 1,
    team_id INTEGER REFERENCES teams(id),
    head_user_id INTEGER REFERENCES users(id),
    calendar_id INTEGER REFERENCES business_calendars(id),
    auto_ack INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL
);

-- The mailbox addresses that feed a centre (and that it replies from).
CREATE TABLE centre_mailboxes (
    address TEXT PRIMARY KEY,
    centre_id INTEGER NOT NULL REFERENCES service_centres(id) ON DELETE CASCADE,
    position INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX centre_mailboxes_centre ON centre_mailboxes(centre_id);

-- SLA targets per centre and priority, in business milliseconds.
CREATE TABLE sla_policies (
    id INTEGER PRIMARY KEY,
    centre_id INTEGER NOT NULL REFERENCES service_centres(id) ON DELETE CASCADE,
    priority TEXT NOT NULL CHECK (priority IN ('low','normal','high','urgent')),
    first_response_ms INTEGER,
    next_update_ms INTEGER,
    resolution_ms INTEGER,
    warn_before_ms INTEGER NOT NULL DEFAULT 0,
    UNIQUE (centre_id, priority)
);

-- The ticket number is the id ("T-12345").
CREATE TABLE tickets (
    id INTEGER PRIMARY KEY,
    centre_id INTEGER NOT NULL REFERENCES service_centres(id),
    subject TEXT NOT NULL,
    requester_id INTEGER REFERENCES parties(id),
    requester_email TEXT,
    state TEXT NOT NULL CHECK (state IN ('new','open','pending','solved','closed')),
    priority TEXT NOT NULL CHECK (priority IN ('low','normal','high','urgent')),
    product TEXT,
    topic TEXT,
    category TEXT,
    assignee_id INTEGER REFERENCES users(id),
    team_id INTEGER REFERENCES teams(id),
    parent_id INTEGER REFERENCES tickets(id),
    split_from_message INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    first_response_at INTEGER,
    last_customer_at INTEGER,
    last_agent_at INTEGER,
    state_changed_at INTEGER NOT NULL,
    solved_at INTEGER,
    closed_at INTEGER,
    first_response_due INTEGER,
    next_update_due INTEGER,
    resolution_due INTEGER,
    version INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX tickets_assignee ON tickets(assignee_id, state);
CREATE INDEX tickets_team ON tickets(team_id, state);
CREATE INDEX tickets_state ON tickets(state, state_changed_at);
CREATE INDEX tickets_requester ON tickets(requester_id);
CREATE INDEX tickets_parent ON tickets(parent_id);
CREATE INDEX tickets_centre ON tickets(centre_id, created_at);

-- Every message in and out (and internal notes). `message_id` is the
-- RFC 5322 Message-ID without angle brackets; threading looks it up.
CREATE TABLE ticket_messages (
    id INTEGER PRIMARY KEY,
    ticket_id INTEGER NOT NULL REFERENCES tickets(id),
    direction TEXT NOT NULL CHECK (direction IN ('in','out','note')),
    message_id TEXT,
    in_reply_to TEXT,
    refs TEXT NOT NULL DEFAULT '[]',
    from_addr TEXT,
    from_name TEXT,
    to_addrs TEXT NOT NULL DEFAULT '[]',
    cc_addrs TEXT NOT NULL DEFAULT '[]',
    subject TEXT NOT NULL DEFAULT '',
    body_text TEXT NOT NULL DEFAULT '',
    body_html TEXT,
    raw_id INTEGER,
    outbox_id INTEGER,
    is_auto INTEGER NOT NULL DEFAULT 0,
    flags TEXT NOT NULL DEFAULT '[]',
    author_id INTEGER REFERENCES users(id),
    party_id INTEGER REFERENCES parties(id),
    created_at INTEGER NOT NULL
);
CREATE INDEX ticket_messages_ticket ON ticket_messages(ticket_id, id);
CREATE INDEX ticket_messages_msgid ON ticket_messages(message_id);
CREATE UNIQUE INDEX ticket_messages_raw ON ticket_messages(raw_id);

CREATE TABLE ticket_attachments (
    id INTEGER PRIMARY KEY,
    message_row_id INTEGER NOT NULL REFERENCES ticket_messages(id) ON DELETE CASCADE,
    filename TEXT,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX ticket_attachments_message ON ticket_attachments(message_row_id);

-- Every action on a ticket: who, when, what, under which reason code.
CREATE TABLE ticket_events (
    id INTEGER PRIMARY KEY,
    ticket_id INTEGER NOT NULL REFERENCES tickets(id),
    at INTEGER NOT NULL,
    actor_id INTEGER,
    action TEXT NOT NULL,
    reason_code_id INTEGER,
    details TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX ticket_events_ticket ON ticket_events(ticket_id, id);

-- Reason codes ("causali"): each drives one action. `params` is JSON
-- (target state, activity kind and due offset, ...); `roles` and `users`
-- are JSON lists of who may apply it (empty = anyone who works tickets).
CREATE TABLE reason_codes (
    id INTEGER PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('set_state','assign','schedule','note')),
    params TEXT NOT NULL DEFAULT '{}',
    default_channel TEXT NOT NULL DEFAULT 'email',
    roles TEXT NOT NULL DEFAULT '[]',
    users TEXT NOT NULL DEFAULT '[]',
    active INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL
);

-- Rules as data: assignment triggers, scheduled rules and notification
-- rules. `conditions` and `action` are JSON documents the server evaluates.
CREATE TABLE ticket_rules (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('assignment','scheduled','notification')),
    name TEXT NOT NULL,
    position INTEGER NOT NULL DEFAULT 0,
    active INTEGER NOT NULL DEFAULT 1,
    conditions TEXT NOT NULL DEFAULT '{}',
    action TEXT NOT NULL DEFAULT '{}',
    rr_last_user_id INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX ticket_rules_kind ON ticket_rules(kind, position, id);

-- A scheduled or notification rule fires once per (rule, ticket, key).
CREATE TABLE rule_firings (
    rule_id INTEGER NOT NULL REFERENCES ticket_rules(id) ON DELETE CASCADE,
    ticket_id INTEGER NOT NULL REFERENCES tickets(id),
    fire_key TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (rule_id, ticket_id, fire_key)
);

-- Raw inbound mail, stored before any ticket is written; exactly once per
-- (mailbox, uidvalidity, uid).
CREATE TABLE raw_mail (
    id INTEGER PRIMARY KEY,
    mailbox TEXT NOT NULL,
    uidvalidity INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    message_id TEXT,
    raw BLOB NOT NULL,
    received_at INTEGER NOT NULL,
    ticket_id INTEGER,
    ingested_at INTEGER,
    UNIQUE (mailbox, uidvalidity, uid)
);
CREATE INDEX raw_mail_pending ON raw_mail(ingested_at);

-- Mail to send: replies, auto-acknowledgements, reminders, feedback
-- requests and notifications. The mail side polls `queued` rows.
CREATE TABLE mail_outbox (
    id INTEGER PRIMARY KEY,
    ticket_id INTEGER REFERENCES tickets(id),
    kind TEXT NOT NULL CHECK (kind IN ('reply','auto_ack','reminder','feedback_request','notification')),
    from_addr TEXT,
    recipient TEXT NOT NULL,
    to_addrs TEXT NOT NULL,
    cc_addrs TEXT NOT NULL DEFAULT '[]',
    subject TEXT NOT NULL,
    body_text TEXT NOT NULL,
    body_html TEXT,
    message_id TEXT NOT NULL,
    in_reply_to TEXT,
    refs TEXT NOT NULL DEFAULT '[]',
    auto_submitted INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL CHECK (status IN ('queued','sent','failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    sent_at INTEGER
);
CREATE INDEX mail_outbox_queue ON mail_outbox(status, next_attempt_at);
CREATE INDEX mail_outbox_recipient ON mail_outbox(kind, recipient, created_at);

-- SLA warnings and breaches, once each per (ticket, metric, event, due).
CREATE TABLE sla_events (
    id INTEGER PRIMARY KEY,
    ticket_id INTEGER NOT NULL REFERENCES tickets(id),
    metric TEXT NOT NULL CHECK (metric IN ('first_response','next_update','resolution')),
    event TEXT NOT NULL CHECK (event IN ('warning','breach')),
    due_at INTEGER NOT NULL,
    at INTEGER NOT NULL,
    UNIQUE (ticket_id, metric, event, due_at)
);
CREATE INDEX sla_events_at ON sla_events(at);

-- Measured SLA outcomes per ticket and metric, for the report.
CREATE TABLE sla_measures (
    id INTEGER PRIMARY KEY,
    ticket_id INTEGER NOT NULL REFERENCES tickets(id),
    metric TEXT NOT NULL CHECK (metric IN ('first_response','next_update','resolution')),
    centre_id INTEGER NOT NULL,
    operator_id INTEGER,
    at INTEGER NOT NULL,
    business_ms INTEGER NOT NULL,
    met INTEGER NOT NULL
);
CREATE INDEX sla_measures_at ON sla_measures(centre_id, at);

CREATE TABLE kb_articles (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    visibility TEXT NOT NULL CHECK (visibility IN ('internal','public')),
    ticket_id INTEGER REFERENCES tickets(id),
    author_id INTEGER REFERENCES users(id),
    version INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE VIRTUAL TABLE kb_fts USING fts5(title, body, content='kb_articles', content_rowid='id');
CREATE TRIGGER kb_articles_ai AFTER INSERT ON kb_articles BEGIN
    INSERT INTO kb_fts(rowid, title, body) VALUES (new.id, new.title, new.body);
END;
CREATE TRIGGER kb_articles_ad AFTER DELETE ON kb_articles BEGIN
    INSERT INTO kb_fts(kb_fts, rowid, title, body) VALUES ('delete', old.id, old.title, old.body);
END;
CREATE TRIGGER kb_articles_au AFTER UPDATE ON kb_articles BEGIN
    INSERT INTO kb_fts(kb_fts, rowid, title, body) VALUES ('delete', old.id, old.title, old.body);
    INSERT INTO kb_fts(rowid, title, body) VALUES (new.id, new.title, new.body);
END;

-- One rating per ticket (the last click wins).
CREATE TABLE ticket_feedback (
    ticket_id INTEGER NOT NULL PRIMARY KEY REFERENCES tickets(id),
    centre_id INTEGER NOT NULL,
    operator_id INTEGER,
    rating INTEGER CHECK (rating BETWEEN 1 AND 5),
    comment TEXT,
    requested_at INTEGER NOT NULL,
    rated_at INTEGER
);

-- Per-installation secrets (HMAC keys for Message-IDs and feedback links).
CREATE TABLE support_secrets (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
