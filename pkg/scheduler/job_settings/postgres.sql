-- name: get
SELECT schedule, timeout_seconds, enabled, calendar, alert_after_seconds
FROM job_settings WHERE job = $1;

-- name: all
SELECT job, schedule, timeout_seconds, enabled, calendar, alert_after_seconds
FROM job_settings ORDER BY job;

-- name: ensure_row
-- So that two `set`s of a job that has no row yet serialise on the row lock below.
INSERT INTO job_settings (job, updated_by) VALUES ($1, $2) ON CONFLICT (job) DO NOTHING;

-- name: lock
SELECT schedule, timeout_seconds, enabled, calendar, alert_after_seconds
FROM job_settings WHERE job = $1 FOR UPDATE;

-- name: write
UPDATE job_settings
SET schedule = $2, timeout_seconds = $3, enabled = $4, calendar = $5, alert_after_seconds = $6,
    updated_at = now(), updated_by = $7
WHERE job = $1;

-- name: delete
DELETE FROM job_settings WHERE job = $1;

-- name: audit_add
INSERT INTO job_settings_audit (job, changed_by, action, old_values, new_values, reason)
VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6)
RETURNING at;

-- name: notify
SELECT pg_notify($1, $2);

-- name: audit
SELECT job, at, changed_by, action, old_values::text AS old_values,
       new_values::text AS new_values, reason
FROM job_settings_audit WHERE job = $1 ORDER BY id DESC LIMIT $2;
