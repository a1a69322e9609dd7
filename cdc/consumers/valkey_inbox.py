"""The Valkey inbox: a read model's inbox and the projection's writes in one MULTI/EXEC.

:class:`ValkeyStore` is the third :class:`~cdc.consumers.inbox.Store` adapter. A unit of work is a
transactional pipeline: ``claim`` WATCHes the consumer's inbox set, reads which event ids it
already holds, then opens MULTI and queues ``SADD`` of the new ids; the projection queues its
writes on the same pipeline (``unit.conn``); leaving the unit runs EXEC. So an event's read-model
writes and its inbox entry land together or not at all, and if another process recorded any of
these events meanwhile (a rebalance overlap), EXEC fails with ``WatchError`` and the batch is
retried, finding them recorded. Projections therefore never need their own dedup, and may use
non-idempotent commands (``HINCRBY``, ``ZINCRBY``).

Projections must be deterministic functions of the events (take times from ``occurred_at`` or the
payload, never the clock), so ``eco2 cdc rebuild <projection>`` reproduces them exactly.

The inbox of a projection is one set per consumer (``rm:inbox:<consumer>``); it grows with the
number of events (about 80 bytes each). Trim it only together with a rebuild.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import redis.asyncio as redis
from redis.asyncio.client import Pipeline

from cdc.consumers.inbox import Reset

INBOX_PREFIX = "rm:inbox:"
WHOLE_PREFIX = "rm:whole:"


def inbox_key(consumer: str) -> str:
    return f"{INBOX_PREFIX}{consumer}"


def whole_key(consumer: str) -> str:
    """Set once the consumer's read model was built from the event stores; a Valkey that comes
    back without its data comes back without it (the projector then rebuilds)."""
    return f"{WHOLE_PREFIX}{consumer}"


class _ValkeyUnit:
    def __init__(self, client: redis.Redis, pipe: Pipeline) -> None:
        self._client = client
        self.conn: Pipeline = pipe
        self._in_multi = False

    async def claim(self, consumer: str, event_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        key = inbox_key(consumer)
        ids = list(dict.fromkeys(str(e) for e in event_ids))
        if not ids:
            return set()
        if self._in_multi:  # a second consumer in one unit: read without WATCH
            known = await self._client.smismember(key, ids)
        else:
            await self.conn.watch(key)
            known = await self.conn.smismember(key, ids)
            self.conn.multi()  # type: ignore[no-untyped-call]
            self._in_multi = True
        fresh = [event_id for event_id, seen in zip(ids, known, strict=True) if not seen]
        if fresh:
            self.conn.sadd(key, *fresh)
        return {uuid.UUID(event_id) for event_id in fresh}

    async def commit(self) -> None:
        if not self._in_multi:
            self.conn.multi()  # type: ignore[no-untyped-call]  # nothing claimed: still atomic
        await self.conn.execute()


class ValkeyStore:
    """Units of work on a Valkey/Redis client (``decode_responses=True``)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[_ValkeyUnit]:
        async with self.client.pipeline(transaction=True) as pipe:
            unit = _ValkeyUnit(self.client, pipe)
            yield unit
            await unit.commit()

    async def forget(self, consumer: str) -> None:
        await self.client.delete(inbox_key(consumer))

    async def reset(self, consumer: str, clear: Reset | None) -> None:
        await self.forget(consumer)
        if clear is not None:
            await clear(self.client)

    async def whole(self, consumer: str) -> bool:
        return bool(await self.client.exists(whole_key(consumer)))

    async def mark_whole(self, consumer: str) -> None:
        await self.client.set(whole_key(consumer), "1")
