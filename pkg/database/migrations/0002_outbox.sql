-- Transactional outbox: events written in the same transaction as the data they describe, then
-- published to RabbitMQ by the relay and marked sent.

CREATE TABLE outbox (
    id            bigserial PRIMARY KEY,
    -- Stable across redeliveries: consumers drop duplicates by it (at-least-once delivery).
    message_id    uuid NOT NULL UNIQUE,
    routing_key   text NOT NULL CHECK (routing_key <> ''),
    payload       jsonb NOT NULL,
    headers       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- A row is not relayed before this instant (delayed events, or a back-off after failures).
    available_at  timestamptz NOT NULL DEFAULT now(),
    attempts      integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error    text NULL,
    sent_at       timestamptz NULL
);
-- The relay's claim scans pending rows in id order; sent rows (most of the table) stay out of it.
CREATE INDEX outbox_pending_idx ON outbox (id) WHERE sent_at IS NULL;
-- Pruning of sent rows by age.
CREATE INDEX outbox_sent_at_idx ON outbox (sent_at) WHERE sent_at IS NOT NULL;
