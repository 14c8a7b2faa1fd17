-- Runs asked for by an operator (`financial jobs trigger`, `financial jobs backfill`) and run by
-- whichever replica has room. A request is `pending` until a worker claims it (`claimed`, with a
-- claim lease that worker renews), then `done` with the run it became and that run's final status.
-- A worker that dies holding a claim leaves it to expire: the request ends `done`/`abandoned`
-- (at most once, as a run whose replica died), never run a second time behind the operator's back.

ALTER TABLE job_runs DROP CONSTRAINT job_runs_trigger_check;
ALTER TABLE job_runs ADD CONSTRAINT job_runs_trigger_check
    CHECK (trigger IN ('schedule', 'catchup', 'manual', 'retry', 'backfill'));

CREATE TABLE run_requests (
    request_id        uuid PRIMARY KEY,
    job               text NOT NULL,
    -- The tick the run belongs to: the one asked for (`--tick`, a backfill tick), else the
    -- instant the request was recorded.
    tick              timestamptz NOT NULL,
    trigger           text NOT NULL CHECK (trigger IN ('manual', 'backfill')),
    args              jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(args) = 'object'),
    requested_at      timestamptz NOT NULL DEFAULT now(),
    requested_by      text NOT NULL,
    state             text NOT NULL DEFAULT 'pending'
                          CHECK (state IN ('pending', 'claimed', 'done')),
    claimed_by        text NULL,
    claimed_at        timestamptz NULL,
    claim_expires_at  timestamptz NULL,
    run_id            uuid NULL,
    status            text NULL CHECK (status IN (
                          'succeeded', 'failed', 'timed_out', 'skipped', 'missed',
                          'interrupted', 'abandoned')),
    finished_at       timestamptz NULL,
    CHECK ((state = 'done') = (status IS NOT NULL))
);
-- Open requests in the order they are run: oldest request first, then its ticks in order.
CREATE INDEX run_requests_open_idx ON run_requests (requested_at, tick) WHERE state <> 'done';
-- A backfill asked for twice does not queue a tick twice while the first is still open.
CREATE UNIQUE INDEX run_requests_backfill_key ON run_requests (job, tick)
    WHERE trigger = 'backfill' AND state <> 'done';
