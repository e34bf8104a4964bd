-- Dialer, second part (PostgreSQL): dispositions through the CRM outcome
-- graph (the intended disposition is written on the attempt before the CRM
-- steps, so recovery after a crash can finish it instead of dialing again),
-- the attempt as the dialer's call record (outcome, activity, recording),
-- AMD machine classifications for the UK abandon form, per-campaign stats.
ALTER TABLE dialer_attempts ADD COLUMN outcome_id BIGINT REFERENCES outcomes(id);
ALTER TABLE dialer_attempts ADD COLUMN activity_id BIGINT REFERENCES activities(id);
ALTER TABLE dialer_attempts ADD COLUMN notes TEXT;
ALTER TABLE dialer_attempts ADD COLUMN disposition TEXT;
ALTER TABLE dialer_attempts ADD COLUMN recording TEXT;
CREATE INDEX dialer_attempts_campaign_ended ON dialer_attempts(campaign_id, ended_at);
CREATE INDEX dialer_attempts_call ON dialer_attempts(call_id);
