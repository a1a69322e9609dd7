"""Human in the loop: a job waits for the user's reply to ``needs_input``, bounded in time.

The reply is stored on the job row (``ChatStore.record_input``) and announced on the job's Valkey
channel; the waiting runner, on whichever replica, takes it from either: the channel wakes it at
once, the row is read again every second, so a missed message only costs that second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from typing import Any

import redis.asyncio as aioredis

from pipelines.chat.store import ChatStore

RECHECK_S = 1.0


def channel(job_id: uuid.UUID) -> str:
    return f"chat:input:{job_id}"


class Inputs:
    def __init__(self, client: aioredis.Redis, store: ChatStore) -> None:
        self._client, self._store = client, store

    async def deliver(self, job_id: uuid.UUID, reply: dict[str, Any]) -> None:
        """Wake the runner waiting for ``job_id`` (best effort: it also re-reads the row)."""
        with contextlib.suppress(aioredis.RedisError, OSError):
            await self._client.publish(channel(job_id), json.dumps(reply, ensure_ascii=False))

    async def wait(self, job_id: uuid.UUID, timeout_s: float) -> dict[str, Any] | None:
        """The user's reply, or None when none came within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        pubsub = self._client.pubsub()
        try:
            with contextlib.suppress(aioredis.RedisError, OSError):
                await pubsub.subscribe(channel(job_id))
            while (left := deadline - time.monotonic()) > 0:
                stored = await self._store.user_input(job_id)
                if stored is not None:
                    return stored
                if not pubsub.subscribed:
                    await asyncio.sleep(min(RECHECK_S, left))
                    continue
                try:
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=min(RECHECK_S, left)
                    )
                except (aioredis.RedisError, OSError):
                    message = None
                    await asyncio.sleep(min(RECHECK_S, max(0.0, deadline - time.monotonic())))
                if message is not None:
                    return dict(json.loads(message["data"]))
            return await self._store.user_input(job_id)
        finally:
            with contextlib.suppress(aioredis.RedisError, OSError):
                await pubsub.aclose()
