"""Valkey helpers of the read models: the client they use and the reset before a rebuild."""

from __future__ import annotations

from typing import Any

import redis.asyncio as redis

from eco2 import cache as valkey


async def delete_prefix(client: redis.Redis, prefix: str) -> int:
    """Delete every key starting with ``prefix`` (SCAN + UNLINK; for resets before a rebuild)."""
    deleted = 0
    batch: list[Any] = []
    async for key in client.scan_iter(match=f"{prefix}*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            deleted += await client.unlink(*batch)
            batch.clear()
    if batch:
        deleted += await client.unlink(*batch)
    return deleted


def connect(url: str) -> redis.Redis:
    """A client for read models (strings in, strings out)."""
    return valkey.connect(url, decode_responses=True)
