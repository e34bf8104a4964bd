-- Support desk outbox: a sender claims a queued row with a lease before it
-- talks SMTP, so two senders (or a restarted one) never send the same row
-- at the same time. The row stays 'queued' while leased; `mark sent` or
-- `mark failed` ends the lease. A sender that dies mid-send leaves the
-- lease to expire, and the row is sent again with the same Message-ID, so
-- the receiver can drop the duplicate.
ALTER TABLE mail_outbox ADD COLUMN lease_until INTEGER;
ALTER TABLE mail_outbox ADD COLUMN lease_owner TEXT;
