"""Applying events to a consumer's database: effect and inbox row in one transaction.

Used by the Kafka consumer runtime and by the rebuild from the event stores, so both give the same
guarantee: each event's effect is applied at most once per consumer (exactly once when its
transaction commits), in the order given.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from enum import Enum
from typing import Any

import asyncpg
from pydantic import ValidationError

from cdc.inbox import Store
from eco2.errors import Eco2Error
from eco2.events import EventEnvelope

Handler = Callable[[EventEnvelope, Any], Awaitable[None]]
"""``async def handler(envelope, conn)``: writes its effect on ``conn`` (inside the transaction)."""


class Failure(Enum):
    INFRASTRUCTURE = "infrastructure"
    """The database or network failed: retried without limit, never dead-lettered."""
    RETRIABLE = "retriable"
    """The handler failed in a way that may pass: retried with backoff, then dead-lettered."""
    PERMANENT = "permanent"
    """Retrying cannot help (bad data, ``retriable=False`` errors): dead-lettered at once."""


def classify(exc: BaseException) -> Failure:
    if isinstance(exc, OSError | asyncio.TimeoutError | asyncpg.InterfaceError):
        return Failure.INFRASTRUCTURE
    if isinstance(exc, asyncpg.PostgresConnectionError | asyncpg.CannotConnectNowError):
        return Failure.INFRASTRUCTURE
    if isinstance(exc, Eco2Error):
        return Failure.RETRIABLE if exc.retriable else Failure.PERMANENT
    if isinstance(exc, ValidationError):
        return Failure.PERMANENT
    return Failure.RETRIABLE  # unknown errors may be transient: retry, then dead-letter


async def apply_batch(
    store: Store, consumer: str, envelopes: Sequence[EventEnvelope], handler: Handler
) -> int:
    """Apply ``envelopes`` in order in one transaction; return how many were new.

    Events the consumer already applied, and repeats within the batch, are skipped. If the
    handler raises, nothing of the batch is committed and the exception propagates.
    """
    async with store.unit_of_work() as unit:
        fresh = await unit.claim(consumer, [e.event_id for e in envelopes])
        applied = 0
        for envelope in envelopes:
            if envelope.event_id in fresh:
                fresh.discard(envelope.event_id)
                await handler(envelope, unit.conn)
                applied += 1
        return applied
