-- Indexes for what an idle pass asks every minute (store/probe.rs), so its cost does not grow
-- with years of history: the campaigns at a status (few A2 among thousands of A3), and the
-- transitions still pending (few among one per campaign and status).
CREATE INDEX campaigns_status ON campaigns (status);
CREATE INDEX campaign_transitions_pending ON campaign_transitions (to_status, requested_at)
    WHERE state = 'pending';
