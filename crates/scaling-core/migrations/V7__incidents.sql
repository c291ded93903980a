-- Critical alerts: the open incident of each binary whose passes fail as a whole (exit 1) or
-- cannot reach a dependency (exit 75). One row per binary while the incident lasts, so the
-- critical email is queued once per incident (alerted_at) and the "recovered" email once, when
-- the next pass succeeds and deletes the row. The probe statement lists the binaries with an
-- open incident, so an idle successful pass pays nothing for this.
CREATE TABLE incidents (
    binary_name text PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('failed', 'unreachable')),
    started_at timestamptz NOT NULL DEFAULT now(),
    last_error text,
    alerted_at timestamptz
);
