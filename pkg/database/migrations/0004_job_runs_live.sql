-- Live runs (pending or running) by job and lease expiry. The claim's overlap check, the wait of
-- a `queue` tick and the sweep for expired leases read these few rows only, however long the
-- history. It replaces the index of running rows alone, which left out the pending ones.
CREATE INDEX job_runs_live_idx ON job_runs (job, lease_expires_at)
    WHERE status IN ('pending', 'running');
DROP INDEX job_runs_running_idx;
