"""Applying events to a consumer's database: effect and inbox row in one transaction.

Used by the Kafka consumer runtime and by the rebuild from the event stores, so both give the same
guarantee: each event's effect is applied at most once per consumer (exactly once when its
transaction commits), in the order given.

A handler is either a plain ``async def handler(envelope, conn)``, called once per new event, or
one that also has ``apply_batch(conn, envelopes)`` (a :class:`BatchHandler`, see
:func:`batch_handler`), which gets all new events of a batch at once so it can write their effects
in one statement (e.g. ``INSERT ... SELECT FROM unnest(...)``) instead of one database round trip
per event. Both kinds give the same guarantees.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from enum import Enum
from typing import Any

import asyncpg
import redis.exceptions
from pydantic import ValidationError

from cdc.consumers.inbox import Store
from eco2.errors import Eco2Error
from eco2.events import EventEnvelope

Handler = Callable[[EventEnvelope, Any], Awaitable[None]]
"""``async def handler(envelope, conn)``: writes its effect on ``conn`` (inside the transaction)."""

BatchEffect = Callable[[Any, Sequence[EventEnvelope]], Awaitable[None]]
"""``async def effect(conn, envelopes)``: writes the effects of ``envelopes`` on ``conn``."""


class BatchHandler:
    """A handler that applies the new events of a batch in one call.

    ``apply_batch(conn, envelopes)`` receives, inside the batch's transaction, exactly the events
    the inbox had not recorded yet (each once, in delivery order, so per partition in offset
    order) and must write all their effects in that order, e.g. in one ``INSERT ... SELECT FROM
    unnest(...)``. If it raises, the whole batch rolls back (effects and inbox rows).

    Calling the handler with one event (``await handler(envelope, conn)``) applies a batch of
    one: that is what the consumer runtime does when a batch fails, so a poison event is retried
    and dead-lettered alone while the other events of its batch are applied.
    """

    def __init__(self, apply_batch: BatchEffect) -> None:
        self.apply_batch = apply_batch

    async def __call__(self, envelope: EventEnvelope, conn: Any) -> None:
        await self.apply_batch(conn, [envelope])


def batch_handler(effect: BatchEffect) -> BatchHandler:
    """Decorator: ``async def effect(conn, envelopes)`` → a :class:`BatchHandler`."""
    return BatchHandler(effect)


class Failure(Enum):
    INFRASTRUCTURE = "infrastructure"
    """The store (PostgreSQL, or the read models' Valkey) or the network failed: retried
    without limit, never dead-lettered — every event would fail alike until it is back."""
    RETRIABLE = "retriable"
    """The handler failed in a way that may pass: retried with backoff, then dead-lettered."""
    PERMANENT = "permanent"
    """Retrying cannot help (bad data, ``retriable=False`` errors): dead-lettered at once."""


def classify(exc: BaseException) -> Failure:
    if isinstance(exc, OSError | asyncio.TimeoutError | asyncpg.InterfaceError):
        return Failure.INFRASTRUCTURE
    if isinstance(exc, asyncpg.PostgresConnectionError | asyncpg.CannotConnectNowError):
        return Failure.INFRASTRUCTURE
    # Valkey down, restarting or still loading its data (BusyLoadingError is a
    # ConnectionError): a projector waits for it rather than dead-lettering what it missed.
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return Failure.INFRASTRUCTURE
    if isinstance(exc, Eco2Error):
        return Failure.RETRIABLE if exc.retriable else Failure.PERMANENT
    if isinstance(exc, ValidationError):
        return Failure.PERMANENT
    return Failure.RETRIABLE  # unknown errors may be transient: retry, then dead-letter


async def apply_batch(
    store: Store,
    consumer: str,
    envelopes: Sequence[EventEnvelope],
    handler: Handler,
    applied: set[str] | None = None,
) -> int:
    """Apply ``envelopes`` in order in one transaction; return how many were new.

    The inbox rows of the whole batch are written in one statement. Events the consumer already
    applied, and repeats within the batch, are skipped; the rest go, in order, to the handler:
    in one ``apply_batch(conn, envelopes)`` call if the handler has that method (a
    :class:`BatchHandler`), else one call per event. If the
    handler raises, nothing of the batch is committed and the exception propagates.
    ``applied``, when given, receives the ids of the events that were new (inbox misses).
    """
    async with store.unit_of_work() as unit:
        fresh = await unit.claim(consumer, [e.event_id for e in envelopes])
        new: list[EventEnvelope] = []
        for envelope in envelopes:
            if envelope.event_id in fresh:
                fresh.discard(envelope.event_id)
                new.append(envelope)
        batch: BatchEffect | None = getattr(handler, "apply_batch", None)
        if batch is not None:
            if new:
                await batch(unit.conn, new)
        else:
            for envelope in new:
                await handler(envelope, unit.conn)
        if applied is not None:
            applied.update(str(e.event_id) for e in new)
        return len(new)
