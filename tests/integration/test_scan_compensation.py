"""The scan side of the reward saga's compensation: a rejected grant takes the reward back once,
records ``RewardRevoked``, and the result the user fetches says so."""

from __future__ import annotations

import uuid

import asyncpg
import httpx
import pytest

from cdc.consumers.apply import apply_batch
from cdc.consumers.inbox import PostgresStore
from eco2.db import create_pool
from eco2.events import EventEnvelope, EventMetadata
from eco2.settings import Settings
from pipelines.scan.reactions import consumers

pytestmark = pytest.mark.integration


def _rejection(scan_id: str, user: str, code: str) -> EventEnvelope:
    return EventEnvelope(
        event_type="CharacterGrantRejected",
        aggregate_type="character",
        aggregate_id=user,
        aggregate_version=1,
        payload={
            "scan_id": scan_id,
            "user_id": user,
            "character_code": code,
            "reason": "user_deleted",
            "rejected_at": "2026-11-25T00:00:00+00:00",
        },
        metadata=EventMetadata(correlation_id=scan_id, user_id=user),
    )


async def test_a_rejected_grant_is_revoked_once_and_the_result_says_so(
    scan_api: httpx.AsyncClient, settings: Settings, scan_db_dsn: str
) -> None:
    user = f"comp-{uuid.uuid4().hex[:8]}"
    headers = {"X-User-ID": user}
    body = {"image_url": "https://cdn.eco2.local/clear-pet-bottle-nolabel-empty.jpg"}
    done = await scan_api.post("/v1/scan:classify", json=body, headers=headers, timeout=60)
    assert done.status_code == 200, done.text
    scan_id, reward = done.json()["task_id"], done.json()["reward"]
    assert reward is not None

    (spec,) = consumers(settings)
    rejected = _rejection(scan_id, user, reward["code"])
    pool = await create_pool(settings, "scan", min_size=1, max_size=2)
    try:
        store = PostgresStore(pool)
        assert await apply_batch(store, spec.name, [rejected], spec.handler) == 1
        assert await apply_batch(store, spec.name, [rejected], spec.handler) == 0
        other = rejected.model_copy(update={"event_id": uuid.uuid4()})  # a second rejection
        assert await apply_batch(store, spec.name, [other], spec.handler) == 1
    finally:
        await pool.close()

    result = (await scan_api.get(f"/api/v1/scan/{scan_id}/result", headers=headers)).json()
    assert result["reward"] is None
    assert result["metadata"]["reward_revoked"] == {
        "character_code": reward["code"],
        "reason": "user_deleted",
    }
    assert "취소" in result["message"]
    conn = await asyncpg.connect(scan_db_dsn)
    try:
        revoked = await conn.fetch(
            "SELECT metadata FROM event_store WHERE aggregate_id = $1 AND event_type = $2",
            scan_id,
            "RewardRevoked",
        )
    finally:
        await conn.close()
    assert len(revoked) == 1
    assert str(rejected.event_id) in revoked[0]["metadata"]
