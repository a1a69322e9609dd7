"""Every read model rebuilt from the event stores equals the one the live projectors built from
Kafka: the user's scan history and my page, and the leaderboard."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import redis.asyncio as redis

from cdc.consumers.rebuild import rebuild
from cdc.readmodels.projections import LIVE, leaderboard, my_page, scan_history
from cdc.readmodels.store import connect, delete_prefix
from eco2.settings import Settings
from tests.conftest import StackUrls
from tests.e2e.saga_support import eventually, rewarded_scan, sign_in

pytestmark = pytest.mark.e2e


@pytest.fixture
async def valkey(stack: StackUrls) -> AsyncIterator[redis.Redis]:
    client = connect(stack.cache_url)
    yield client
    await client.aclose()


async def _read(client: redis.Redis, key: str) -> Any:
    kind = await client.type(key)
    if kind == "hash":
        return await client.hgetall(key)
    if kind == "zset":
        return await client.zrange(key, 0, -1, withscores=True)
    return None


def _same(
    client: redis.Redis, live_keys: list[str], rebuilt_keys: list[str]
) -> Callable[[], Awaitable[bool | None]]:
    async def probe() -> bool | None:
        live = [await _read(client, k) for k in live_keys]
        rebuilt = [await _read(client, k) for k in rebuilt_keys]
        return True if live == rebuilt and all(live) else None

    return probe


def _keys(ns: str, user: str, scan_id: str) -> dict[str, list[str]]:
    return {
        "scan_history": [f"{ns}scan:{scan_id}", f"{ns}scan_history:{user}"],
        "my_page": [f"{ns}my:{user}", f"{ns}my_chars:{user}"],
        "leaderboard": [f"{ns}leaderboard:characters", f"{ns}leaderboard:collectors"],
    }


async def test_rebuilt_read_models_equal_the_live_ones(
    stack: StackUrls, settings: Settings, valkey: redis.Redis
) -> None:
    assert stack.api_url is not None
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as browser:
        user = await sign_in(browser, "rebuild")
        result = await rewarded_scan(browser)

        async def saga_done() -> dict[str, Any] | None:
            page = (await browser.get("/api/v1/users/me/page")).json()
            return page if page["updated_at"] and page["scans"] == 1 else None

        await eventually(saga_done, "the saga and the scan in the live my page")
    ns = f"rmt-{uuid.uuid4().hex[:8]}:"
    live_keys, rebuilt_keys = (
        _keys(LIVE, user, result["task_id"]),
        _keys(ns, user, result["task_id"]),
    )
    try:
        for name, module in (
            ("scan_history", scan_history),
            ("my_page", my_page),
            ("leaderboard", leaderboard),
        ):
            await rebuild(module.spec(ns), settings)
            probe = _same(valkey, live_keys[name], rebuilt_keys[name])
            await eventually(probe, f"the rebuilt {name} equal to the live one", within_s=15)
    finally:
        await delete_prefix(valkey, ns)
