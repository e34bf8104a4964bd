-- Dialer: the SIP dialog of every outbound call still up at the carrier,
-- written when the call is placed and again when it is answered, removed
-- when it ends. After a kill -9 the restarted node ends these calls (BYE,
-- or CANCEL while ringing) before it recycles any lead, so the carrier
-- never carries two calls to one lead.
CREATE TABLE dialer_dialogs (
    call_id TEXT PRIMARY KEY,
    node_id TEXT NOT NULL,
    attempt_id BIGINT REFERENCES dialer_attempts(id) ON DELETE SET NULL,
    answered BIGINT NOT NULL DEFAULT 0,
    dialog TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX dialer_dialogs_node ON dialer_dialogs(node_id);
