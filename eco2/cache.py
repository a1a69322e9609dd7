"""Valkey/Redis clients: the one way every process opens them.

redis-py's asyncio pool holds at most 100 connections by default and answers the 101st
concurrent command with ``ConnectionError("Too many connections")``: under a burst of requests
(ext-authz checking 900 users' tokens at once) that turned into 503s. :func:`connect` puts the
client on a :class:`~redis.asyncio.BlockingConnectionPool` instead: a command beyond
``max_connections`` waits up to ``wait_s`` for a free connection, and only then fails. The client
owns its pool: ``await client.aclose()`` closes both.
"""

from __future__ import annotations

import redis.asyncio as aioredis

MAX_CONNECTIONS = 64
WAIT_S = 5.0


def connect(
    url: str,
    *,
    max_connections: int = MAX_CONNECTIONS,
    wait_s: float = WAIT_S,
    decode_responses: bool = False,
) -> aioredis.Redis:
    """An asyncio client of ``url`` whose commands wait for a connection instead of failing."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=wait_s, decode_responses=decode_responses
    )
    return aioredis.Redis.from_pool(pool)
