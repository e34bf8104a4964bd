-- Dialer: the answering-machine detector's verdict on an answered call
-- (`human`, `machine` or `not_sure`; NULL when AMD was off or the call
-- was never answered). Machine answers are also booked with result
-- `machine`, which the UK abandon form counts.
ALTER TABLE dialer_attempts ADD COLUMN amd TEXT;
