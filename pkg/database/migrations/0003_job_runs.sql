-- Run history, tick claims and leases (DESIGN section 6), and the pause switch of each job.

CREATE TABLE job_runs (
    run_id            uuid PRIMARY KEY,
    job               text NOT NULL,
    scheduled_at      timestamptz NOT NULL,
    attempt           integer NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    trigger           text NOT NULL CHECK (trigger IN ('schedule', 'catchup', 'manual', 'retry')),
    status            text NOT NULL DEFAULT 'pending' CHECK (status IN (
                          'pending', 'running', 'succeeded', 'failed', 'timed_out',
                          'skipped', 'missed', 'interrupted', 'abandoned')),
    worker_id         text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz NULL,
    finished_at       timestamptz NULL,
    duration_ms       double precision NULL,
    error_type        text NULL,
    error_message     text NULL,
    trace_id          text NULL,
    -- Set from the database's now() so replicas with skewed clocks agree on expiry.
    lease_expires_at  timestamptz NULL,
    -- Increases with each takeover: a replica holding an older fence cannot overwrite the row.
    fence             bigint NOT NULL DEFAULT 0,
    -- What makes a tick run once across replicas: the first insert wins.
    CONSTRAINT job_runs_tick_key UNIQUE (job, scheduled_at, attempt)
);
CREATE INDEX job_runs_job_scheduled_at_idx ON job_runs (job, scheduled_at DESC);
-- Overlap checks and the abandoned-lease sweep look at running rows only.
CREATE INDEX job_runs_running_idx ON job_runs (status) WHERE status = 'running';
-- History pruning by age.
CREATE INDEX job_runs_created_at_idx ON job_runs (created_at);

CREATE TABLE job_state (
    job            text PRIMARY KEY,
    paused         boolean NOT NULL DEFAULT false,
    paused_reason  text NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
