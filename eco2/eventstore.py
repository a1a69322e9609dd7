"""Append events to a domain's ``event_store`` table inside the caller's transaction.

The table is the outbox (architecture.md §5): the caller commits its state change and the events in
one transaction and never publishes to Kafka itself; the CDC relay does that from the WAL.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import asyncpg

from eco2.errors import Conflict
from eco2.events import Event, EventEnvelope, EventMetadata

_INSERT = """
INSERT INTO event_store (event_id, aggregate_type, aggregate_id, aggregate_version, event_type,
                         schema_version, payload, metadata, occurred_at)
VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb, $8::text::jsonb, $9)
"""

_SELECT = """
SELECT event_id, aggregate_type, aggregate_id, aggregate_version, event_type, schema_version,
       payload::text AS payload, metadata::text AS metadata, occurred_at
FROM event_store WHERE aggregate_id = $1 ORDER BY aggregate_version
"""


async def append(conn: asyncpg.Connection, events: Sequence[EventEnvelope]) -> None:
    """Insert ``events`` on ``conn`` (which must be inside a transaction).

    Raises :class:`Conflict` when another writer already stored one of the aggregate versions.
    """
    rows = [
        (
            e.event_id,
            e.aggregate_type,
            e.aggregate_id,
            e.aggregate_version,
            e.event_type,
            e.schema_version,
            json.dumps(e.payload, ensure_ascii=False),
            e.metadata.model_dump_json(exclude_none=True),
            e.occurred_at,
        )
        for e in events
    ]
    try:
        await conn.executemany(_INSERT, rows)
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(f"aggregate version already stored: {exc.detail}") from exc


async def append_versions(
    conn: asyncpg.Connection,
    aggregate_type: str,
    aggregate_id: str,
    first_version: int,
    events: Sequence[Event],
    metadata: EventMetadata | None = None,
) -> None:
    """Insert ``events`` as the consecutive versions of one aggregate from ``first_version``
    (the caller holds the aggregate's row lock or bumped its version in this transaction)."""
    await append(
        conn,
        [
            EventEnvelope.of(
                event,
                aggregate_type=aggregate_type,
                aggregate_id=aggregate_id,
                aggregate_version=first_version + i,
                metadata=metadata,
            )
            for i, event in enumerate(events)
        ],
    )


async def load(conn: asyncpg.Connection, aggregate_id: str) -> list[EventEnvelope]:
    """All events of one aggregate in version order."""
    return [
        EventEnvelope.model_validate(
            {**dict(r), "payload": json.loads(r["payload"]), "metadata": json.loads(r["metadata"])}
        )
        for r in await conn.fetch(_SELECT, aggregate_id)
    ]
