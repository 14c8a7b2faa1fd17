-- Queries of the PostgreSQL run store (tables from migrations 0003_job_runs and 0004). Every
-- timestamp and lease comes from the database's now(), so replicas whose clocks disagree still
-- agree on when a lease expires. Each call is one statement (one round trip), and each is safe to
-- repeat after a lost connection: a repeat finds what the first try did.

-- name: claim_many
-- Claims of ticks in one statement (`claim` sends a batch of one). $1 run ids (chosen by the
-- caller, so a repeat finds its own rows), $2 jobs, $3 scheduled_at, $4 attempts, $5 triggers,
-- $6 overlap policies, $7 whether a pause holds each back: arrays of one length, one element per
-- tick, no job twice. $8 worker_id, $9 lease, $10 the overlap skip reason, $11 the replace
-- reason. Pause and overlap are decided in the same statement as the insert: a tick refused is
-- inserted `skipped` at once. Rows are inserted in key order: replicas claiming the same ticks at
-- once then meet on the first key they share and wait for each other there, rather than each
-- holding a key the other needs.
WITH requested AS (
    SELECT *
    FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::integer[], $5::text[],
                $6::text[], $7::boolean[])
        AS r (run_id, job, scheduled_at, attempt, trigger, overlap, honours_pause)
), decided AS (
    SELECT r.run_id, r.job, r.scheduled_at, r.attempt, r.trigger,
           CASE
               WHEN state.job IS NOT NULL
                   THEN 'paused' || coalesce(': ' || state.paused_reason, '')
               WHEN busy.worker_id IS NOT NULL
                   THEN $10::text || ' (on worker ' || busy.worker_id || ')'
           END AS refusal
    FROM requested AS r
    LEFT JOIN job_state AS state ON state.job = r.job AND state.paused AND r.honours_pause
    -- Only a `skip` tick looks for another live run (job_runs_live_idx: the job's few live rows).
    LEFT JOIN LATERAL (
        SELECT worker_id FROM job_runs
        WHERE r.overlap = 'skip'
          AND job = r.job AND status IN ('pending', 'running') AND lease_expires_at > now()
        ORDER BY scheduled_at, attempt
        LIMIT 1
    ) AS busy ON true
), inserted AS (
    INSERT INTO job_runs (
        run_id, job, scheduled_at, attempt, trigger, status, worker_id,
        finished_at, error_type, error_message, lease_expires_at, fence
    )
    SELECT d.run_id, d.job, d.scheduled_at, d.attempt, d.trigger,
           CASE WHEN d.refusal IS NULL THEN 'pending' ELSE 'skipped' END,
           $8,
           CASE WHEN d.refusal IS NOT NULL THEN now() END,
           CASE WHEN d.refusal IS NOT NULL THEN 'skipped' END,
           d.refusal,
           CASE WHEN d.refusal IS NULL THEN now() + $9::interval END,
           1
    FROM decided AS d
    ORDER BY d.job, d.scheduled_at, d.attempt
    ON CONFLICT (job, scheduled_at, attempt) DO NOTHING
    RETURNING *
), replaced AS (
    -- The jobs whose `replace` tick this statement won and that go on: their other live runs end
    -- here (not the new ones, which this statement's snapshot does not see), their fence raised
    -- so that their workers' renewals fail and they cancel those runs.
    UPDATE job_runs AS o
    SET status = 'interrupted',
        fence = o.fence + 1,
        finished_at = now(),
        duration_ms = extract(epoch FROM now() - o.started_at)::float8 * 1000,
        error_type = 'interrupted',
        error_message = $11::text,
        lease_expires_at = NULL
    FROM (
        SELECT DISTINCT i.job
        FROM inserted AS i JOIN requested AS r ON r.run_id = i.run_id
        WHERE i.status = 'pending' AND r.overlap = 'replace'
    ) AS winner
    WHERE o.job = winner.job
      AND o.status IN ('pending', 'running')
      AND o.lease_expires_at > now()
    RETURNING o.run_id
)
SELECT run_id, job, scheduled_at, attempt, trigger, status, worker_id, created_at, started_at,
       finished_at, error_type, error_message, trace_id, fence, lease_expires_at, duration_ms
FROM inserted
UNION ALL
-- A repeat after a lost reply finds the rows its first try inserted.
SELECT run_id, job, scheduled_at, attempt, trigger, status, worker_id, created_at, started_at,
       finished_at, error_type, error_message, trace_id, fence, lease_expires_at, duration_ms
FROM job_runs
WHERE run_id = ANY($1::uuid[]) AND run_id NOT IN (SELECT run_id FROM inserted);

-- name: start_many
-- Runs marked `running` in one statement (`start` sends a batch of one). $1 run ids (no id
-- twice), $2 their fences, $3 trace ids, $4 lease. Returns each known run as it is now: `running`
-- with the caller's fence when the run may go on.
WITH requested AS (
    SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[]) AS r (run_id, fence, trace_id)
), locked AS (
    -- Rows locked in run id order first: two statements over overlapping runs (a worker's
    -- renewal and its finishes, say) then wait for each other instead of deadlocking.
    SELECT run_id FROM job_runs WHERE run_id = ANY($1::uuid[]) ORDER BY run_id FOR UPDATE
), started AS (
    UPDATE job_runs AS j
    SET status = 'running', started_at = now(), trace_id = r.trace_id,
        lease_expires_at = now() + $4::interval
    FROM requested AS r
    WHERE j.run_id = r.run_id AND j.fence = r.fence AND j.status = 'pending'
      AND j.run_id IN (SELECT run_id FROM locked)
    RETURNING j.*
)
SELECT run_id, job, scheduled_at, attempt, trigger, status, worker_id, created_at, started_at,
       finished_at, error_type, error_message, trace_id, fence, lease_expires_at, duration_ms
FROM started
UNION ALL
SELECT run_id, job, scheduled_at, attempt, trigger, status, worker_id, created_at, started_at,
       finished_at, error_type, error_message, trace_id, fence, lease_expires_at, duration_ms
FROM job_runs
WHERE run_id = ANY($1::uuid[]) AND run_id NOT IN (SELECT run_id FROM started);

-- name: renew
-- $1 run ids, $2 their fences, $3 lease: one statement for every run this worker holds, its
-- rows locked in run id order first (as start_many and finish_many lock theirs).
WITH locked AS (
    SELECT run_id FROM job_runs WHERE run_id = ANY($1::uuid[]) ORDER BY run_id FOR UPDATE
)
UPDATE job_runs AS r
SET lease_expires_at = now() + $3::interval
FROM unnest($1::uuid[], $2::bigint[]) AS held (run_id, fence)
WHERE r.run_id = held.run_id AND r.fence = held.fence AND r.status IN ('pending', 'running')
  AND r.run_id IN (SELECT run_id FROM locked)
RETURNING r.run_id;

-- name: finish_many
-- Runs given their final status in one statement (`finish` sends a batch of one). $1 run ids
-- (no id twice), $2 their fences, $3 final statuses, $4 error types, $5 error messages, $6 the
-- jobs' own durations (null: from the start to now). Rows
-- final already, or whose fence moved on, are returned unchanged.
WITH requested AS (
    SELECT *
    FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::float8[])
        AS r (run_id, fence, status, error_type, error_message, duration_ms)
), locked AS (
    -- Rows locked in run id order first: two statements over overlapping runs (a worker's
    -- renewal and its finishes, say) then wait for each other instead of deadlocking.
    SELECT run_id FROM job_runs WHERE run_id = ANY($1::uuid[]) ORDER BY run_id FOR UPDATE
), finished AS (
    UPDATE job_runs AS j
    SET status = r.status,
        finished_at = now(),
        duration_ms = coalesce(r.duration_ms, extract(epoch FROM now() - j.started_at) * 1000),
        error_type = r.error_type,
        error_message = r.error_message,
        lease_expires_at = NULL
    FROM requested AS r
    WHERE j.run_id = r.run_id AND j.fence = r.fence AND j.status IN ('pending', 'running')
      AND j.run_id IN (SELECT run_id FROM locked)
    RETURNING j.*
)
SELECT run_id, job, scheduled_at, attempt, trigger, status, worker_id, created_at, started_at,
       finished_at, error_type, error_message, trace_id, fence, lease_expires_at, duration_ms
FROM finished
UNION ALL
SELECT run_id, job, scheduled_at, attempt, trigger, status, worker_id, created_at, started_at,
       finished_at, error_type, error_message, trace_id, fence, lease_expires_at, duration_ms
FROM job_runs
WHERE run_id = ANY($1::uuid[]) AND run_id NOT IN (SELECT run_id FROM finished);

-- name: live_runs
SELECT run_id, job, scheduled_at, attempt, trigger, status, worker_id, created_at, started_at,
       finished_at, error_type, error_message, trace_id, fence, lease_expires_at, duration_ms
FROM job_runs
WHERE job = $1 AND status IN ('pending', 'running') AND lease_expires_at > now()
ORDER BY scheduled_at, attempt;

-- name: sweep_abandoned
-- Rows another replica is sweeping at the same moment are skipped, not waited for; a row whose
-- worker finished it meanwhile no longer matches once locked.
WITH expired AS (
    SELECT run_id FROM job_runs
    WHERE status IN ('pending', 'running') AND lease_expires_at <= now()
    ORDER BY lease_expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE job_runs AS r
SET status = 'abandoned',
    fence = r.fence + 1,
    finished_at = now(),
    duration_ms = extract(epoch FROM now() - r.started_at)::float8 * 1000,
    error_type = 'abandoned',
    error_message = 'lease expired: worker ' || r.worker_id || ' stopped renewing it',
    lease_expires_at = NULL
FROM expired
WHERE r.run_id = expired.run_id
RETURNING r.run_id, r.job, r.scheduled_at, r.attempt, r.trigger, r.status, r.worker_id,
          r.created_at, r.started_at, r.finished_at, r.error_type, r.error_message, r.trace_id,
          r.fence, r.lease_expires_at, r.duration_ms;

-- name: prune
-- $1 age, $2 batch size: final rows only, oldest first, a bounded batch per statement. Replicas
-- pruning at the same moment take different rows instead of waiting for each other's.
DELETE FROM job_runs
WHERE run_id IN (
    SELECT run_id FROM job_runs
    WHERE created_at < now() - $1::interval AND status NOT IN ('pending', 'running')
    ORDER BY created_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
);

-- name: pause
INSERT INTO job_state (job, paused, paused_reason, updated_at)
VALUES ($1, true, $2, now())
ON CONFLICT (job) DO UPDATE
SET paused = true, paused_reason = excluded.paused_reason, updated_at = now();

-- name: resume
UPDATE job_state
SET paused = false, paused_reason = NULL, updated_at = now()
WHERE job = $1 AND paused
RETURNING job;

-- name: paused
SELECT job, paused_reason FROM job_state WHERE paused ORDER BY job;

-- name: recorded_ticks
SELECT DISTINCT scheduled_at FROM job_runs WHERE job = $1 AND scheduled_at >= $2;

-- name: history_all
-- $1 status or NULL, $2 limit.
SELECT run_id, job, scheduled_at, attempt, trigger, status, worker_id, created_at, started_at,
       finished_at, error_type, error_message, trace_id, fence, lease_expires_at, duration_ms
FROM job_runs
WHERE $1::text IS NULL OR status = $1
ORDER BY scheduled_at DESC, attempt DESC, created_at DESC
LIMIT $2;

-- name: history_job
-- A query of its own for one job, so it always walks the (job, scheduled_at) index.
SELECT run_id, job, scheduled_at, attempt, trigger, status, worker_id, created_at, started_at,
       finished_at, error_type, error_message, trace_id, fence, lease_expires_at, duration_ms
FROM job_runs
WHERE job = $1 AND ($2::text IS NULL OR status = $2)
ORDER BY scheduled_at DESC, attempt DESC, created_at DESC
LIMIT $3;

-- name: summaries
SELECT names.job,
       last_run.status AS last_status,
       last_run.scheduled_at AS last_scheduled_at,
       last_run.worker_id AS last_worker_id,
       last_success.scheduled_at AS last_success_at,
       coalesce(state.paused, false) AS paused,
       state.paused_reason
FROM unnest($1::text[]) AS names (job)
LEFT JOIN LATERAL (
    SELECT status, scheduled_at, worker_id FROM job_runs
    WHERE job = names.job
    ORDER BY scheduled_at DESC, attempt DESC, created_at DESC
    LIMIT 1
) AS last_run ON true
LEFT JOIN LATERAL (
    SELECT scheduled_at FROM job_runs
    WHERE job = names.job AND status = 'succeeded'
    ORDER BY scheduled_at DESC
    LIMIT 1
) AS last_success ON true
LEFT JOIN job_state AS state ON state.job = names.job AND state.paused;

-- name: recent_runs
-- $1 job names (no name twice), $2 runs per job: the newest runs of each job in one round trip
-- (the status page's overview), each job's walking the (job, scheduled_at) index.
SELECT recent.run_id, recent.job, recent.scheduled_at, recent.attempt, recent.trigger,
       recent.status, recent.worker_id, recent.created_at, recent.started_at, recent.finished_at,
       recent.error_type, recent.error_message, recent.trace_id, recent.fence,
       recent.lease_expires_at, recent.duration_ms
FROM unnest($1::text[]) AS names (job)
CROSS JOIN LATERAL (
    SELECT run_id, job, scheduled_at, attempt, trigger, status, worker_id, created_at,
           started_at, finished_at, error_type, error_message, trace_id, fence,
           lease_expires_at, duration_ms
    FROM job_runs
    WHERE job = names.job
    ORDER BY scheduled_at DESC, attempt DESC, created_at DESC
    LIMIT $2
) AS recent;
