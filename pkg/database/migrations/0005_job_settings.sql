-- Runtime settings per job (`financial jobs set`), applied by every replica without a restart,
-- and the audit of every change. A NULL column is "not set": the environment's or the code's
-- value applies. Precedence: runtime setting > environment > code.

CREATE TABLE job_settings (
    job              text PRIMARY KEY,
    schedule         text NULL,
    timeout_seconds  double precision NULL CHECK (timeout_seconds > 0),
    enabled          boolean NULL,
    calendar         text NULL,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    updated_by       text NOT NULL
);

-- One row per change: who (OS user@host of the CLI, or --by), when (the database's now()), the
-- values before and after (JSON objects with the four settings; null = not set), and why.
CREATE TABLE job_settings_audit (
    id          bigserial PRIMARY KEY,
    job         text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    changed_by  text NOT NULL,
    action      text NOT NULL CHECK (action IN ('set', 'reset')),
    old_values  jsonb NOT NULL,
    new_values  jsonb NOT NULL,
    reason      text NULL
);
CREATE INDEX job_settings_audit_job_idx ON job_settings_audit (job, id DESC);
