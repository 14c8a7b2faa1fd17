-- Queries of PostgresAlertStore (financial.pkg.scheduler.alerts.postgres), tables of 0007_alerts.

-- name: take_lease
INSERT INTO scheduler_leases AS lease (name, holder, acquired_at, expires_at)
VALUES ($1, $2, now(), now() + make_interval(secs => $3))
ON CONFLICT (name) DO UPDATE
SET holder = EXCLUDED.holder,
    acquired_at = CASE WHEN lease.holder = EXCLUDED.holder THEN lease.acquired_at ELSE now() END,
    expires_at = EXCLUDED.expires_at
WHERE lease.holder = EXCLUDED.holder OR lease.expires_at <= now()
RETURNING holder;

-- name: release_lease
UPDATE scheduler_leases SET expires_at = now() WHERE name = $1 AND holder = $2;

-- name: watch
WITH added AS (
    INSERT INTO job_alerts (job, watched_since)
    SELECT names.job, $2 FROM unnest($1::text[]) AS names (job)
    ON CONFLICT (job) DO NOTHING
    RETURNING job, watched_since, late_since, late_tick, reason, alerted_at, recovered_at
)
SELECT * FROM added
UNION ALL
SELECT job, watched_since, late_since, late_tick, reason, alerted_at, recovered_at
FROM job_alerts WHERE job = ANY ($1::text[]);

-- name: rewatch
INSERT INTO job_alerts AS alert (job, watched_since)
SELECT names.job, $2 FROM unnest($1::text[]) AS names (job)
ON CONFLICT (job) DO UPDATE SET watched_since = EXCLUDED.watched_since, updated_at = now();

-- name: forget
-- A job whose alert was turned off: its state goes; the late ones are returned (for their
-- `job.alert_off` events, written in the same transaction).
WITH dropped AS (
    DELETE FROM job_alerts WHERE job = ANY ($1::text[])
    RETURNING job, watched_since, late_since, late_tick, reason, alerted_at, recovered_at
)
SELECT * FROM dropped WHERE late_since IS NOT NULL ORDER BY job;

-- name: facts
SELECT names.job,
       success.scheduled_at AS last_success_tick,
       CASE WHEN names.tick IS NULL THEN NULL ELSE EXISTS (
           SELECT 1 FROM job_runs AS run
           WHERE run.job = names.job AND run.scheduled_at = names.tick
             AND (run.started_at IS NOT NULL OR run.status = 'skipped')
       ) END AS tick_started
FROM unnest($1::text[], $2::timestamptz[]) AS names (job, tick)
LEFT JOIN LATERAL (
    SELECT scheduled_at FROM job_runs
    WHERE job = names.job AND status = 'succeeded'
    ORDER BY scheduled_at DESC
    LIMIT 1
) AS success ON true;

-- name: mark_late
INSERT INTO job_alerts AS alert (job, watched_since, late_since, late_tick, reason, alerted_at)
VALUES ($1, $5, $2, $3, $4, $5)
ON CONFLICT (job) DO UPDATE
SET late_since = EXCLUDED.late_since,
    late_tick = EXCLUDED.late_tick,
    reason = EXCLUDED.reason,
    alerted_at = EXCLUDED.alerted_at,
    updated_at = now()
WHERE alert.late_since IS NULL
RETURNING job;

-- name: mark_recovered
UPDATE job_alerts
SET late_since = NULL, late_tick = NULL, reason = NULL, recovered_at = $2, updated_at = now()
WHERE job = $1 AND late_since IS NOT NULL
RETURNING job;

-- name: late
SELECT job, watched_since, late_since, late_tick, reason, alerted_at, recovered_at
FROM job_alerts WHERE late_since IS NOT NULL ORDER BY job;
