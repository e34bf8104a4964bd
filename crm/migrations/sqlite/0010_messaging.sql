-- Campaign messaging, third slice: the bounce/notification mailbox's
-- position (each UID handled once), SMS parts keyed by the SMSC's message
-- id (delivery receipts name it), and fax jobs with their provider status.
CREATE TABLE campaign_inbox (
    mailbox TEXT NOT NULL,
    uidvalidity INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (mailbox, uidvalidity, uid)
);

CREATE TABLE campaign_sms_parts (
    smsc_id TEXT PRIMARY KEY,
    outbox_id INTEGER NOT NULL REFERENCES campaign_outbox(id) ON DELETE CASCADE,
    part INTEGER NOT NULL,
    parts INTEGER NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX campaign_sms_parts_outbox ON campaign_sms_parts(outbox_id);

-- state rank: queued 0 < sending 1 < delivered/failed 2 (final).
CREATE TABLE campaign_fax_jobs (
    provider TEXT NOT NULL,
    job_ref TEXT NOT NULL,
    outbox_id INTEGER NOT NULL REFERENCES campaign_outbox(id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    rank INTEGER NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (provider, job_ref)
);
