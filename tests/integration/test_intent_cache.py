"""The chat intent cache on the stack's real Valkey: what TextStage writes, the ingress reads."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis

from eco2.cache import connect
from serve.intent_cache import IntentCache
from tests.conftest import StackUrls

pytestmark = pytest.mark.integration

CLASSIFIED = {
    "intent": "waste",
    "confidence": 0.9,
    "reasoning": "분리배출 질문",
    "additional_intents": [],
}


async def test_a_classification_written_once_is_read_back_for_the_same_message_and_model(
    stack: StackUrls,
) -> None:
    client = connect(stack.cache_url)
    try:
        cache = IntentCache(client, 60)
        message = f"페트병 어떻게 버려? {uuid.uuid4().hex[:6]}"
        assert await cache.get(message, "gpt-5.2") is None

        await cache.put(message, "gpt-5.2", CLASSIFIED)

        found = await cache.get(f"  {message}  ", "gpt-5.2")  # normalised: the same message
        assert found is not None
        assert found["intent"] == "waste"
        assert await cache.get(message, "gpt-4o-mini") is None  # another model: its own entry
    finally:
        await client.aclose()


async def test_an_unreachable_valkey_is_a_miss_not_an_error() -> None:
    client = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    cache = IntentCache(client, 60)
    assert await cache.get("hello", "gpt-5.2") is None
    await cache.put("hello", "gpt-5.2", CLASSIFIED)  # swallowed
    await client.aclose()
