"""The classifications of chat messages by normalised message and model, in Valkey for
``chat.intent_cache_s``: TextStage writes a classification once the model gave it; TextStage
and the chat ingress both read it, so a message already classified skips the stage call."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import redis.asyncio as aioredis

from serve import text


class IntentCache:
    """A cache, not a dependency: an unreachable Valkey reads as a miss and skips the write."""

    def __init__(self, client: aioredis.Redis | None, ttl_s: float) -> None:
        self._client, self._ttl_s = (client if ttl_s else None), ttl_s

    async def get(self, message: str, model: str) -> dict[str, Any] | None:
        if self._client is None:
            return None
        try:
            raw = await self._client.get(text.intent_cache_key(message, model))
        except (aioredis.RedisError, OSError):
            return None
        if not raw:
            return None
        body = raw.decode() if isinstance(raw, bytes) else raw
        return text.parse_intent(body).model_dump(mode="json")

    async def put(self, message: str, model: str, classification: dict[str, Any]) -> None:
        if self._client is None:
            return
        key = text.intent_cache_key(message, model)
        with contextlib.suppress(aioredis.RedisError, OSError):
            await self._client.set(key, json.dumps(classification), ex=int(self._ttl_s))
