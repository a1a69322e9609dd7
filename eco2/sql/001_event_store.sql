-- The event store of a domain database. Append-only; it is also the outbox that the CDC relay reads
-- from the WAL (architecture.md §5). (aggregate_id, aggregate_version) is unique: optimistic concurrency.
CREATE TABLE IF NOT EXISTS event_store (
    position          bigserial PRIMARY KEY,
    event_id          uuid        NOT NULL UNIQUE,
    aggregate_type    text        NOT NULL,
    aggregate_id      text        NOT NULL,
    aggregate_version integer     NOT NULL CHECK (aggregate_version > 0),
    event_type        text        NOT NULL,
    schema_version    integer     NOT NULL DEFAULT 1,
    payload           jsonb       NOT NULL,
    metadata          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    occurred_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (aggregate_id, aggregate_version)
);
CREATE INDEX IF NOT EXISTS event_store_aggregate ON event_store (aggregate_type, aggregate_id);

-- Idempotent consumers: one row per (consumer, event) written in the same transaction as the effect.
CREATE TABLE IF NOT EXISTS inbox (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
