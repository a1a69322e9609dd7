"""The kernel's event store API on a real domain database: append in the caller's transaction."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from eco2 import eventstore
from eco2.errors import Conflict
from eco2.events import Event, EventEnvelope, EventMetadata
from eco2.migrations import database_dsn
from tests.conftest import StackUrls

pytestmark = pytest.mark.integration


class NoteTaken(Event):
    event_type = "NoteTaken"
    text: str


def _envelope(aggregate_id: str, version: int, text: str) -> EventEnvelope:
    return EventEnvelope.of(
        NoteTaken(text=text),
        aggregate_type="note",
        aggregate_id=aggregate_id,
        aggregate_version=version,
        metadata=EventMetadata(correlation_id=aggregate_id, traceparent=None),
    )


async def test_events_commit_with_the_callers_transaction_and_versions_are_unique(
    stack: StackUrls,
) -> None:
    conn = await asyncpg.connect(database_dsn(stack.db_url, "eco2_notification"))
    aggregate = f"note-{uuid.uuid4().hex}"
    try:
        async with conn.transaction():
            await eventstore.append(
                conn, [_envelope(aggregate, 1, "가"), _envelope(aggregate, 2, "나")]
            )

        async def append_a_taken_version() -> None:
            async with conn.transaction():  # version 3 is new, version 2 is taken: all or nothing
                await eventstore.append(conn, [_envelope(aggregate, 3, "다")])
                await eventstore.append(conn, [_envelope(aggregate, 2, "again")])

        with pytest.raises(Conflict):
            await append_a_taken_version()

        rolled_back = conn.transaction()
        await rolled_back.start()
        await eventstore.append(conn, [_envelope(aggregate, 3, "never")])
        await rolled_back.rollback()

        stored = await eventstore.load(conn, aggregate)
    finally:
        await conn.close()
    assert [(e.aggregate_version, e.payload["text"]) for e in stored] == [(1, "가"), (2, "나")]
    assert all(
        e.event_type == "NoteTaken" and e.metadata.correlation_id == aggregate for e in stored
    )
