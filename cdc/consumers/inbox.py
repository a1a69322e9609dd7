"""The inbox: which events a consumer has already applied, written in the transaction of the effect.

:class:`Store` is the port the consumer runtime and the rebuild use. A unit of work yields the
connection the handler writes its effect on and ``claim``, which records event ids for a consumer
and returns those it had not recorded before. Both commit together or not at all, so an effect is
applied exactly once however often its event is delivered.

Adapters: :class:`PostgresStore` (asyncpg, the kernel's ``inbox`` table), :class:`MemoryStore`
(unit tests) and :class:`cdc.consumers.valkey_inbox.ValkeyStore` (read models in Valkey). All
pass the same contract test (``tests/unit/cdc/inbox_contract.py``).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

import asyncpg

_CLAIM = """
INSERT INTO inbox (consumer, event_id) SELECT $1, unnest($2::uuid[])
ON CONFLICT DO NOTHING RETURNING event_id
"""


class UnitOfWork(Protocol):
    conn: Any
    """What the handler writes its effect on (an ``asyncpg.Connection`` in production)."""

    async def claim(self, consumer: str, event_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Record ``event_ids`` as applied by ``consumer``; return the ones not recorded before."""
        ...


class Store(Protocol):
    def unit_of_work(self) -> Any:
        """An async context manager yielding a :class:`UnitOfWork`; commits on a clean exit."""
        ...

    async def forget(self, consumer: str) -> None:
        """Delete ``consumer``'s inbox (before a rebuild)."""
        ...

    async def reset(self, consumer: str, clear: Reset | None) -> None:
        """Delete ``consumer``'s inbox and run ``clear`` on the store's connection/client, so the
        consumer's state can be rebuilt from the event stores."""
        ...

    async def whole(self, consumer: str) -> bool:
        """Whether ``consumer``'s state (inbox and effects) is whole. A store that may lose it
        (Valkey restarted without its data) says so until :meth:`mark_whole` after a rebuild;
        a database keeps what it committed and is always whole."""
        ...

    async def mark_whole(self, consumer: str) -> None:
        """``consumer``'s state was (re)built from the event stores."""
        ...


Reset = Callable[[Any], Awaitable[None]]
"""``async def clear(conn)``: deletes a consumer's state (its read model, its effect tables)."""


class _PgUnit:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def claim(self, consumer: str, event_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        rows = await self.conn.fetch(_CLAIM, consumer, list(event_ids))
        return {row["event_id"] for row in rows}


class PostgresStore:
    """Units of work on a pool of the consumer's own database."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[_PgUnit]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield _PgUnit(conn)

    async def forget(self, consumer: str) -> None:
        await self.pool.execute("DELETE FROM inbox WHERE consumer = $1", consumer)

    async def reset(self, consumer: str, clear: Reset | None) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM inbox WHERE consumer = $1", consumer)
            if clear is not None:
                await clear(conn)

    async def whole(self, consumer: str) -> bool:
        return True

    async def mark_whole(self, consumer: str) -> None:
        return None


class _MemoryUnit:
    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.conn: dict[str, Any] = copy.deepcopy(store.effects)
        self.claimed: set[tuple[str, uuid.UUID]] = set()

    async def claim(self, consumer: str, event_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        fresh: set[uuid.UUID] = set()
        for event_id in event_ids:
            key = (consumer, event_id)
            if key not in self.store.rows and key not in self.claimed:
                self.claimed.add(key)
                fresh.add(event_id)
        return fresh


class MemoryStore:
    """In-memory store: ``effects`` is a dict the handler may write; both roll back on error."""

    def __init__(self) -> None:
        self.rows: set[tuple[str, uuid.UUID]] = set()
        self.effects: dict[str, Any] = {}
        self.marked_whole: set[str] = set()
        """Consumers marked whole (cleared to stand for a store that lost its data)."""

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[_MemoryUnit]:
        unit = _MemoryUnit(self)
        yield unit
        self.rows |= unit.claimed
        self.effects = unit.conn

    async def forget(self, consumer: str) -> None:
        self.rows = {row for row in self.rows if row[0] != consumer}

    async def reset(self, consumer: str, clear: Reset | None) -> None:
        await self.forget(consumer)
        if clear is not None:
            await clear(self.effects)

    async def whole(self, consumer: str) -> bool:
        return consumer in self.marked_whole

    async def mark_whole(self, consumer: str) -> None:
        self.marked_whole.add(consumer)
