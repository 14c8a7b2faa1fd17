-- Run requests can be withdrawn while pending (`financial jobs cancel`): a new state `cancelled`
-- (the request never became a run: `status` stays NULL, `finished_at` is when it was cancelled)
-- with who cancelled it and why. A cancelled request is closed like a done one: the open index
-- and the backfill key cover pending and claimed requests only, so a cancelled backfill tick can
-- be backfilled again, and retention prunes cancelled requests as it prunes done ones.
--
-- Upgrade note: workers and command lines older than this migration read `state <> 'done'` as
-- open; upgrade them with the schema (a cancelled request would hold up an old worker's queue of
-- that job, and an old `jobs backfill` finds no index matching its ON CONFLICT).

ALTER TABLE run_requests DROP CONSTRAINT run_requests_state_check;
ALTER TABLE run_requests ADD CONSTRAINT run_requests_state_check
    CHECK (state IN ('pending', 'claimed', 'done', 'cancelled'));

ALTER TABLE run_requests
    ADD COLUMN cancelled_by text NULL,
    ADD COLUMN cancel_reason text NULL;
-- Who cancelled is kept on every cancelled request, and only on those.
ALTER TABLE run_requests ADD CONSTRAINT run_requests_cancelled_check
    CHECK ((state = 'cancelled') = (cancelled_by IS NOT NULL));

DROP INDEX run_requests_open_idx;
CREATE INDEX run_requests_open_idx ON run_requests (requested_at, tick)
    WHERE state IN ('pending', 'claimed');
DROP INDEX run_requests_backfill_key;
CREATE UNIQUE INDEX run_requests_backfill_key ON run_requests (job, tick)
    WHERE trigger = 'backfill' AND state IN ('pending', 'claimed');
