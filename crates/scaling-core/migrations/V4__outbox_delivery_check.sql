-- content-scaling tracking database: the outbox remembers a delivery whose outcome is unknown.
--
-- `outcome_unknown_since` is set when a row is claimed for delivery (before the request leaves)
-- and cleared when the receiver answered "not accepted" (4xx, 429, connection refused). It stays
-- set after a reply that leaves the outcome open (timeout, dropped connection, 5xx) or when the
-- pass died in flight. The next delivery of such an email first asks Mailgun's events API
-- whether a message with the email's Message-Id was accepted since that time, and re-sends only
-- when it was not (README "Exactly once"). Named V4 so it never clashes with a V3 of another
-- branch; refinery only needs increasing versions.

ALTER TABLE outbox ADD COLUMN outcome_unknown_since TIMESTAMPTZ;
