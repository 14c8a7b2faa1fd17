-- Queries of the transactional outbox (table created by migration 0002_outbox).

-- name: insert
INSERT INTO outbox (message_id, routing_key, payload, headers, available_at)
VALUES ($1, $2, $3::jsonb, $4::jsonb, coalesce($5, now()));

-- name: claim_batch
-- Pending rows that are due, oldest first, locked for this relay; rows another relay holds are
-- skipped rather than waited for, so two relays never publish the same row at the same time.
SELECT id, message_id, routing_key, payload::text AS payload, headers::text AS headers, attempts
FROM outbox
WHERE sent_at IS NULL AND available_at <= now()
ORDER BY id
LIMIT $1
FOR UPDATE SKIP LOCKED;

-- name: mark_sent
UPDATE outbox SET sent_at = now() WHERE id = ANY($1::bigint[]);

-- name: mark_failed
-- $3 delays the next attempt: zero after a broker outage (retry as soon as it is back), a growing
-- back-off after a failure of the message itself (unroutable, refused).
UPDATE outbox
SET attempts = attempts + 1,
    last_error = $2,
    available_at = now() + $3::interval
WHERE id = $1;

-- name: backlog
SELECT count(*) FROM outbox WHERE sent_at IS NULL;

-- name: prune_sent
DELETE FROM outbox
WHERE id IN (
    SELECT id FROM outbox
    WHERE sent_at IS NOT NULL AND sent_at < now() - $1::interval
    ORDER BY id
    LIMIT $2
);
