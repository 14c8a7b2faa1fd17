-- Queries of the PostgreSQL run request store (table run_requests, migrations 0006 and 0009).
-- Timestamps and claim leases come from the database's now(), as the run store's do. An open
-- request is one whose state is pending or claimed, written `state IN ('pending', 'claimed')`
-- as the partial indexes' predicates are, so the planner matches them.

-- name: add
-- $1 request ids, $2 ticks (null: now()), $3 job, $4 trigger, $5 args (a JSON object), $6 who
-- asked. A backfill tick with an open backfill request already is left out (the partial unique
-- index run_requests_backfill_key), so a backfill asked for twice queues each tick once.
INSERT INTO run_requests (request_id, job, tick, trigger, args, requested_by)
SELECT r.request_id, $3::text, coalesce(r.tick, now()), $4::text, $5::jsonb, $6::text
FROM unnest($1::uuid[], $2::timestamptz[]) AS r (request_id, tick)
ORDER BY r.tick
ON CONFLICT (job, tick) WHERE trigger = 'backfill' AND state IN ('pending', 'claimed') DO NOTHING
RETURNING *;

-- name: notify
SELECT pg_notify('financial_run_requests', $1::text);

-- name: any_open
-- What an idle worker asks every poll (run_requests_open_idx): one cheap read, no lock.
SELECT EXISTS (SELECT 1 FROM run_requests WHERE state IN ('pending', 'claimed') AND job = ANY($1::text[]));

-- name: lock
-- Claims are decided one worker at a time (the lock conflicts with itself and lasts until the
-- transaction ends): two replicas then never claim two requests of one job at once. Inserts
-- (ROW EXCLUSIVE) wait for a claim, which is one short statement.
LOCK TABLE run_requests IN SHARE ROW EXCLUSIVE MODE;

-- name: expire
-- Requests whose worker stopped renewing its claim (it died) end `abandoned`.
UPDATE run_requests
SET state = 'done', status = 'abandoned', finished_at = now()
WHERE state = 'claimed' AND claim_expires_at <= now()
RETURNING *;

-- name: claim
-- $1 the jobs this worker runs, $2 worker id, $3 how many at most, $4 the claim lease. Each job's
-- oldest open request, when it is pending and the job has no live run (job_runs_live_idx).
WITH firsts AS (
    SELECT DISTINCT ON (job) request_id, job, state, requested_at, tick
    FROM run_requests
    WHERE state IN ('pending', 'claimed') AND job = ANY($1::text[])
    ORDER BY job, requested_at, tick, request_id
), claimable AS (
    SELECT f.request_id
    FROM firsts AS f
    WHERE f.state = 'pending'
      AND NOT EXISTS (
          SELECT 1 FROM job_runs AS j
          WHERE j.job = f.job AND j.status IN ('pending', 'running') AND j.lease_expires_at > now()
      )
    ORDER BY f.requested_at, f.tick
    LIMIT $3
), locked AS (
    SELECT r.request_id
    FROM run_requests AS r
    JOIN claimable USING (request_id)
    FOR UPDATE OF r SKIP LOCKED
)
UPDATE run_requests AS r
SET state = 'claimed', claimed_by = $2::text, claimed_at = now(),
    claim_expires_at = now() + $4::interval
FROM locked
WHERE r.request_id = locked.request_id AND r.state = 'pending'
RETURNING r.*;

-- name: renew
UPDATE run_requests
SET claim_expires_at = now() + $3::interval
WHERE request_id = ANY($1::uuid[]) AND state = 'claimed' AND claimed_by = $2::text
RETURNING request_id;

-- name: complete
-- $1 request id, $2 the worker holding its claim, $3 its run, $4 that run's final status.
UPDATE run_requests
SET state = 'done', run_id = $3::uuid, status = $4::text, finished_at = now()
WHERE request_id = $1 AND state = 'claimed' AND claimed_by = $2::text
RETURNING *;

-- name: get
SELECT * FROM run_requests WHERE request_id = $1;

-- name: open_requests
-- $2 how many at most (null: all). Pending and claimed ones, in the order they are run.
SELECT * FROM run_requests
WHERE state IN ('pending', 'claimed') AND ($1::text IS NULL OR job = $1::text)
ORDER BY requested_at, tick, request_id
LIMIT $2::int;

-- name: counts
-- Each job's open requests by state, for `jobs list` (the open rows alone: run_requests_open_idx).
SELECT job,
       count(*) FILTER (WHERE state = 'pending')::int AS pending,
       count(*) FILTER (WHERE state = 'claimed')::int AS claimed
FROM run_requests
WHERE state IN ('pending', 'claimed') AND job = ANY($1::text[])
GROUP BY job;

-- name: cancel
-- $1 the job, $2 the request ids (null: all of the job's), $3 the trigger (null: either), $4 who,
-- $5 why. Only rows still pending when the update reaches them: a claim that holds a row's lock
-- makes this statement wait for it, and READ COMMITTED then re-checks this WHERE against the row
-- as the claim left it (claimed: not cancelled). The other way round, a claim's FOR UPDATE SKIP
-- LOCKED passes over a row being cancelled and its UPDATE re-checks `state = 'pending'`. So a
-- request is either run or cancelled, never both. (The claim's table lock, SHARE ROW EXCLUSIVE,
-- also conflicts with this UPDATE's ROW EXCLUSIVE: the two are never in flight together.)
UPDATE run_requests
SET state = 'cancelled', cancelled_by = $4::text, cancel_reason = $5::text, finished_at = now()
WHERE job = $1::text AND state = 'pending'
  AND ($2::uuid[] IS NULL OR request_id = ANY($2::uuid[]))
  AND ($3::text IS NULL OR trigger = $3::text)
RETURNING *;

-- name: cancel_left
-- After `cancel`, in its transaction: $1 null (all) and the job's claimed requests of trigger $2
-- (null: either), or the requests $3 (whatever their job or state).
SELECT * FROM run_requests
WHERE CASE WHEN $3::uuid[] IS NULL
           THEN job = $1::text AND state = 'claimed' AND ($2::text IS NULL OR trigger = $2::text)
           ELSE request_id = ANY($3::uuid[]) END
ORDER BY requested_at, tick, request_id;

-- name: prune
-- $1 the cutoff, $2 the batch. Done and cancelled requests only: a pending or claimed one is
-- never deleted, however old. Oldest first, in batches, as the run history is pruned.
DELETE FROM run_requests
WHERE request_id IN (
    SELECT request_id FROM run_requests
    WHERE state IN ('done', 'cancelled') AND coalesce(finished_at, requested_at) < $1::timestamptz
    ORDER BY coalesce(finished_at, requested_at)
    LIMIT $2::int
);

-- name: succeeded_ticks
SELECT DISTINCT scheduled_at FROM job_runs
WHERE job = $1 AND status = 'succeeded' AND scheduled_at BETWEEN $2 AND $3;

-- name: next_attempt
SELECT coalesce(max(attempt), 0) + 1 FROM job_runs WHERE job = $1 AND scheduled_at = $2;
