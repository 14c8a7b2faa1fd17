-- Dead-man alerts (issue 14): a lease row so one replica at a time computes lateness, and one
-- row of alert state per watched job so a `job.late` alert is raised once across replicas and
-- restarts, and `job.recovered` once when the job succeeds again.

-- Named leases for work one replica does at a time (the late-job checker: 'late_jobs').
-- Expiry is the database's `now()`, as for run leases; an expired row is taken over.
CREATE TABLE scheduler_leases (
    name        text PRIMARY KEY CHECK (name <> ''),
    holder      text NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);

CREATE TABLE job_alerts (
    job           text PRIMARY KEY,
    -- When the checker first watched the job: the reference for a job that never succeeded.
    watched_since timestamptz NOT NULL,
    -- Set while the job is late; NULL when it is not.
    late_since    timestamptz NULL,
    -- The tick that made it late; a success of this tick or a later one recovers it.
    late_tick     timestamptz NULL,
    reason        text NULL,
    alerted_at    timestamptz NULL,
    recovered_at  timestamptz NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((late_since IS NULL) = (late_tick IS NULL))
);
-- The status page and every replica's gauge read the late ones only.
CREATE INDEX job_alerts_late_idx ON job_alerts (job) WHERE late_since IS NOT NULL;

-- The checker asks for each watched job's latest success every few seconds; a job that has been
-- failing for a while would otherwise be scanned back through all its failures.
CREATE INDEX job_runs_succeeded_idx ON job_runs (job, scheduled_at DESC)
    WHERE status = 'succeeded';
