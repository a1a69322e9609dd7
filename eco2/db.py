"""PostgreSQL connection helpers: one pool per domain database, sized per domain.

Pools are created in a process's start-up (lifespan / ``__init__``) and closed there; nothing
connects at import time. A slow domain cannot starve another because each has its own pool.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from eco2.errors import Unavailable
from eco2.migrations import database_dsn
from eco2.settings import Settings


def domain_dsn(settings: Settings, domain: str) -> str:
    """The DSN of ``domain``'s own database on the configured server, as the domain's own role
    when ``db.isolate_domains`` (that role can connect to no other domain's database)."""
    if settings.db.url is None:
        raise Unavailable(
            "no database configured: run `eco2 up` (embedded PostgreSQL) or set ECO2_DB__URL"
        )
    database = settings.database_name(domain)
    user = database if settings.db.isolate_domains else None
    return database_dsn(settings.db.url, database, user=user)


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def _reset_cheaply(conn: asyncpg.Connection) -> None:
    """Release hook: roll back a transaction left open, skip asyncpg's full session reset.

    The default reset costs one more round trip on every release (``RESET ALL``, ``UNLISTEN``,
    advisory unlocks). Our code keeps no session state across a release, so it is not needed.
    """
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def create_pool(
    settings: Settings, domain: str, *, min_size: int | None = None, max_size: int | None = None
) -> asyncpg.Pool:
    """A pool on ``domain``'s database; JSON columns decode to Python objects. Its size is
    ``max_size``, else the service's own (``services.pool_max``), else ``db.pool_max``."""
    if max_size is None:
        max_size = settings.services.pool_max.get(domain, settings.db.pool_max)
    try:
        pool: asyncpg.Pool = await asyncpg.create_pool(
            domain_dsn(settings, domain),
            min_size=settings.db.pool_min if min_size is None else min_size,
            max_size=max_size,
            init=_init_connection,
            reset=_reset_cheaply,
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise Unavailable(f"cannot connect to the {domain} database: {exc}") from exc
    return pool


@asynccontextmanager
async def transaction(pool: asyncpg.Pool, what: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection inside a transaction on ``pool``; a database that cannot be reached raises
    :class:`Unavailable` (retriable) naming ``what`` (e.g. "the profile database")."""
    try:
        async with pool.acquire() as conn, conn.transaction():
            yield conn
    except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
        raise Unavailable(f"{what} is unreachable ({exc}); retry shortly") from exc
