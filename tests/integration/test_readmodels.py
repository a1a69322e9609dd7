"""Read models in Valkey: the Valkey inbox passes the store contract, projections apply each event
once, and a rebuild from the event stores reproduces a read model exactly."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as redis

from cdc.consumers.apply import apply_batch
from cdc.consumers.inbox import Store
from cdc.consumers.rebuild import rebuild
from cdc.consumers.valkey_inbox import ValkeyStore, whole_key
from cdc.readmodels.projections import leaderboard, my_page, scan_history
from cdc.readmodels.store import connect, delete_prefix
from eco2.events import EventEnvelope
from eco2.settings import Settings
from tests.conftest import StackUrls
from tests.unit.cdc.inbox_contract import InboxContract

pytestmark = pytest.mark.integration


@pytest.fixture
async def valkey(stack: StackUrls) -> AsyncIterator[redis.Redis]:
    client = connect(stack.cache_url)
    yield client
    await client.aclose()


class TestValkeyInbox(InboxContract):
    @pytest.fixture
    async def store(self, valkey: redis.Redis) -> Store:
        self.consumer = f"contract-{uuid.uuid4().hex[:8]}"
        return ValkeyStore(valkey)

    async def test_a_consumer_whose_mark_is_lost_is_not_whole(self, store: Store) -> None:
        await store.mark_whole(self.consumer)
        assert isinstance(store, ValkeyStore)
        await store.client.delete(whole_key(self.consumer))  # what an emptied Valkey lost
        assert not await store.whole(self.consumer)


def _event(kind: str, aggregate: str, version: int, **payload: Any) -> EventEnvelope:
    types = {"Scan": "scan", "Reward": "scan", "Character": "character", "Profile": "profile"}
    aggregate_type = next(t for prefix, t in types.items() if kind.startswith(prefix))
    return EventEnvelope(
        event_type=kind,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate,
        aggregate_version=version,
        payload=payload,
    )


async def test_projections_apply_each_event_once(valkey: redis.Redis) -> None:
    ns, user, scan = f"rmt-{uuid.uuid4().hex[:8]}:", f"u-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    events = [
        _event("ScanRequested", scan, 1, scan_id=scan, user_id=user, image_url="https://x/a.jpg"),
        _event(
            "ScanClassified",
            scan,
            2,
            classification={"major_category": "재활용폐기물", "middle_category": "무색페트병"},
        ),
        _event("RewardGranted", scan, 3, character_code="char-petty", character_name="페티"),
        _event("ScanCompleted", scan, 4, user_id=user, rewarded=True),
        _event(
            "CharacterAcquired",
            user,
            1,
            user_id=user,
            character_code="char-petty",
            character_name="페티",
            source="scan",
            acquired_at="2026-11-25T00:00:00+00:00",
        ),
        _event("ProfileUpdated", user, 1, user_id=user, change="character_added", owned_count=1),
    ]
    store = ValkeyStore(valkey)
    try:
        for module in (scan_history, my_page, leaderboard):
            spec = module.spec(ns)
            assert await apply_batch(store, spec.name, events, spec.handler) == len(events)
            assert await apply_batch(store, spec.name, events[::-1], spec.handler) == 0
        items, cursor = await scan_history.history(valkey, user, 10, None, ns)
        assert cursor is None
        assert [(i["scan_id"], i["status"], i["rewarded"], i["character_name"]) for i in items] == [
            (scan, "completed", True, "페티")
        ]
        page = await my_page.my_page(valkey, user, ns)
        assert (page["owned_count"], page["scans"], page["characters"][0]["character_code"]) == (
            1,
            1,
            "char-petty",
        )
        board = await leaderboard.leaderboard(valkey, user, 13, ns)
        assert board["me"] == {"owned": 1, "rank": 1}
        assert board["characters"] == [{"rank": 1, "code": "char-petty", "owners": 1}]
    finally:
        await delete_prefix(valkey, ns)


async def _snapshot(client: redis.Redis, keys: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key in keys:
        kind = await client.type(key)
        if kind == "hash":
            found[key] = await client.hgetall(key)
        elif kind == "zset":
            found[key] = await client.zrange(key, 0, -1, withscores=True)
    return found


async def _scan_events(scan_db_dsn: str, scan_id: str) -> list[EventEnvelope]:
    conn = await asyncpg.connect(scan_db_dsn)
    try:
        rows = await conn.fetch(
            "SELECT event_id, aggregate_type, aggregate_id, aggregate_version, event_type, "
            "schema_version, payload::text AS payload, metadata::text AS metadata, occurred_at "
            "FROM event_store WHERE aggregate_id = $1 ORDER BY aggregate_version",
            scan_id,
        )
    finally:
        await conn.close()
    return [
        EventEnvelope.model_validate(
            {**dict(r), "payload": json.loads(r["payload"]), "metadata": json.loads(r["metadata"])}
        )
        for r in rows
    ]


async def test_dropped_scan_history_rebuilds_identically_from_the_event_store(
    scan_api: httpx.AsyncClient, settings: Settings, valkey: redis.Redis, scan_db_dsn: str
) -> None:
    user = f"rebuild-{uuid.uuid4().hex[:8]}"
    headers = {"X-User-ID": user}
    body = {"image_url": "https://cdn.eco2.local/clear-pet-bottle-nolabel-empty.jpg"}
    done = await scan_api.post("/v1/scan:classify", json=body, headers=headers, timeout=60)
    assert done.status_code == 200, done.text
    scan_id = done.json()["task_id"]
    events = await _scan_events(scan_db_dsn, scan_id)
    assert [e.event_type for e in events][-2:] == ["RewardGranted", "ScanCompleted"]

    ns = f"rmt-{uuid.uuid4().hex[:8]}:"
    keys = [f"{ns}scan:{scan_id}", f"{ns}scan_history:{user}"]
    spec = scan_history.spec(ns)
    try:  # built the way the live projector builds it: these events, delivered by Kafka
        await apply_batch(ValkeyStore(valkey), spec.name, events, spec.handler)
        before = await _snapshot(valkey, keys)
        assert before[keys[0]]["character_name"] == "페티"

        await valkey.delete(*keys)  # drop the read model
        replayed = await rebuild(spec, settings)
        assert replayed >= len(events)
        assert await _snapshot(valkey, keys) == before
    finally:
        await delete_prefix(valkey, ns)
